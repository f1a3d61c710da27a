//! The cluster's cookie key and the MACs made with it. A leaf: backends
//! compute their sticky tag with it when they are built, and the sticky
//! cookie code checks tags against them.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// 128 bits of the MAC, base64url: short, and still unguessable.
const TAG_BYTES: usize = 16;

/// The cluster's cookie key. Never logged.
#[derive(Clone)]
pub struct CookieKey([u8; 32]);

impl CookieKey {
    pub fn new(bytes: [u8; 32]) -> CookieKey {
        CookieKey(bytes)
    }

    /// A key for one process only (tests, or before the store supplies one).
    pub fn random() -> CookieKey {
        CookieKey(rand::random())
    }

    /// The MAC of `label` under this key, as a cookie-safe string. `label`
    /// separates uses of the key (backend stickiness, member affinity).
    pub fn tag(&self, label: &str, id: &str) -> String {
        // HMAC zero-pads keys shorter than the hash block, so the padded block
        // is the same key, and this constructor cannot fail.
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(&self.0);
        let mut mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new(&block.into());
        mac.update(label.as_bytes());
        mac.update(&[0]);
        mac.update(id.as_bytes());
        let digest = mac.finalize().into_bytes();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..TAG_BYTES])
    }
}

impl std::fmt::Debug for CookieKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieKey(..)")
    }
}

/// The sticky cookie value for a backend.
pub fn backend_tag(key: &CookieKey, backend_id: &str) -> String {
    key.tag("portcullis-sticky", backend_id)
}
