//! cosign-compatible keyed signatures: ECDSA P-256 with SHA-256 over the
//! simple-signing payload, stored as cosign's classic `sha256-<hex>.sig`
//! tag (a manifest whose layers are the payloads, each with its signature
//! in the `dev.cosignproject.cosign/signature` annotation).

use std::path::Path;

use base64::Engine as _;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey};
use serde_json::{Value, json};

use crate::{Digest, Error, Reference};

/// The media type of a simple-signing payload layer.
pub const PAYLOAD_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The annotation holding the base64 DER signature of the payload.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The artifact type of a cosign signature found through the referrers API.
pub const SIGNATURE_ARTIFACT_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// The `critical.type` of a cosign image signature payload.
pub const PAYLOAD_TYPE: &str = "cosign container image signature";

/// The tag cosign stores the signatures of `digest` under.
pub fn signature_tag(digest: &Digest) -> String {
    format!("sha256-{}.sig", digest.hex())
}

/// The simple-signing payload for the artifact `reference` (pinned to its
/// digest), as cosign writes it.
pub fn payload(reference: &Reference, digest: &Digest) -> Vec<u8> {
    let payload = json!({
        "critical": {
            "identity": {"docker-reference": reference.repository_name()},
            "image": {"docker-manifest-digest": digest.to_string()},
            "type": PAYLOAD_TYPE,
        },
        "optional": null,
    });
    serde_json::to_vec(&payload).unwrap_or_default()
}

/// A signature found in a registry: a payload and its signature, not yet
/// checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The payload bytes (digest-checked against their descriptor).
    pub payload: Vec<u8>,
    /// The base64 signature from the annotation.
    pub signature: String,
}

/// A public key with the name errors show (the file, or the policy entry).
#[derive(Debug, Clone)]
pub struct PublicKey {
    name: String,
    key: VerifyingKey,
}

impl PublicKey {
    /// Parses a PEM `PUBLIC KEY` (SubjectPublicKeyInfo, P-256), as
    /// `cosign generate-key-pair` and `openssl ec -pubout` write it.
    pub fn from_pem(name: &str, pem: &str) -> Result<PublicKey, Error> {
        let key = VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| Error::Key {
            key: name.to_string(),
            message: format!("not a PEM P-256 public key: {e}"),
        })?;
        Ok(PublicKey {
            name: name.to_string(),
            key,
        })
    }

    /// Reads a PEM public key file.
    pub fn from_file(path: &Path) -> Result<PublicKey, Error> {
        let text = read_key_file(path)?;
        PublicKey::from_pem(&path.display().to_string(), &text)
    }

    /// Whether `other` is the same public key (the same curve point), however
    /// it was written.
    pub fn same_key(&self, other: &PublicKey) -> bool {
        self.key == other.key
    }

    /// The name errors show.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Why `candidate` is not a valid signature of `digest` by this key;
    /// `Ok` if it is.
    pub fn check(&self, candidate: &Candidate, digest: &Digest) -> Result<(), String> {
        let der = base64::engine::general_purpose::STANDARD
            .decode(candidate.signature.trim())
            .map_err(|_| "the signature is not base64".to_string())?;
        let signature = Signature::from_der(&der)
            .or_else(|_| Signature::from_slice(&der))
            .map_err(|_| "the signature is not an ECDSA P-256 signature".to_string())?;
        self.key
            .verify(&candidate.payload, &signature)
            .map_err(|_| "the signature does not match the payload and key".to_string())?;
        let payload: Value = serde_json::from_slice(&candidate.payload)
            .map_err(|_| "the signed payload is not JSON".to_string())?;
        let critical = &payload["critical"];
        if critical["type"] != PAYLOAD_TYPE {
            return Err(format!("the signed payload's type is not {PAYLOAD_TYPE:?}"));
        }
        match critical["image"]["docker-manifest-digest"].as_str() {
            Some(signed) if signed == digest.as_str() => Ok(()),
            Some(signed) => Err(format!(
                "the signature is for {}, not this artifact",
                tessera_like_short(signed)
            )),
            None => Err("the signed payload names no manifest digest".to_string()),
        }
    }
}

