use std::fmt;
use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::{DecodeError, DecodeSliceError, Engine};
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::SecretError;

/// Length of the master secret in bytes.
pub(crate) const MASTER_LEN: usize = 32;
/// Length of its padded base64 form: 4 * ceil(32 / 3).
const MASTER_B64_LEN: usize = 44;

/// Domain-separation label for fingerprints, so the fingerprint is not a hash
/// that any other use of the key might also publish.
const FINGERPRINT_LABEL: &[u8] = b"portcullis-master-fingerprint-v1\0";

/// 32 random bytes; the cluster's root secret. Every member must hold the
/// same one. The bytes are wiped from memory when the value is dropped, and
/// `Debug` never shows them.
#[derive(Clone)]
pub struct MasterSecret {
    bytes: Zeroizing<[u8; MASTER_LEN]>,
}

impl fmt::Debug for MasterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterSecret(..)")
    }
}

impl MasterSecret {
    /// A fresh secret from the thread-local CSPRNG (seeded from the OS).
    pub fn generate() -> MasterSecret {
        let mut bytes = Zeroizing::new([0u8; MASTER_LEN]);
        rand::rng().fill_bytes(bytes.as_mut());
        MasterSecret { bytes }
    }

    /// Decodes standard (padded) base64, ignoring surrounding whitespace so a
    /// file's trailing newline does not matter. Must decode to exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<MasterSecret, SecretError> {
        Self::decode(text, "master secret")
    }

    /// The secret as one line of standard base64 (no newline).
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.bytes.as_ref())
    }

    /// Reads a secret written by [`MasterSecret::write_new_file`] (or any
    /// file holding one line of base64). Errors name the file.
    pub fn load_file(path: &Path) -> Result<MasterSecret, SecretError> {
        let text = std::fs::read_to_string(path)
            .map(Zeroizing::new)
            .map_err(|source| SecretError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        Self::decode(&text, &format!("master secret in file {}", path.display()))
    }

    /// Reads a secret from environment variable `name`. Errors name the variable.
    pub fn load_env(name: &str) -> Result<MasterSecret, SecretError> {
        let what = format!("master secret in environment variable {name}");
        let value = std::env::var_os(name).ok_or_else(|| SecretError::MissingEnv {
            name: name.to_string(),
        })?;
        let value = Zeroizing::new(value.into_string().map_err(|_| SecretError::BadEncoding {
            what: what.clone(),
            reason: "not valid UTF-8 (expected base64)".to_string(),
        })?);
        Self::decode(&value, &what)
    }

    /// Writes the secret as base64 on one line plus a newline, to a file that
    /// must not exist yet, created with mode 0600 (owner read/write only).
    ///
    /// Refusing to overwrite matters: replacing a master secret silently
    /// makes every sealed alias value in the store unreadable.
    pub fn write_new_file(&self, path: &Path) -> Result<(), SecretError> {
        let io_err = |source| SecretError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut options = std::fs::OpenOptions::new();
        // `create_new` is O_CREAT|O_EXCL: atomic, and it does not follow a
        // symlink planted at `path`.
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            // Set at creation, so the file is never readable by others, not
            // even briefly. The umask can only remove bits from 0600.
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                SecretError::Exists {
                    path: path.to_path_buf(),
                }
            } else {
                io_err(source)
            }
        })?;

        let mut line = Zeroizing::new(self.to_base64());
        line.push('\n');
        let written = file
            .write_all(line.as_bytes())
            .and_then(|()| file.sync_all());
        if let Err(source) = written {
            // A half-written secret is worse than none: it would block a retry
            // (the file exists) and fail to decode later. Best-effort cleanup.
            drop(file);
            let _ = std::fs::remove_file(path);
            return Err(io_err(source));
        }
        Ok(())
    }

    /// A short public fingerprint (16 hex digits: the first 8 bytes of
    /// SHA-256 over a fixed label and the key), so operators can check that
    /// members hold the same secret without revealing it.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::new()
            .chain_update(FINGERPRINT_LABEL)
            .chain_update(self.bytes.as_ref())
            .finalize();
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    pub(crate) fn as_bytes(&self) -> &[u8; MASTER_LEN] {
        &self.bytes
    }

    fn decode(text: &str, what: &str) -> Result<MasterSecret, SecretError> {
        let bad = |reason: String| SecretError::BadEncoding {
            what: what.to_string(),
            reason,
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(bad(format!(
                "it is empty; expected {MASTER_LEN} bytes in base64 \
                 (as written by `portcullis master create`)"
            )));
        }
        // Decode into a fixed buffer rather than a Vec so no unwiped copy of
        // the secret is left on the heap. The extra room lets us report the
        // actual length of a too-long value instead of a generic error.
        let mut buf = Zeroizing::new([0u8; MASTER_LEN * 4]);
        if trimmed.len() > buf.len() * 4 / 3 {
            return Err(bad(format!(
                "it is {} characters long; a master secret is {MASTER_LEN} bytes \
                 ({MASTER_B64_LEN} characters of base64)",
                trimmed.len(),
            )));
        }
        let len = STANDARD
            .decode_slice(trimmed, buf.as_mut())
            .map_err(|e| bad(describe_base64_error(e)))?;
        if len != MASTER_LEN {
            return Err(bad(format!(
                "it decodes to {len} bytes; a master secret is exactly {MASTER_LEN} bytes \
                 (as written by `portcullis master create`)"
            )));
        }
        let mut bytes = Zeroizing::new([0u8; MASTER_LEN]);
        bytes.copy_from_slice(&buf[..MASTER_LEN]);
        Ok(MasterSecret { bytes })
    }
}

