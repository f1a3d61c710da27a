//! The keyed hash under which API keys are stored (PRODUCT.md §11): the
//! store keeps `HMAC-SHA256(k, key)` only, so a dump of it reveals no key,
//! and without `k` (derived from the master secret) a stolen hash cannot be
//! checked against guesses either.

use std::fmt;

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::master::MasterSecret;

/// HKDF salts. Versioned, and distinct from the alias sealer's, so the
/// hashing key is unrelated to every other key derived from the same input.
const SALT_FROM_MASTER: &[u8] = b"portcullis-api-key-v1";
const SALT_FROM_COOKIE_KEY: &[u8] = b"portcullis-api-key-from-cookie-key-v1";

/// Computes the stored form of API keys. Cloning is cheap (the keyed HMAC
/// state is copied, not re-derived), so every request hashes with no
/// allocation.
#[derive(Clone)]
pub struct ApiKeyHasher {
    keyed: Hmac<Sha256>,
}

impl fmt::Debug for ApiKeyHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKeyHasher(..)")
    }
}

impl ApiKeyHasher {
    /// The hasher of a cluster with a master secret (`[secrets] master`):
    /// HKDF-SHA256 of the master secret, info the cluster name.
    pub fn from_master(master: &MasterSecret, cluster: &str) -> ApiKeyHasher {
        Self::derive(SALT_FROM_MASTER, master.as_bytes(), cluster)
    }

    /// The hasher of a cluster without a master secret, from its shared
    /// cookie key, as the admin token is derived there: every member agrees
    /// on it, but whoever can read the store's cookie key can also check
    /// guesses against the hashes (256-bit random keys make that useless).
    pub fn from_cookie_key(cookie_key: &[u8; 32], cluster: &str) -> ApiKeyHasher {
        Self::derive(SALT_FROM_COOKIE_KEY, cookie_key, cluster)
    }

    fn derive(salt: &[u8], input: &[u8], cluster: &str) -> ApiKeyHasher {
        let hk = Hkdf::<Sha256>::new(Some(salt), input);
        let mut key = Zeroizing::new([0u8; 32]);
        if hk.expand(cluster.as_bytes(), key.as_mut()).is_err() {
            // Unreachable: 32 bytes is far below HKDF-SHA256's limit.
            unreachable!("HKDF-SHA256 output of 32 bytes is always valid");
        }
        // HMAC takes a key of any length.
        let keyed = match Hmac::<Sha256>::new_from_slice(key.as_ref()) {
            Ok(keyed) => keyed,
            Err(_) => unreachable!("HMAC accepts a key of any length"),
        };
        ApiKeyHasher { keyed }
    }

    /// The keyed hash of one presented or created key.
    pub fn hash(&self, key: &[u8]) -> [u8; 32] {
        let mut mac = self.keyed.clone();
        mac.update(key);
        mac.finalize().into_bytes().into()
    }
}

/// A fresh API key: 256 random bits, as `pcl_` and unpadded base64url, so
/// it is recognisable in a secret scanner and safe in a header.
pub fn generate_api_key() -> Zeroizing<String> {
    use base64::Engine;
    let bytes = Zeroizing::new(rand::random::<[u8; 32]>());
    Zeroizing::new(format!(
        "pcl_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_depends_on_the_key_the_master_and_the_cluster() {
        let master = MasterSecret::generate();
        let hasher = ApiKeyHasher::from_master(&master, "prod");
        let h = hasher.hash(b"pcl_a");
        assert_eq!(h, hasher.clone().hash(b"pcl_a"));
        assert_ne!(h, hasher.hash(b"pcl_b"));
        assert_ne!(h, ApiKeyHasher::from_master(&master, "test").hash(b"pcl_a"));
        let other = MasterSecret::generate();
        assert_ne!(h, ApiKeyHasher::from_master(&other, "prod").hash(b"pcl_a"));
        // Not a bare hash of the key.
        use sha2::Digest;
        assert_ne!(h.as_slice(), sha2::Sha256::digest(b"pcl_a").as_slice());
    }

    #[test]
    fn the_cookie_key_fallback_differs_from_the_master_derivation() {
        let master = MasterSecret::generate();
        let same_bytes: [u8; 32] = *master.as_bytes();
        assert_ne!(
            ApiKeyHasher::from_master(&master, "c").hash(b"k"),
            ApiKeyHasher::from_cookie_key(&same_bytes, "c").hash(b"k")
        );
    }

    #[test]
    fn generated_keys_are_256_bit_base64url_and_distinct() {
        let a = generate_api_key();
        let b = generate_api_key();
        assert_ne!(*a, *b);
        let body = a.strip_prefix("pcl_").unwrap();
        assert_eq!(body.len(), 43);
        assert!(body
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }
}