/// A private key that signs payloads.
#[derive(Debug, Clone)]
pub struct PrivateKey {
    key: SigningKey,
}

impl PrivateKey {
    /// Parses an unencrypted PEM P-256 private key: PKCS#8 (`PRIVATE KEY`)
    /// or SEC1 (`EC PRIVATE KEY`, what `openssl ecparam -genkey` writes).
    /// cosign's own encrypted key format is not read: its scrypt/secretbox
    /// envelope is cosign-specific; sign with an openssl key instead (cosign
    /// verifies those with the matching public key).
    pub fn from_pem(name: &str, pem: &str) -> Result<PrivateKey, Error> {
        let pem = pem.trim();
        let bad = |message: String| Error::Key {
            key: name.to_string(),
            message,
        };
        if pem.contains("ENCRYPTED") {
            return Err(bad(
                "encrypted private keys (including cosign's) are not supported; use an unencrypted PKCS#8 or SEC1 PEM P-256 key (openssl ecparam -name prime256v1 -genkey)".into(),
            ));
        }
        let key = if pem.contains("BEGIN EC PRIVATE KEY") {
            p256::SecretKey::from_sec1_pem(pem)
                .map(SigningKey::from)
                .map_err(|e| bad(format!("not a SEC1 PEM P-256 private key: {e}")))?
        } else {
            SigningKey::from_pkcs8_pem(pem)
                .map_err(|e| bad(format!("not a PKCS#8 PEM P-256 private key: {e}")))?
        };
        Ok(PrivateKey { key })
    }

    /// Reads a PEM private key file.
    pub fn from_file(path: &Path) -> Result<PrivateKey, Error> {
        let text = read_key_file(path)?;
        PrivateKey::from_pem(&path.display().to_string(), &text)
    }

    /// The base64 DER ECDSA P-256/SHA-256 signature of `payload`.
    pub fn sign(&self, payload: &[u8]) -> String {
        let signature: Signature = self.key.sign(payload);
        base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes())
    }
}

fn read_key_file(path: &Path) -> Result<String, Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::Key {
        key: path.display().to_string(),
        message: format!("cannot read key: {e}"),
    })?;
    String::from_utf8(bytes).map_err(|_| Error::Key {
        key: path.display().to_string(),
        message: "not a PEM file (not UTF-8)".into(),
    })
}

fn tessera_like_short(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_digest_and_payload() {
        // A fixed scalar: a deterministic test key that protects nothing.
        let key = PrivateKey {
            key: SigningKey::from_bytes(&[7u8; 32].into()).unwrap(),
        };
        let public = PublicKey {
            name: "test.pub".into(),
            key: *key.key.verifying_key(),
        };
        let reference = Reference::parse("oci://127.0.0.1:5000/a/b:1").unwrap();
        let digest = Digest::of(b"manifest");
        let payload = payload(&reference, &digest);
        let candidate = Candidate {
            signature: key.sign(&payload),
            payload,
        };
        public.check(&candidate, &digest).unwrap();
        let other = Digest::of(b"another manifest");
        assert!(
            public
                .check(&candidate, &other)
                .unwrap_err()
                .contains("not this artifact")
        );
        let mut tampered = candidate.clone();
        tampered.payload[10] ^= 1;
        assert!(
            public
                .check(&tampered, &digest)
                .unwrap_err()
                .contains("does not match")
        );
    }

    #[test]
    fn keys_are_refused_with_the_reason() {
        let message = PublicKey::from_pem("team.pub", "not a key")
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("team.pub: not a PEM P-256 public key"),
            "{message}"
        );
        let message = PrivateKey::from_pem(
            "cosign.key",
            "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nx\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----",
        )
        .unwrap_err()
        .to_string();
        assert!(message.contains("encrypted private keys"), "{message}");
    }
}
