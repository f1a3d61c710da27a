//! Basic credentials checked against an LDAP directory: a simple bind as
//! the user (the directory checks the password, the gateway never sees a
//! hash), then the user's groups by a search under `group_base`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ldap3::{dn_escape, ldap_escape, Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use portcullis_config::LdapPolicy;
use rustls::ClientConfig;

use crate::{AuthResult, PolicyError, Principal};

/// Connecting, and each operation after: a directory slower than this is
/// treated as down (503), not as a refusal.
const LDAP_TIMEOUT: Duration = Duration::from_secs(5);

/// LDAP result codes (RFC 4511 §4.1.9) that are a verdict on the
/// credentials: invalidCredentials, noSuchObject, invalidDNSyntax,
/// inappropriateAuthentication, unwillingToPerform (a locked account).
const REFUSED_CODES: [u32; 5] = [49, 32, 34, 48, 53];

pub struct LdapDirectory {
    url: String,
    bind_dn: String,
    group_base: Option<String>,
    settings: LdapConnSettings,
}

impl LdapDirectory {
    pub fn build(policy: &LdapPolicy, base_dir: &Path) -> Result<LdapDirectory, PolicyError> {
        let roots = match &policy.tls_ca {
            Some(ca) => Arc::new(
                portcullis_config::load_tls_ca(ca, base_dir)
                    .map_err(|e| PolicyError::Basic(format!("tls_ca: {e}")))?,
            ),
            None => crate::fetch::SYSTEM_ROOTS.clone(),
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| PolicyError::Basic(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let settings = LdapConnSettings::new()
            .set_conn_timeout(LDAP_TIMEOUT)
            .set_starttls(policy.starttls)
            .set_config(Arc::new(tls));
        Ok(LdapDirectory {
            url: policy.url.as_str().to_string(),
            bind_dn: policy.bind_dn.clone(),
            group_base: policy.group_base.clone(),
            settings,
        })
    }

    /// A principal with the user's groups; [`AuthResult::Invalid`] for a
    /// wrong password and an unknown user alike; [`AuthResult::Unavailable`]
    /// when the directory cannot be asked.
    pub async fn verify(&self, user: &str, password: &str) -> Result<Principal, AuthResult> {
        // An empty password is an unauthenticated bind (RFC 4513 §5.1.2),
        // which many directories answer with success.
        if password.is_empty() || user.is_empty() {
            return Err(AuthResult::Invalid);
        }
        let (conn, mut ldap) = LdapConnAsync::with_settings(self.settings.clone(), &self.url)
            .await
            .map_err(|e| unavailable("connect", &e))?;
        ldap3::drive!(conn);
        ldap.with_timeout(LDAP_TIMEOUT);
        let outcome = self.bind_and_search(&mut ldap, user, password).await;
        let _ = ldap.unbind().await;
        outcome
    }

    async fn bind_and_search(
        &self,
        ldap: &mut Ldap,
        user: &str,
        password: &str,
    ) -> Result<Principal, AuthResult> {
        let dn = self.bind_dn.replace("{user}", &dn_escape(user));
        let bound = ldap
            .simple_bind(&dn, password)
            .await
            .map_err(|e| unavailable("bind", &e))?;
        match bound.rc {
            0 => {}
            rc if REFUSED_CODES.contains(&rc) => return Err(AuthResult::Invalid),
            rc => {
                tracing::warn!(rc, text = %bound.text, "LDAP bind failed");
                return Err(AuthResult::Unavailable);
            }
        }
        let name = self.stored_name(ldap, &dn, user).await;
        let groups = match &self.group_base {
            Some(base) => self.groups(ldap, base, &dn, &name).await?,
            None => Vec::new(),
        };
        Ok(Principal {
            groups,
            ..Principal::named(name)
        })
    }

    /// The user name as the directory spells it: attribute values in DNs
    /// usually compare without case, so `ANN` binds as `ann`, and the
    /// backends and authorization should see one name for one account. The
    /// name as typed when the entry cannot be read or does not match.
    async fn stored_name(&self, ldap: &mut Ldap, dn: &str, user: &str) -> String {
        let Some(attr) = naming_attribute(&self.bind_dn) else {
            return user.to_string();
        };
        let found = ldap
            .search(dn, Scope::Base, "(objectClass=*)", vec![attr])
            .await
            .and_then(|found| found.success());
        let Ok((entries, _)) = found else {
            return user.to_string();
        };
        entries
            .into_iter()
            .map(SearchEntry::construct)
            .flat_map(|entry| entry.attrs.into_values().flatten())
            .find(|value| value.to_lowercase() == user.to_lowercase())
            .unwrap_or_else(|| user.to_string())
    }

    /// The `cn` of every group naming the user, by DN (groupOfNames,
    /// groupOfUniqueNames) or by name (posixGroup).
    async fn groups(
        &self,
        ldap: &mut Ldap,
        base: &str,
        dn: &str,
        user: &str,
    ) -> Result<Vec<String>, AuthResult> {
        let filter = group_filter(dn, user);
        let (entries, _) = ldap
            .search(base, Scope::Subtree, &filter, vec!["cn"])
            .await
            .and_then(|found| found.success())
            .map_err(|e| unavailable("group search", &e))?;
        let mut groups: Vec<String> = entries
            .into_iter()
            .map(SearchEntry::construct)
            .map(
                |entry| match entry.attrs.get("cn").and_then(|cn| cn.first()) {
                    Some(cn) => cn.clone(),
                    None => entry.dn,
                },
            )
            .collect();
        groups.sort();
        groups.dedup();
        Ok(groups)
    }
}

/// `uid` for `uid={user},ou=people,...`: the attribute the user name is
/// the value of, when `{user}` is a whole RDN value.
fn naming_attribute(bind_dn: &str) -> Option<&str> {
    let before = bind_dn.split("={user}").next()?;
    let attr = before.rsplit([',', '+']).next()?.trim();
    let whole_value = bind_dn.contains("={user},") || bind_dn.ends_with("={user}");
    (whole_value && !attr.is_empty()).then_some(attr)
}

/// Both values filter-escaped (RFC 4515), so a user name cannot widen the
/// search.
fn group_filter(dn: &str, user: &str) -> String {
    let (dn, user) = (ldap_escape(dn), ldap_escape(user));
    format!("(|(member={dn})(uniqueMember={dn})(memberUid={user}))")
}

fn unavailable(step: &str, err: &ldap3::LdapError) -> AuthResult {
    tracing::warn!(step, error = %err, "LDAP directory unavailable");
    AuthResult::Unavailable
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_are_escaped_for_dns_and_filters() {
        let filter = group_filter("uid=a\\2Cb,dc=x", "*)(uid=*");
        assert_eq!(
            filter,
            "(|(member=uid=a\\5c2Cb,dc=x)(uniqueMember=uid=a\\5c2Cb,dc=x)(memberUid=\\2a\\29\\28uid=\\2a))"
        );
        // RFC 4514 §2.4 hex pairs: the DN cannot gain a component.
        assert_eq!(dn_escape("a,b+c"), "a\\2cb\\2bc");
        assert_eq!(naming_attribute("uid={user},ou=people,dc=x"), Some("uid"));
        assert_eq!(naming_attribute("ou=x, cn={user}"), Some("cn"));
        assert_eq!(naming_attribute("cn=pre-{user},dc=x"), None);
    }
}
