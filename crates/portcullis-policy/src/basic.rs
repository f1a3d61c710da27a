//! The Basic method (RFC 7617): `Authorization: Basic base64(user:password)`
//! checked against an LDAP directory or an htpasswd file, with recent
//! outcomes remembered (see `basic_cache`).

use std::path::Path;

use base64::Engine;
use portcullis_config::BasicPolicy;

use crate::basic_cache::{cache_key, CredentialCache};
use crate::htpasswd::HtpasswdFile;
use crate::ldap::LdapDirectory;
use crate::{AuthResult, Authorization, PolicyError, Principal};

/// The challenge of every Basic refusal (RFC 7617 §2.1: UTF-8 user names
/// and passwords).
pub const BASIC_CHALLENGE: &str = "Basic realm=\"portcullis\", charset=\"UTF-8\"";

enum Checker {
    Ldap(LdapDirectory),
    Htpasswd(HtpasswdFile),
}

pub struct BasicVerifier {
    checker: Checker,
    cache: CredentialCache,
}

impl BasicVerifier {
    /// Reads an htpasswd file, or a directory's CA file, now.
    pub fn build(policy: &BasicPolicy, base_dir: &Path) -> Result<BasicVerifier, PolicyError> {
        let checker = match policy {
            BasicPolicy::Ldap(ldap) => Checker::Ldap(LdapDirectory::build(ldap, base_dir)?),
            BasicPolicy::Htpasswd(path) => Checker::Htpasswd(HtpasswdFile::load(path, base_dir)?),
        };
        Ok(BasicVerifier {
            checker,
            cache: CredentialCache::default(),
        })
    }

    /// The remembered outcome for these credentials, if fresh: the common
    /// case, answered without a future (see `Method::attempt`).
    pub fn cached(&self, user: &str, password: &str) -> Option<Result<Principal, AuthResult>> {
        self.cache.get(&cache_key(user, password))
    }

    /// A principal, or why not. Only a verdict is remembered: while the
    /// directory is down, a login seen good within the last minute still
    /// passes and any other gets [`AuthResult::Unavailable`].
    pub async fn verify(&self, user: &str, password: &str) -> Result<Principal, AuthResult> {
        let key = cache_key(user, password);
        let check = async {
            match &self.checker {
                Checker::Ldap(directory) => directory.verify(user, password).await,
                Checker::Htpasswd(file) => file.verify(user, password).await,
            }
        };
        self.cache.outcome(key, check).await
    }
}

/// The user and password of the one `Authorization: Basic` field. Another
/// scheme counts as no Basic credentials ([`AuthResult::Missing`]); two
/// fields, bad base64, no colon, an empty user or non-UTF-8 text as
/// [`AuthResult::Invalid`].
pub fn basic_credentials(authorization: &Authorization) -> Result<(String, String), AuthResult> {
    let value = authorization.field()?;
    let value = value.to_str().map_err(|_| AuthResult::Invalid)?;
    let (scheme, encoded) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(AuthResult::Missing);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| AuthResult::Invalid)?;
    let text = String::from_utf8(decoded).map_err(|_| AuthResult::Invalid)?;
    let (user, password) = text.split_once(':').ok_or(AuthResult::Invalid)?;
    if user.is_empty() || user.chars().any(char::is_control) {
        return Err(AuthResult::Invalid);
    }
    Ok((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{HeaderMap, HeaderValue, AUTHORIZATION};

    fn headers(values: &[&str]) -> Authorization {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        Authorization::take(&mut map)
    }

    fn basic(text: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(text)
        )
    }

    #[test]
    fn basic_credentials_are_found_or_the_reason_why_not() {
        let found = basic_credentials(&headers(&[&basic("ann:pa:ss wörd")]));
        assert_eq!(found, Ok(("ann".into(), "pa:ss wörd".into())));
        let lower = basic("ann:").replacen("Basic", "basic", 1);
        assert_eq!(
            basic_credentials(&headers(&[&lower])),
            Ok(("ann".into(), String::new()))
        );
        assert_eq!(basic_credentials(&headers(&[])), Err(AuthResult::Missing));
        assert_eq!(
            basic_credentials(&headers(&["Bearer abc"])),
            Err(AuthResult::Missing)
        );
        for bad in [
            "Basic".to_string(),
            "Basic !!!".to_string(),
            basic("no-colon"),
            basic(":pw"),
            basic("a\nb:pw"),
        ] {
            assert_eq!(
                basic_credentials(&headers(&[&bad])),
                Err(AuthResult::Invalid),
                "{bad}"
            );
        }
        let twice = headers(&[&basic("a:b"), &basic("c:d")]);
        assert_eq!(basic_credentials(&twice), Err(AuthResult::Invalid));
    }

    #[tokio::test]
    async fn an_htpasswd_verifier_remembers_its_verdicts() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("users"),
            crate::htpasswd::tests::htpasswd_text(),
        )
        .unwrap();
        let policy = BasicPolicy::Htpasswd("users".into());
        let verifier = BasicVerifier::build(&policy, dir.path()).unwrap();
        assert_eq!(verifier.verify("ann", "ann-pw").await.unwrap().name, "ann");
        assert_eq!(verifier.verify("ann", "x").await, Err(AuthResult::Invalid));
        assert!(verifier.cache.get(&cache_key("ann", "ann-pw")).is_some());
        assert!(verifier.cache.get(&cache_key("ann", "x")).is_some());
        let missing = BasicVerifier::build(&BasicPolicy::Htpasswd("gone".into()), dir.path());
        assert!(matches!(missing, Err(PolicyError::Basic(_))));
    }
}
