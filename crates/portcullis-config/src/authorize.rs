//! Validation of `[service.authorize]` (PRODUCT.md §11): which callers a
//! service admits once they are authenticated. Every list, when given, must
//! hold something: an empty list would admit no one, which is surely not
//! what was meant (omit the key to not check that kind).

use crate::model::{AuthorizeMode, AuthorizePolicy};
use crate::raw::{FileAuthorize, FileAuthorizeMode};
use crate::validator::Validator;

pub(crate) fn authorize(
    v: &mut Validator<'_>,
    at: &str,
    raw: FileAuthorize,
    has_auth: bool,
) -> AuthorizePolicy {
    let at = format!("{at}.authorize");
    if raw.users.is_none() && raw.groups.is_none() && raw.claims.is_none() && raw.cidrs.is_none() {
        v.error(
            &at,
            "expected at least one of users, groups, claims, cidrs; omit [service.authorize] to admit every caller",
        );
    }
    let needs_principal = raw.users.is_some() || raw.groups.is_some() || raw.claims.is_some();
    if needs_principal && !has_auth {
        v.error(
            &at,
            "users, groups and claims need an authenticated caller: add [service.auth] (only cidrs work without it)",
        );
    }
    let users = names(v, &format!("{at}.users"), raw.users, "user name");
    let groups = names(v, &format!("{at}.groups"), raw.groups, "group name");
    let claims = raw.claims.map(|claims| {
        if claims.is_empty() {
            v.error(
                &format!("{at}.claims"),
                "expected at least one claim, such as { scope = \"orders:read\" }; omit claims to not check any",
            );
        }
        for (name, value) in &claims {
            if name.is_empty() || value.is_empty() {
                v.error(
                    &format!("{at}.claims.{name}"),
                    "expected a claim name and a non-empty value",
                );
            }
        }
        claims.into_iter().collect()
    });
    let cidrs = raw.cidrs.map(|list| cidrs(v, &format!("{at}.cidrs"), list));
    AuthorizePolicy {
        users,
        groups,
        claims,
        cidrs,
        mode: match raw.mode {
            None | Some(FileAuthorizeMode::All) => AuthorizeMode::All,
            Some(FileAuthorizeMode::Any) => AuthorizeMode::Any,
        },
    }
}

fn names(
    v: &mut Validator<'_>,
    path: &str,
    raw: Option<Vec<String>>,
    what: &str,
) -> Option<Vec<String>> {
    let list = raw?;
    if list.is_empty() {
        v.error(
            path,
            format!("expected at least one {what}; omit the key to not check it"),
        );
    }
    for (j, name) in list.iter().enumerate() {
        if name.is_empty() {
            v.error(
                &format!("{path}[{j}]"),
                format!("expected a non-empty {what}"),
            );
        }
    }
    Some(list)
}

/// `10.0.0.0/8`, `2001:db8::/32`, or a bare address (one host). Host bits
/// set below the prefix (`10.0.0.1/8`) are refused: the writer may have
/// meant either the host or the network.
fn cidrs(v: &mut Validator<'_>, path: &str, raw: Vec<String>) -> Vec<ipnet::IpNet> {
    if raw.is_empty() {
        v.error(
            path,
            "expected at least one network, such as \"10.0.0.0/8\"; omit cidrs to admit every address",
        );
    }
    networks(v, path, raw)
        .into_iter()
        .map(|(_, net)| net)
        .collect()
}

/// Each entry of `raw` that is a network, as [`cidrs`] reads them, with its
/// index; an error at `path[j]` for each entry that is none.
pub(crate) fn networks(
    v: &mut Validator<'_>,
    path: &str,
    raw: Vec<String>,
) -> Vec<(usize, ipnet::IpNet)> {
    let mut nets = Vec::with_capacity(raw.len());
    for (j, text) in raw.iter().enumerate() {
        let parsed = text
            .parse::<ipnet::IpNet>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
        match parsed {
            Ok(net) if net.trunc() != net => v.error(
                &format!("{path}[{j}]"),
                format!(
                    "{text:?} has host bits set below the prefix; write the network {:?} or the host alone",
                    net.trunc().to_string()
                ),
            ),
            Ok(net) => nets.push((j, net)),
            Err(_) => v.error(
                &format!("{path}[{j}]"),
                format!("expected an address or a network such as \"10.0.0.0/8\", found {text:?}"),
            ),
        }
    }
    nets
}

