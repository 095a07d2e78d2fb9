//! Credentials derived by the host for composition plugins.
//!
//! A plugin asks for `derive-secret(purpose, length)`. The host answers with
//! `HMAC-SHA256(key, "tessera.dev/derive-secret/v1" | identity | purpose | i)`
//! blocks mapped onto `[A-Za-z0-9]`, where `identity` is the composite's
//! `apiVersion/kind/namespace/name/uid`. The plugin never sees the key, so the
//! value cannot be guessed from the composite; the same key and composite
//! always give the same value, so rendering stays deterministic.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Longest secret a plugin may ask for.
const MAX_SECRET_LENGTH: u32 = 1024;

/// The shortest key accepted: 256 bits, the HMAC-SHA256 block strength.
pub const MIN_KEY_BYTES: usize = 32;

const ALPHANUMERIC: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// The key the host derives credentials from.
pub struct SecretKey {
    bytes: Vec<u8>,
    development: bool,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKey")
            .field("development", &self.development)
            .finish_non_exhaustive()
    }
}

/// The key is too short.
#[derive(Debug, thiserror::Error)]
#[error("secret key is {len} bytes; at least {MIN_KEY_BYTES} are needed")]
pub struct KeyTooShort {
    len: usize,
}

impl SecretKey {
    /// A key from raw bytes (at least [`MIN_KEY_BYTES`]).
    pub fn new(bytes: Vec<u8>) -> Result<Self, KeyTooShort> {
        if bytes.len() < MIN_KEY_BYTES {
            return Err(KeyTooShort { len: bytes.len() });
        }
        Ok(SecretKey {
            bytes,
            development: false,
        })
    }

    /// The built-in development key. It is public (it is in this source
    /// file), so anything derived from it is NOT secret. Use it offline only;
    /// callers must warn loudly when they fall back to it.
    pub fn development() -> Self {
        SecretKey {
            bytes: b"tessera-development-key-NOT-SECRET-do-not-use-in-clusters".to_vec(),
            development: true,
        }
    }

    /// True for [`SecretKey::development`].
    pub fn is_development(&self) -> bool {
        self.development
    }

    /// Derives `length` characters of `[A-Za-z0-9]` for `identity` and
    /// `purpose`.
    pub fn derive(&self, identity: &str, purpose: &str, length: u32) -> String {
        let length = length.min(MAX_SECRET_LENGTH) as usize;
        let mut out = String::with_capacity(length);
        let mut block = 0u32;
        while out.len() < length {
            let mut mac =
                Hmac::<Sha256>::new_from_slice(&self.bytes).expect("HMAC takes keys of any size");
            for part in [
                b"tessera.dev/derive-secret/v1".as_slice(),
                identity.as_bytes(),
                purpose.as_bytes(),
            ] {
                // Length-prefix each part so that ("ab", "c") != ("a", "bc").
                mac.update(&(part.len() as u64).to_be_bytes());
                mac.update(part);
            }
            mac.update(&block.to_be_bytes());
            for byte in mac.finalize().into_bytes() {
                // Rejection sampling: 248 = 4 * 62, so every character is
                // equally likely.
                if byte < 248 && out.len() < length {
                    out.push(ALPHANUMERIC[(byte % 62) as usize] as char);
                }
            }
            block += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivation_is_deterministic_and_separated() {
        let key = SecretKey::new(vec![7; 32]).unwrap();
        let a = key.derive("v1/Database/ns/a/", "password", 24);
        assert_eq!(a.len(), 24);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(a, key.derive("v1/Database/ns/a/", "password", 24));
        assert_ne!(a, key.derive("v1/Database/ns/b/", "password", 24));
        assert_ne!(a, key.derive("v1/Database/ns/a/", "other", 24));
        let other = SecretKey::new(vec![8; 32]).unwrap();
        assert_ne!(a, other.derive("v1/Database/ns/a/", "password", 24));
        assert_eq!(key.derive("x", "y", 100).len(), 100);
        assert_eq!(key.derive("x", "y", 5000).len(), MAX_SECRET_LENGTH as usize);
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(SecretKey::new(vec![1; 31]).is_err());
    }
}
