//! Basic credentials checked against an htpasswd file of bcrypt and
//! argon2id hashes, read once when the topology is applied.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::Argon2;
use portcullis_config::{HtpasswdEntry, HtpasswdHash};
use tokio::sync::Semaphore;

use crate::{AuthResult, PolicyError, Principal};

pub struct HtpasswdFile {
    users: HashMap<String, HtpasswdEntry>,
    /// A hash checked for unknown users, so that they take as long to
    /// refuse as a wrong password does.
    decoy: HtpasswdEntry,
    /// Hash checks run on the blocking pool, at most one per core: a flood
    /// of wrong passwords then waits here instead of taking every thread.
    workers: Arc<Semaphore>,
}

impl HtpasswdFile {
    pub fn load(path: &str, base_dir: &Path) -> Result<HtpasswdFile, PolicyError> {
        let text = portcullis_config::read_htpasswd_file(path, base_dir)
            .map_err(|e| PolicyError::Basic(e.to_string()))?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<HtpasswdFile, PolicyError> {
        let users = portcullis_config::parse_htpasswd(text)
            .map_err(|e| PolicyError::Basic(e.to_string()))?;
        for (user, entry) in &users {
            let usable = match entry.kind {
                HtpasswdHash::Argon2 => PasswordHash::new(&entry.hash).is_ok_and(|hash| {
                    hash.hash.is_some() && argon2::Params::try_from(&hash).is_ok()
                }),
                // bcrypt's own parser runs on every check; a bad line
                // refuses every password for that user.
                HtpasswdHash::Bcrypt => true,
            };
            if !usable {
                return Err(PolicyError::Basic(format!(
                    "user {user:?}: the argon2id hash is not a valid PHC string"
                )));
            }
        }
        let decoy = users
            .values()
            .next()
            .cloned()
            .ok_or_else(|| PolicyError::Basic("the htpasswd file lists no user".to_string()))?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(HtpasswdFile {
            users,
            decoy,
            workers: Arc::new(Semaphore::new(cores)),
        })
    }

    /// One answer, [`AuthResult::Invalid`], for an unknown user and a wrong
    /// password alike.
    pub async fn verify(&self, user: &str, password: &str) -> Result<Principal, AuthResult> {
        let (entry, known) = match self.users.get(user) {
            Some(entry) => (entry.clone(), true),
            None => (self.decoy.clone(), false),
        };
        let _permit = self
            .workers
            .acquire()
            .await
            .map_err(|_| AuthResult::Unavailable)?;
        let password = password.to_owned();
        let matches = tokio::task::spawn_blocking(move || hash_matches(&entry, &password))
            .await
            .map_err(|_| AuthResult::Unavailable)?;
        if matches && known {
            Ok(Principal::named(user))
        } else {
            Err(AuthResult::Invalid)
        }
    }
}

/// Slow on purpose (that is what these hashes are for): call off the
/// runtime's worker threads.
fn hash_matches(entry: &HtpasswdEntry, password: &str) -> bool {
    match entry.kind {
        HtpasswdHash::Bcrypt => bcrypt::verify(password, &entry.hash).unwrap_or(false),
        HtpasswdHash::Argon2 => PasswordHash::new(&entry.hash).is_ok_and(|hash| {
            Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok()
        }),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, SaltString};

    /// Test hashes made here at the lowest costs, so the tests stay fast.
    pub(crate) fn htpasswd_text() -> String {
        let bcrypt = bcrypt::hash("ann-pw", 4).unwrap();
        let params = argon2::Params::new(256, 1, 1, None).unwrap();
        let argon = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let salt = SaltString::from_b64("c2FsdHNhbHRzYWx0").unwrap();
        let argon = argon.hash_password(b"bob-pw", &salt).unwrap().to_string();
        format!("ann:{bcrypt}\nbob:{argon}\n")
    }

    #[tokio::test]
    async fn bcrypt_and_argon2_users_pass_with_their_password_only() {
        let file = HtpasswdFile::parse(&htpasswd_text()).unwrap();
        assert_eq!(file.verify("ann", "ann-pw").await.unwrap().name, "ann");
        assert_eq!(file.verify("bob", "bob-pw").await.unwrap().name, "bob");
        assert_eq!(file.verify("ann", "bob-pw").await, Err(AuthResult::Invalid));
        assert_eq!(file.verify("bob", "").await, Err(AuthResult::Invalid));
        // An unknown user with a password some user has is still refused.
        assert_eq!(file.verify("cid", "ann-pw").await, Err(AuthResult::Invalid));
    }

    #[test]
    fn a_broken_argon2_line_is_refused_when_loaded() {
        let err = HtpasswdFile::parse("ann:$argon2id$nonsense\n")
            .err()
            .unwrap();
        assert!(err.to_string().contains("\"ann\""), "{err}");
        let weak = HtpasswdFile::parse("ann:$apr1$a$b\n").err().unwrap();
        assert!(weak.to_string().contains("MD5"), "{weak}");
    }
}
