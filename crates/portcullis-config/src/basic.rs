//! Validation of `[service.auth] basic = { ... }` (PRODUCT.md §11): an LDAP
//! directory to bind against, or an htpasswd file.

use std::path::Path;

use crate::model::{BasicPolicy, LdapPolicy};
use crate::raw::FileBasic;
use crate::validator::Validator;

pub(crate) fn basic_policy(v: &mut Validator<'_>, at: &str, raw: FileBasic) -> Option<BasicPolicy> {
    match (raw.ldap.is_some(), raw.htpasswd.is_some()) {
        (true, true) | (false, false) => {
            v.error(
                at,
                "expected exactly one of ldap = \"ldaps://...\" and htpasswd = \"file:PATH\"",
            );
            None
        }
        (false, true) => htpasswd(v, at, raw),
        (true, false) => ldap(v, at, raw),
    }
}

fn htpasswd(v: &mut Validator<'_>, at: &str, raw: FileBasic) -> Option<BasicPolicy> {
    for (key, given) in [
        ("bind_dn", raw.bind_dn.is_some()),
        ("group_base", raw.group_base.is_some()),
        ("starttls", raw.starttls.is_some()),
        ("tls_ca", raw.tls_ca.is_some()),
    ] {
        if given {
            v.error(
                &format!("{at}.{key}"),
                format!("{key} is an LDAP key; an htpasswd file takes none"),
            );
        }
    }
    let file = raw.htpasswd.unwrap_or_default();
    match file.strip_prefix("file:") {
        Some(path) if !path.is_empty() => Some(BasicPolicy::Htpasswd(path.to_string())),
        _ => {
            v.error(
                &format!("{at}.htpasswd"),
                format!("expected \"file:PATH\", found {file:?}"),
            );
            None
        }
    }
}

fn ldap(v: &mut Validator<'_>, at: &str, raw: FileBasic) -> Option<BasicPolicy> {
    let starttls = raw.starttls.unwrap_or(false);
    let url = ldap_url(v, &format!("{at}.ldap"), raw.ldap.as_deref()?, starttls);
    let bind_dn = raw.bind_dn.unwrap_or_default();
    if !bind_dn.contains("{user}") {
        v.error(
            &format!("{at}.bind_dn"),
            "expected the DN users bind as, with {user} for the user name, such as \"uid={user},ou=people,dc=example,dc=com\"",
        );
    }
    if raw.group_base.as_deref() == Some("") {
        v.error(
            &format!("{at}.group_base"),
            "expected the DN groups are searched under, or no group_base for no groups",
        );
    }
    let tls = url
        .as_ref()
        .is_some_and(|u| u.scheme() == "ldaps" || starttls);
    if raw.tls_ca.is_some() && !tls {
        v.error(
            &format!("{at}.tls_ca"),
            "tls_ca is for ldaps:// or starttls = true; this connection has no TLS",
        );
    }
    Some(BasicPolicy::Ldap(LdapPolicy {
        url: url?,
        bind_dn,
        group_base: raw.group_base,
        starttls,
        tls_ca: raw.tls_ca,
    }))
}

/// `ldaps://`, or `ldap://` with StartTLS or to a loopback host: a user's
/// password goes to the directory in every bind, so a plain connection
/// across a network is refused, not merely warned about.
fn ldap_url(v: &mut Validator<'_>, path: &str, raw: &str, starttls: bool) -> Option<url::Url> {
    let problem = match url::Url::parse(raw) {
        Err(e) => format!("expected an ldaps:// or ldap:// URL, found {raw:?} ({e})"),
        Ok(url) => match url.scheme() {
            _ if url.host_str().is_none_or(str::is_empty) => "expected a URL with a host".to_string(),
            _ if !url.username().is_empty() || url.password().is_some() => {
                "the directory URL must not carry credentials; users bind as themselves".to_string()
            }
            _ if !matches!(url.path(), "" | "/") || url.query().is_some() => {
                "expected scheme://host[:port] only; the DNs go in bind_dn and group_base".to_string()
            }
            "ldaps" if starttls => {
                "starttls = true is for ldap://; ldaps:// is TLS from the start".to_string()
            }
            "ldaps" => return Some(url),
            "ldap" if starttls || is_loopback(&url) => return Some(url),
            "ldap" => "ldap:// to a host other than loopback would send passwords in clear; use ldaps:// or starttls = true".to_string(),
            other => format!("expected an ldaps:// or ldap:// URL, found scheme {other:?}"),
        },
    };
    v.error(path, problem);
    None
}

/// `ldap:` is not a scheme the URL standard knows, so its host is opaque
/// text, never a parsed address: parse it here.
fn is_loopback(url: &url::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The files a Basic policy names must be readable and usable, as the
/// member applying it reads them.
pub(crate) fn basic_files(v: &mut Validator<'_>, at: &str, basic: &BasicPolicy, base_dir: &Path) {
    match basic {
        BasicPolicy::Htpasswd(file) => {
            let loaded = crate::htpasswd::read_htpasswd_file(file, base_dir)
                .and_then(|text| crate::htpasswd::parse_htpasswd(&text));
            if let Err(err) = loaded {
                v.error(&format!("{at}.htpasswd"), err.to_string());
            }
        }
        BasicPolicy::Ldap(LdapPolicy {
            tls_ca: Some(ca), ..
        }) => {
            if let Err(err) = crate::tls::load_tls_ca(ca, base_dir) {
                v.error(&format!("{at}.tls_ca"), err.to_string());
            }
        }
        BasicPolicy::Ldap(_) => {}
    }
}

#[cfg(test)]
#[path = "basic_tests.rs"]
mod tests;
