use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::master::MasterSecret;
use crate::SecretError;

/// HKDF salt. Versioned so a future scheme derives an unrelated key.
const HKDF_SALT: &[u8] = b"portcullis-alias-v1";
/// Prefix of the sealed text format: XChaCha20-Poly1305, key from HKDF as above.
const FORMAT_PREFIX: &str = "v1:";
const KEY_LEN: usize = 32;
/// XChaCha20's 192-bit nonce: random nonces are safe to use without any
/// counter or coordination between members (collisions are negligible even
/// after billions of seals), which a 96-bit nonce would not guarantee.
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// HKDF-SHA256 can produce at most 255 * 32 bytes; our key is far below.
/// Checked at compile time so the `expand` error below really cannot happen.
const _: () = assert!(KEY_LEN <= 255 * 32);

/// Seals and opens alias values. The key is derived once from the master
/// secret and the cluster name with HKDF-SHA256 (salt `portcullis-alias-v1`,
/// info: the cluster name), so two clusters sharing a master secret still
/// cannot read each other's values. The key is wiped from memory on drop.
#[derive(Clone)]
pub struct AliasSealer {
    cipher: XChaCha20Poly1305,
}

impl fmt::Debug for AliasSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AliasSealer(..)")
    }
}

pub(crate) fn derive_alias_key(master: &MasterSecret, cluster: &str) -> Zeroizing<[u8; KEY_LEN]> {
    let hk = Hkdf::<Sha256>::new(Some(HKDF_SALT), master.as_bytes());
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    if hk.expand(cluster.as_bytes(), key.as_mut()).is_err() {
        // Unreachable: expand only fails for outputs longer than 255 hash
        // lengths, which the const assertion above rules out.
        unreachable!("HKDF-SHA256 output of {KEY_LEN} bytes is always valid");
    }
    key
}

impl AliasSealer {
    pub fn new(master: &MasterSecret, cluster: &str) -> AliasSealer {
        let key = derive_alias_key(master, cluster);
        AliasSealer {
            cipher: XChaCha20Poly1305::new(Key::from_slice(key.as_ref())),
        }
    }

