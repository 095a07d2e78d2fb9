//! Plugin references: `oci://REGISTRY/REPO:TAG` and
//! `oci://REGISTRY/REPO@sha256:HEX`.

use std::fmt;

use crate::Error;

/// The scheme every plugin reference starts with.
pub const SCHEME: &str = "oci://";

/// A digest: `sha256:` and 64 lower-case hex digits (the only algorithm
/// accepted; a registry that answers with another one is refused).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Parses `sha256:<64 hex>`.
    pub fn parse(text: &str) -> Option<Digest> {
        let hex = text.strip_prefix("sha256:")?;
        (hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| Digest(text.to_string()))
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        use sha2::Digest as _;
        Digest(format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(bytes))
        ))
    }

    /// The hex part, without `sha256:`.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    /// The whole digest, `sha256:<hex>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A parsed plugin reference. A tag is resolved to a digest once
/// ([`Reference::with_digest`]); everything afterwards uses the digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses `oci://REGISTRY/REPO:TAG`, `oci://REGISTRY/REPO@sha256:HEX` or
    /// `oci://REGISTRY/REPO:TAG@sha256:HEX` (the digest wins). The registry
    /// must be named: there is no default registry.
    pub fn parse(text: &str) -> Result<Reference, Error> {
        let bad = |why: &str| Error::Reference {
            reference: tessera_text(text),
            message: why.to_string(),
        };
        let rest = text
            .strip_prefix(SCHEME)
            .ok_or_else(|| bad("a plugin reference starts with oci://"))?;
        let (name, digest) = match rest.split_once('@') {
            Some((name, digest)) => (
                name,
                Some(Digest::parse(digest).ok_or_else(|| {
                    bad("the digest must be sha256: followed by 64 lower-case hex digits")
                })?),
            ),
            None => (rest, None),
        };
        let (registry, path) = name
            .split_once('/')
            .ok_or_else(|| bad("expected oci://REGISTRY/REPOSITORY:TAG or @sha256:..."))?;
        if registry.is_empty()
            || !registry
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        {
            return Err(bad(
                "the registry must be a host name or address, with an optional port",
            ));
        }
        // A colon after the last slash starts the tag.
        let (repository, tag) = match path.rfind(':') {
            Some(i) if !path[i..].contains('/') => (&path[..i], Some(&path[i + 1..])),
            _ => (path, None),
        };
        if repository.is_empty()
            || !repository.split('/').all(|part| {
                !part.is_empty()
                    && part.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)
                    })
                    && part.as_bytes()[0].is_ascii_alphanumeric()
            })
        {
            return Err(bad(
                "the repository must be lower-case letters, digits and . _ - separated by /",
            ));
        }
        if let Some(tag) = tag {
            let valid = !tag.is_empty()
                && tag.len() <= 128
                && tag
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                && tag.as_bytes()[0] != b'.'
                && tag.as_bytes()[0] != b'-';
            if !valid {
                return Err(bad(
                    "a tag is 1 to 128 letters, digits, _ . - (not first . or -)",
                ));
            }
        }
        if tag.is_none() && digest.is_none() {
            return Err(bad("name a tag (:TAG) or a digest (@sha256:...)"));
        }
        Ok(Reference {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// Whether `text` is meant as a reference (starts with `oci://`).
    pub fn is_reference(text: &str) -> bool {
        text.starts_with(SCHEME)
    }

    /// The registry host (and port).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if the reference names one.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if the reference names one or has been resolved.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The same reference pinned to `digest` (the tag is kept for display).
    #[must_use]
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The same repository with another tag and no digest (for the
    /// `sha256-<hex>.sig` signature tag).
    #[must_use]
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }

    /// `REGISTRY/REPO`, the identity cosign puts in its payload.
    pub fn repository_name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// Whether the registry is a loopback address (`localhost`,
    /// `127.0.0.0/8`, `[::1]`), where plain HTTP may be allowed.
    pub fn is_loopback(&self) -> bool {
        let host = match self.registry.strip_prefix('[') {
            Some(rest) => rest.split(']').next().unwrap_or(""),
            None => self.registry.split(':').next().unwrap_or(""),
        };
        host == "localhost"
            || host == "::1"
            || host
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    pub(crate) fn to_client(&self) -> oci_client::Reference {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => oci_client::Reference::with_digest(
                self.registry.clone(),
                self.repository.clone(),
                digest.to_string(),
            ),
            (None, Some(tag)) => oci_client::Reference::with_tag(
                self.registry.clone(),
                self.repository.clone(),
                tag.clone(),
            ),
            (None, None) => oci_client::Reference::with_tag(
                self.registry.clone(),
                self.repository.clone(),
                "latest".into(),
            ),
        }
    }
}

impl fmt::Display for Reference {
    /// `oci://REGISTRY/REPO[:TAG][@DIGEST]`: as given, and with the digest
    /// once resolved.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

fn tessera_text(text: &str) -> String {
    let mut shown: String = text.chars().take(200).collect();
    shown.retain(|c| !c.is_control());
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_tags_and_digests() {
        let r = Reference::parse("oci://127.0.0.1:5000/team/require-labels:1.0").unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "team/require-labels");
        assert_eq!(r.tag(), Some("1.0"));
        assert!(r.digest().is_none());
        assert!(r.is_loopback());
        let d = Reference::parse(&format!("oci://ghcr.io/a/b@sha256:{HEX}")).unwrap();
        assert_eq!(d.digest().unwrap().hex(), HEX);
        assert!(d.tag().is_none());
        assert!(!d.is_loopback());
        assert_eq!(d.to_string(), format!("oci://ghcr.io/a/b@sha256:{HEX}"));
        let pinned = r.with_digest(Digest::parse(&format!("sha256:{HEX}")).unwrap());
        assert_eq!(
            pinned.to_string(),
            format!("oci://127.0.0.1:5000/team/require-labels:1.0@sha256:{HEX}")
        );
    }

    #[test]
    fn refuses_malformed_references_with_the_reason() {
        for (text, why) in [
            ("ghcr.io/a/b:1", "starts with oci://"),
            ("oci://ghcr.io/a/b", "name a tag"),
            ("oci://ghcr.io", "expected oci://REGISTRY"),
            ("oci://ghcr.io/A/b:1", "lower-case"),
            ("oci://ghcr.io/a/b@sha256:abc", "64 lower-case hex"),
            ("oci://ghcr.io/a/b:-x", "a tag is"),
            ("oci://gh cr.io/a/b:1", "registry must be"),
        ] {
            let message = Reference::parse(text).unwrap_err().to_string();
            assert!(message.contains(why), "{text}: {message}");
            assert!(message.starts_with(text), "{text}: {message}");
        }
    }
}