#[cfg(test)]
mod tests {
    use crate::{parse_topology, AuthorizeMode, AuthorizePolicy, ConfigError, Topology};

    const SERVICE: &str = "[[service]]\nname = \"a\"\nurls = [\"http://127.0.0.1:1\"]\n";
    const AUTH: &str = "[service.auth]\nmethods = [\"jwt\"]\njwt = { jwks = \"file:j.json\", issuer = \"i\", audiences = [\"a\"] }\n";

    fn topo(auth: &str, authorize: &str) -> Result<Topology, crate::ConfigErrors> {
        parse_topology(
            "t",
            "t.toml",
            &format!("{SERVICE}{auth}[service.authorize]\n{authorize}"),
        )
    }

    fn policy(authorize: &str) -> AuthorizePolicy {
        let mut t = topo(AUTH, authorize).unwrap();
        t.services.remove(0).authorize.expect("authorize")
    }

    fn errors(auth: &str, authorize: &str) -> Vec<ConfigError> {
        topo(auth, authorize).expect_err("must be refused").0
    }

    #[test]
    fn every_kind_is_parsed() {
        let p = policy(
            "users = [\"alice\"]\ngroups = [\"analysts\", \"ops\"]\nclaims = { scope = \"orders:read\", tenant = \"acme\" }\ncidrs = [\"10.0.0.0/8\", \"::1\", \"192.168.1.7\"]\n",
        );
        assert_eq!(p.users.unwrap(), ["alice"]);
        assert_eq!(p.groups.unwrap(), ["analysts", "ops"]);
        assert_eq!(
            p.claims.unwrap(),
            [
                ("scope".to_string(), "orders:read".to_string()),
                ("tenant".to_string(), "acme".to_string())
            ]
        );
        let cidrs: Vec<String> = p.cidrs.unwrap().iter().map(|n| n.to_string()).collect();
        assert_eq!(cidrs, ["10.0.0.0/8", "::1/128", "192.168.1.7/32"]);
        assert_eq!(p.mode, AuthorizeMode::All);
        assert_eq!(
            policy("users = [\"a\"]\nmode = \"any\"\n").mode,
            AuthorizeMode::Any
        );
        assert_eq!(policy("users = [\"a\"]\n").groups, None);
    }

    #[test]
    fn cidrs_alone_need_no_authentication() {
        let t = topo("", "cidrs = [\"127.0.0.1/32\"]\n").unwrap();
        assert!(t.services[0].auth.is_none());
        assert!(t.services[0].authorize.is_some());
        let errs = errors("", "users = [\"alice\"]\ncidrs = [\"127.0.0.1/32\"]\n");
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].path, "service[0].authorize");
        assert!(errs[0].message.contains("[service.auth]"), "{errs:?}");
    }

    #[test]
    fn bad_values_are_named_by_key_path_and_line() {
        let errs = errors(
            AUTH,
            "users = []\ngroups = [\"\"]\nclaims = {}\ncidrs = [\"10.0.0.1/8\", \"nope\", \"10.0.0.0/33\"]\n",
        );
        let found: Vec<(&str, Option<usize>)> =
            errs.iter().map(|e| (e.path.as_str(), e.line)).collect();
        assert_eq!(
            found,
            [
                ("service[0].authorize.users", Some(8)),
                ("service[0].authorize.groups[0]", Some(9)),
                ("service[0].authorize.claims", Some(10)),
                ("service[0].authorize.cidrs[0]", Some(11)),
                ("service[0].authorize.cidrs[1]", Some(11)),
                ("service[0].authorize.cidrs[2]", Some(11)),
            ]
        );
        assert!(errs[3].message.contains("\"10.0.0.0/8\""), "{errs:?}");
        let empty = errors(AUTH, "");
        assert_eq!(empty[0].path, "service[0].authorize");
        let unknown = errors(AUTH, "ips = [\"10.0.0.0/8\"]\n");
        assert!(unknown[0].message.contains("ips"), "{unknown:?}");
    }
}
