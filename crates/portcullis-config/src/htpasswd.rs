//! Reading an htpasswd file for Basic authentication. Validation
//! (`portcullis check`, the admin API, a member about to apply) and the
//! data plane's verifier call the same function, so a file that one accepts
//! the other cannot refuse.
//!
//! Only bcrypt (`$2a$`, `$2b$`, `$2y$`) and argon2id lines are accepted:
//! MD5 (`$apr1$`), SHA-1 (`{SHA}`), crypt and plain text hashes are fast
//! enough to brute-force from a stolen file, so a file holding one is
//! refused as a whole, naming the line, rather than that user quietly
//! failing or, worse, passing.

use std::collections::HashMap;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum HtpasswdError {
    #[error("cannot read the htpasswd file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("line {line}: expected USER:HASH")]
    Malformed { line: usize },
    #[error("line {line}: user {user:?} is listed twice")]
    Duplicate { line: usize, user: String },
    #[error("line {line}: user {user:?}: {kind} hashes are refused; only bcrypt ($2y$, from `htpasswd -B`) and argon2id hashes are accepted")]
    WeakHash {
        line: usize,
        user: String,
        kind: &'static str,
    },
    #[error("the htpasswd file lists no user")]
    Empty,
}

/// The hash formats accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HtpasswdHash {
    Bcrypt,
    Argon2,
}

/// One user's stored hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HtpasswdEntry {
    pub kind: HtpasswdHash,
    /// The hash as written (PHC string or bcrypt's modular crypt format).
    pub hash: String,
}

/// The text of a `file:` htpasswd file, `path` relative to `base_dir`.
pub fn read_htpasswd_file(path: &str, base_dir: &Path) -> Result<String, HtpasswdError> {
    let path = base_dir.join(path);
    std::fs::read_to_string(&path).map_err(|source| HtpasswdError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Users and their hashes. Blank lines and `#` comments are skipped.
pub fn parse_htpasswd(text: &str) -> Result<HashMap<String, HtpasswdEntry>, HtpasswdError> {
    let mut users = HashMap::new();
    for (j, raw) in text.lines().enumerate() {
        let line = j + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some((user, hash)) = trimmed.split_once(':') else {
            return Err(HtpasswdError::Malformed { line });
        };
        if user.is_empty() || hash.is_empty() {
            return Err(HtpasswdError::Malformed { line });
        }
        let kind = hash_kind(hash).map_err(|kind| HtpasswdError::WeakHash {
            line,
            user: user.to_string(),
            kind,
        })?;
        let entry = HtpasswdEntry {
            kind,
            hash: hash.to_string(),
        };
        if users.insert(user.to_string(), entry).is_some() {
            return Err(HtpasswdError::Duplicate {
                line,
                user: user.to_string(),
            });
        }
    }
    if users.is_empty() {
        return Err(HtpasswdError::Empty);
    }
    Ok(users)
}

/// The accepted format of `hash`, or the name of the refused one.
fn hash_kind(hash: &str) -> Result<HtpasswdHash, &'static str> {
    if ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p)) {
        return Ok(HtpasswdHash::Bcrypt);
    }
    if hash.starts_with("$argon2id$") {
        return Ok(HtpasswdHash::Argon2);
    }
    Err(if hash.starts_with("$apr1$") || hash.starts_with("$1$") {
        "MD5"
    } else if hash.starts_with("{SHA}") {
        "SHA-1"
    } else if hash.starts_with("$argon2") {
        "argon2 variant other than argon2id"
    } else if hash.starts_with("$5$") || hash.starts_with("$6$") {
        "SHA-crypt"
    } else {
        "crypt or plain text"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BCRYPT: &str = "$2y$05$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui";
    const ARGON2: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";

    #[test]
    fn bcrypt_and_argon2_lines_are_read() {
        let text = format!("# users\n\nann:{BCRYPT}\nbob:{ARGON2}\n");
        let users = parse_htpasswd(&text).unwrap();
        assert_eq!(users["ann"].kind, HtpasswdHash::Bcrypt);
        assert_eq!(users["bob"].kind, HtpasswdHash::Argon2);
        assert_eq!(users["bob"].hash, ARGON2);
    }

    #[test]
    fn weak_hashes_are_refused_naming_the_line() {
        for (hash, kind) in [
            ("$apr1$salt$hash", "MD5"),
            ("{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "SHA-1"),
            ("abJnggxhB/yWI", "crypt or plain text"),
            ("$argon2i$v=19$m=16,t=2,p=1$c2FsdA$aGFzaA", "argon2 variant"),
        ] {
            let err = parse_htpasswd(&format!("ann:{BCRYPT}\ncid:{hash}\n")).unwrap_err();
            let text = err.to_string();
            assert!(text.starts_with("line 2: user \"cid\""), "{text}");
            assert!(text.contains(kind), "{text}");
        }
    }

    #[test]
    fn malformed_duplicate_and_empty_files_are_refused() {
        assert!(matches!(
            parse_htpasswd("no colon\n"),
            Err(HtpasswdError::Malformed { line: 1 })
        ));
        assert!(matches!(
            parse_htpasswd(&format!("a:{BCRYPT}\na:{BCRYPT}\n")),
            Err(HtpasswdError::Duplicate { line: 2, .. })
        ));
        assert!(matches!(
            parse_htpasswd("# nobody\n"),
            Err(HtpasswdError::Empty)
        ));
    }
}