    /// Seals `value` under a fresh random nonce, with the alias name as
    /// associated data so the result only opens under the same name.
    ///
    /// Returns text safe to store in a file or etcd:
    /// `"v1:" + base64(nonce || ciphertext || tag)`.
    ///
    /// The alias name is not validated here; callers check it with
    /// [`crate::validate_alias_name`] when it comes from a user.
    ///
    /// # Panics
    ///
    /// Only if `value` is longer than XChaCha20's 256 GiB per-message limit.
    pub fn seal(&self, alias: &str, value: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let payload = Payload {
            msg: value,
            aad: alias.as_bytes(),
        };
        let sealed = match self.cipher.encrypt(XNonce::from_slice(&nonce), payload) {
            Ok(sealed) => sealed,
            // The only failure is a plaintext beyond 2^38 bytes; an alias value
            // of that size cannot exist in a gateway's store.
            Err(_) => panic!("alias value too large to seal ({} bytes)", value.len()),
        };
        let mut raw = Vec::with_capacity(NONCE_LEN + sealed.len());
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&sealed);
        format!("{FORMAT_PREFIX}{}", STANDARD.encode(&raw))
    }

    /// Opens a value produced by [`AliasSealer::seal`] for the same alias.
    ///
    /// Every failure — wrong master secret or cluster name, a value moved to
    /// another alias, tampering, truncation, an unknown format version — is
    /// [`SecretError::CannotOpen`]: the AEAD either verifies the whole value
    /// or yields nothing, so garbage bytes are never returned.
    pub fn open(&self, alias: &str, sealed: &str) -> Result<Vec<u8>, SecretError> {
        let cannot_open = || SecretError::CannotOpen {
            alias: alias.to_string(),
        };
        // Surrounding whitespace (say, a newline added when a value was
        // stored in a file by hand) is not part of the authenticated data.
        let body = sealed
            .trim()
            .strip_prefix(FORMAT_PREFIX)
            .ok_or_else(cannot_open)?;
        let raw = STANDARD.decode(body).map_err(|_| cannot_open())?;
        if raw.len() < NONCE_LEN + TAG_LEN {
            return Err(cannot_open());
        }
        let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
        let payload = Payload {
            msg: ciphertext,
            aad: alias.as_bytes(),
        };
        self.cipher
            .decrypt(XNonce::from_slice(nonce), payload)
            .map_err(|_| cannot_open())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sealer(master: &MasterSecret) -> AliasSealer {
        AliasSealer::new(master, "prod")
    }

    fn assert_cannot_open(result: Result<Vec<u8>, SecretError>, alias: &str) {
        match result {
            Err(err @ SecretError::CannotOpen { .. }) => {
                let msg = err.to_string();
                assert!(msg.contains(&format!("'{alias}'")), "{msg}");
                assert!(msg.contains("different master secret"), "{msg}");
                assert!(msg.contains("altered"), "{msg}");
            }
            other => panic!("expected CannotOpen for {alias}, got {other:?}"),
        }
    }

    #[test]
    fn round_trip() {
        let s = sealer(&MasterSecret::generate());
        for value in [
            &b""[..],
            b"x",
            b"hunter2",
            &[0u8, 255, 10, 13][..],
            &[7u8; 4096][..],
        ] {
            let sealed = s.seal("webhdfs.password", value);
            assert!(sealed.starts_with("v1:"), "{sealed}");
            assert_eq!(s.open("webhdfs.password", &sealed).unwrap(), value);
        }
    }

    #[test]
    fn open_tolerates_surrounding_whitespace() {
        let s = sealer(&MasterSecret::generate());
        let sealed = s.seal("a", b"v");
        assert_eq!(s.open("a", &format!("{sealed}\n")).unwrap(), b"v");
    }

    #[test]
    fn sealed_text_is_single_line_ascii_without_plaintext() {
        let s = sealer(&MasterSecret::generate());
        let sealed = s.seal("a", b"plain-text-marker");
        assert!(sealed.is_ascii());
        assert!(!sealed.contains('\n'));
        assert!(!sealed.contains("plain-text-marker"));
        let expected_len = 3 + (NONCE_LEN + 17 + TAG_LEN).div_ceil(3) * 4;
        assert_eq!(sealed.len(), expected_len);
    }

    #[test]
    fn two_seals_differ() {
        let s = sealer(&MasterSecret::generate());
        let a = s.seal("admin.token", b"same");
        let b = s.seal("admin.token", b"same");
        assert_ne!(a, b, "each seal must use a fresh nonce");
        let nonce = |t: &str| STANDARD.decode(&t[3..]).unwrap()[..NONCE_LEN].to_vec();
        assert_ne!(nonce(&a), nonce(&b));
    }

    #[test]
    fn other_master_secret_cannot_open() {
        let sealed = sealer(&MasterSecret::generate()).seal("admin.token", b"secret");
        let other = sealer(&MasterSecret::generate());
        assert_cannot_open(other.open("admin.token", &sealed), "admin.token");
    }

    #[test]
    fn same_master_secret_in_another_sealer_opens() {
        let master = MasterSecret::generate();
        let sealed = sealer(&master).seal("admin.token", b"secret");
        let copy = MasterSecret::from_base64(&master.to_base64()).unwrap();
        assert_eq!(
            sealer(&copy).open("admin.token", &sealed).unwrap(),
            b"secret"
        );
    }

    #[test]
    fn other_alias_name_cannot_open() {
        let s = sealer(&MasterSecret::generate());
        let sealed = s.seal("cluster.cookie-key", b"secret");
        assert_cannot_open(s.open("admin.token", &sealed), "admin.token");
        assert_cannot_open(s.open("cluster.cookie-ke", &sealed), "cluster.cookie-ke");
    }

    #[test]
    fn other_cluster_name_cannot_open() {
        let master = MasterSecret::generate();
        let sealed = AliasSealer::new(&master, "prod").seal("admin.token", b"secret");
        let staging = AliasSealer::new(&master, "staging");
        assert_cannot_open(staging.open("admin.token", &sealed), "admin.token");
    }

    #[test]
    fn any_changed_character_cannot_open() {
        let s = sealer(&MasterSecret::generate());
        let sealed = s.seal("webhdfs.password", b"correct horse");
        for i in 0..sealed.len() {
            let original = sealed.as_bytes()[i];
            // Two replacements per position: one from the base64 alphabet
            // (exercises the AEAD tag) and one outside it (the decoder).
            for replacement in [if original == b'A' { b'B' } else { b'A' }, b'*'] {
                let mut bytes = sealed.clone().into_bytes();
                bytes[i] = replacement;
                let tampered = String::from_utf8(bytes).unwrap();
                assert_cannot_open(s.open("webhdfs.password", &tampered), "webhdfs.password");
            }
        }
    }

    #[test]
    fn any_flipped_bit_in_the_payload_cannot_open() {
        let s = sealer(&MasterSecret::generate());
        let sealed = s.seal("a", b"value");
        let raw = STANDARD.decode(&sealed[3..]).unwrap();
        for i in 0..raw.len() {
            for bit in 0..8 {
                let mut tampered = raw.clone();
                tampered[i] ^= 1 << bit;
                let text = format!("v1:{}", STANDARD.encode(&tampered));
                assert_cannot_open(s.open("a", &text), "a");
            }
        }
    }

    #[test]
    fn truncated_or_extended_cannot_open() {
        let s = sealer(&MasterSecret::generate());
        let sealed = s.seal("a", b"value");
        for len in 0..sealed.len() {
            assert_cannot_open(s.open("a", &sealed[..len]), "a");
        }
        // Truncation at the byte level, re-encoded as valid base64.
        let raw = STANDARD.decode(&sealed[3..]).unwrap();
        for len in 0..raw.len() {
            let text = format!("v1:{}", STANDARD.encode(&raw[..len]));
            assert_cannot_open(s.open("a", &text), "a");
        }
        let mut longer = raw.clone();
        longer.push(0);
        assert_cannot_open(
            s.open("a", &format!("v1:{}", STANDARD.encode(&longer))),
            "a",
        );
    }

    #[test]
    fn unknown_format_version_cannot_open() {
        let s = sealer(&MasterSecret::generate());
        let sealed = s.seal("a", b"value");
        let v2 = format!("v2:{}", &sealed[3..]);
        assert_cannot_open(s.open("a", &v2), "a");
        assert_cannot_open(s.open("a", &sealed[3..]), "a");
        assert_cannot_open(s.open("a", ""), "a");
        assert_cannot_open(s.open("a", "plaintext"), "a");
    }

    #[test]
    fn debug_hides_the_key() {
        let s = sealer(&MasterSecret::generate());
        assert_eq!(format!("{s:?}"), "AliasSealer(..)");
    }

    /// Recomputes HKDF-SHA256 (RFC 5869) by hand with HMAC, pinning which
    /// input is the salt and which the info: if this changed, every sealed
    /// value in every store would become unreadable.
    #[test]
    fn key_derivation_matches_rfc5869_by_hand() {
        use hmac::{Hmac, Mac};
        type HmacSha256 = Hmac<Sha256>;

        let master = MasterSecret::generate();
        let mut extract = <HmacSha256 as Mac>::new_from_slice(b"portcullis-alias-v1").unwrap();
        extract.update(master.as_bytes());
        let prk = extract.finalize().into_bytes();
        // One 32-byte block: T(1) = HMAC(PRK, info || 0x01).
        let mut expand = <HmacSha256 as Mac>::new_from_slice(&prk).unwrap();
        expand.update(b"my-cluster");
        expand.update(&[1u8]);
        let expected = expand.finalize().into_bytes();

        assert_eq!(
            derive_alias_key(&master, "my-cluster").as_slice(),
            expected.as_slice()
        );

        // And a value sealed with an independently built cipher under that
        // key opens with AliasSealer.
        let cipher = XChaCha20Poly1305::new(Key::from_slice(&expected));
        let nonce = [9u8; NONCE_LEN];
        let ct = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: b"v",
                    aad: b"x.y",
                },
            )
            .unwrap();
        let text = format!("v1:{}", STANDARD.encode([&nonce[..], &ct[..]].concat()));
        let sealer = AliasSealer::new(&master, "my-cluster");
        assert_eq!(sealer.open("x.y", &text).unwrap(), b"v");
    }

    proptest! {
        #[test]
        fn prop_round_trip(
            alias in "[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}",
            value in proptest::collection::vec(any::<u8>(), 0..2048),
        ) {
            prop_assert!(crate::validate_alias_name(&alias).is_ok());
            let s = sealer(&MasterSecret::generate());
            let sealed = s.seal(&alias, &value);
            prop_assert_eq!(s.open(&alias, &sealed).unwrap(), value);
        }
    }
}