/// The base64 crate's messages include the offending input byte; for a
/// secret even one character is too much to put in a log, so only the kind
/// and position of the problem are reported.
fn describe_base64_error(err: DecodeSliceError) -> String {
    match err {
        DecodeSliceError::DecodeError(DecodeError::InvalidByte(offset, _)) => {
            format!("not base64 (invalid character at position {offset})")
        }
        DecodeSliceError::DecodeError(DecodeError::InvalidLastSymbol(offset, _)) => {
            format!("not base64 (invalid last symbol at position {offset})")
        }
        DecodeSliceError::DecodeError(DecodeError::InvalidLength(_)) => {
            "not base64 (invalid length)".to_string()
        }
        DecodeSliceError::DecodeError(DecodeError::InvalidPadding) => {
            "not base64 (invalid padding)".to_string()
        }
        // Cannot happen: the caller bounds the input length by the buffer.
        DecodeSliceError::OutputSliceTooSmall => "too long".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generate_base64_round_trip() {
        let secret = MasterSecret::generate();
        let text = secret.to_base64();
        assert_eq!(text.len(), MASTER_B64_LEN);
        let back = MasterSecret::from_base64(&text).unwrap();
        assert_eq!(back.as_bytes(), secret.as_bytes());
        assert_ne!(
            MasterSecret::generate().as_bytes(),
            secret.as_bytes(),
            "two generated secrets must differ"
        );
    }

    #[test]
    fn from_base64_trims_whitespace() {
        let secret = MasterSecret::generate();
        let text = format!("  {}\r\n", secret.to_base64());
        let back = MasterSecret::from_base64(&text).unwrap();
        assert_eq!(back.as_bytes(), secret.as_bytes());
    }

    #[test]
    fn from_base64_rejects_wrong_length() {
        for len in [0usize, 1, 16, 31, 33, 64, 200] {
            let text = STANDARD.encode(vec![7u8; len]);
            let err = MasterSecret::from_base64(&text).unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(err, SecretError::BadEncoding { .. }),
                "len {len}: {err:?}"
            );
            assert!(msg.contains("master secret"), "len {len}: {msg}");
            if len > 0 && len < 64 {
                assert!(msg.contains(&format!("{len} bytes")), "len {len}: {msg}");
            }
            assert!(msg.contains("32 bytes"), "len {len}: {msg}");
        }
    }

    #[test]
    fn from_base64_rejects_bad_base64() {
        for text in ["not base64!!", "@@@@", "AAAA=AAA"] {
            let err = MasterSecret::from_base64(text).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, SecretError::BadEncoding { .. }), "{err:?}");
            assert!(msg.contains("not base64"), "{msg}");
            assert!(!msg.contains(text), "error must not echo the input: {msg}");
        }
    }

    #[test]
    fn debug_hides_the_secret() {
        let secret = MasterSecret::generate();
        let shown = format!("{secret:?}");
        assert_eq!(shown, "MasterSecret(..)");
    }

    #[test]
    fn write_new_file_is_0600_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let secret = MasterSecret::generate();
        secret.write_new_file(&path).unwrap();

        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode was {:o}", mode & 0o777);

        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("{}\n", secret.to_base64()));
        assert_eq!(text.lines().count(), 1);

        let back = MasterSecret::load_file(&path).unwrap();
        assert_eq!(back.as_bytes(), secret.as_bytes());
    }

    #[test]
    fn write_new_file_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        std::fs::write(&path, "precious\n").unwrap();

        let err = MasterSecret::generate().write_new_file(&path).unwrap_err();
        assert!(matches!(err, SecretError::Exists { .. }), "{err:?}");
        assert!(err.to_string().contains(&path.display().to_string()));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious\n");
    }

    #[test]
    fn write_new_file_reports_io_errors_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no-such-dir").join("master.key");
        let err = MasterSecret::generate().write_new_file(&path).unwrap_err();
        assert!(matches!(err, SecretError::Io { .. }), "{err:?}");
        assert!(err.to_string().contains(&path.display().to_string()));
    }

    #[test]
    fn load_file_with_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let secret = MasterSecret::generate();
        std::fs::write(&path, format!("{}\n", secret.to_base64())).unwrap();
        let back = MasterSecret::load_file(&path).unwrap();
        assert_eq!(back.as_bytes(), secret.as_bytes());
    }

    #[test]
    fn load_file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.key");
        let err = MasterSecret::load_file(&missing).unwrap_err();
        assert!(matches!(err, SecretError::Io { .. }), "{err:?}");
        assert!(err.to_string().contains(&missing.display().to_string()));

        let garbage = dir.path().join("garbage.key");
        std::fs::write(&garbage, "hello\n").unwrap();
        let err = MasterSecret::load_file(&garbage).unwrap_err();
        assert!(matches!(err, SecretError::BadEncoding { .. }), "{err:?}");
        assert!(err.to_string().contains(&garbage.display().to_string()));
    }

    #[test]
    fn load_env_reads_and_names_the_variable() {
        // Unique names: tests run in parallel threads of one process.
        let name = "PORTCULLIS_SECRETS_TEST_MASTER_7f3a9c";
        let secret = MasterSecret::generate();
        std::env::set_var(name, format!("{}\n", secret.to_base64()));
        let back = MasterSecret::load_env(name).unwrap();
        assert_eq!(back.as_bytes(), secret.as_bytes());

        let bad = "PORTCULLIS_SECRETS_TEST_BAD_7f3a9c";
        std::env::set_var(bad, "short");
        let err = MasterSecret::load_env(bad).unwrap_err();
        assert!(matches!(err, SecretError::BadEncoding { .. }), "{err:?}");
        assert!(err.to_string().contains(bad), "{err}");

        let missing = "PORTCULLIS_SECRETS_TEST_UNSET_7f3a9c";
        let err = MasterSecret::load_env(missing).unwrap_err();
        assert!(matches!(err, SecretError::MissingEnv { .. }), "{err:?}");
        assert!(err.to_string().contains(missing), "{err}");
    }

    #[test]
    fn fingerprint_is_stable_distinct_and_not_the_secret() {
        let a = MasterSecret::generate();
        let b = MasterSecret::generate();
        let fa = a.fingerprint();
        assert_eq!(fa, a.fingerprint());
        assert_eq!(
            fa,
            MasterSecret::from_base64(&a.to_base64())
                .unwrap()
                .fingerprint()
        );
        assert_ne!(fa, b.fingerprint());
        assert_eq!(fa.len(), 16);
        assert!(fa
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        let b64 = a.to_base64();
        assert!(!fa.contains(&b64) && !b64.contains(&fa));
        assert!(!fa.contains(&b64[..8]));
    }

    #[test]
    fn fingerprint_matches_its_definition() {
        // Pins the documented construction, so fingerprints stay comparable
        // across versions of the binary.
        let secret = MasterSecret::from_base64(&STANDARD.encode([0x42u8; 32])).unwrap();
        let mut h = Sha256::new();
        h.update(b"portcullis-master-fingerprint-v1\0");
        h.update([0x42u8; 32]);
        let d = h.finalize();
        let expected: String = d[..8].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(secret.fingerprint(), expected);
    }
}
