//! `[service.authorize]` (PRODUCT.md §11, docs/policies.md): whether an
//! authenticated caller (or, with `cidrs` only, any caller) may pass. Within
//! a kind one entry is enough; across the kinds given, mode `all` (Knox
//! AclsAuthz's default) needs every kind, mode `any` one of them.

use std::net::IpAddr;

use portcullis_config::{AuthorizeMode, AuthorizePolicy};

use crate::Principal;

/// Claims whose string value is a space-separated list of words
/// (RFC 8693 §4.2 `scope`; `scp` as several identity providers spell it).
const WORD_LIST_CLAIMS: [&str; 2] = ["scope", "scp"];

/// True when `policy` admits the caller. `principal` is `None` for a
/// service without `[service.auth]`; then only `cidrs` can match (validation
/// refuses the other kinds without auth, and here they fail closed).
pub fn admits(policy: &AuthorizePolicy, principal: Option<&Principal>, client: IpAddr) -> bool {
    let mut verdicts = [
        policy
            .users
            .as_ref()
            .map(|users| principal.is_some_and(|p| users.contains(&p.name))),
        policy
            .groups
            .as_ref()
            .map(|groups| principal.is_some_and(|p| p.groups.iter().any(|g| groups.contains(g)))),
        policy.claims.as_ref().map(|claims| {
            principal.is_some_and(|p| claims.iter().all(|(name, value)| has_claim(p, name, value)))
        }),
        policy.cidrs.as_ref().map(|nets| {
            // An IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d.
            let client = client.to_canonical();
            nets.iter().any(|net| net.contains(&client))
        }),
    ]
    .into_iter()
    .flatten();
    match policy.mode {
        AuthorizeMode::All => verdicts.all(|admitted| admitted),
        AuthorizeMode::Any => verdicts.any(|admitted| admitted),
    }
}

/// The claim equals `value`, or is an array holding it, or (for a word list
/// claim) holds it as one of its words.
fn has_claim(principal: &Principal, name: &str, value: &str) -> bool {
    let Some(values) = principal.claims.get(name) else {
        return false;
    };
    let words = WORD_LIST_CLAIMS.contains(&name);
    values
        .iter()
        .any(|v| v == value || (words && v.split_ascii_whitespace().any(|w| w == value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(toml: &str) -> AuthorizePolicy {
        let text = format!(
            "[[service]]\nname = \"a\"\nurls = [\"http://127.0.0.1:1\"]\n[service.auth]\nmethods = [\"jwt\"]\njwt = {{ jwks = \"file:j.json\", issuer = \"i\", audiences = [\"a\"] }}\n[service.authorize]\n{toml}"
        );
        let mut t = portcullis_config::parse_topology("t", "t.toml", &text).unwrap();
        t.services.remove(0).authorize.unwrap()
    }

    fn alice() -> Principal {
        let mut p = Principal::named("alice");
        p.groups = vec!["analysts".into(), "ops".into()];
        p.claims
            .insert("scope".into(), vec!["orders:read orders:write".into()]);
        p.claims
            .insert("roles".into(), vec!["a".into(), "b".into()]);
        p.claims.insert("tenant".into(), vec!["acme".into()]);
        p.claims.insert("note".into(), vec!["x orders:read".into()]);
        p
    }

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn each_kind_matches_one_of_its_entries() {
        let p = alice();
        let admits = |toml: &str| admits(&policy(toml), Some(&p), HOME);
        assert!(admits("users = [\"bob\", \"alice\"]"));
        assert!(!admits("users = [\"bob\"]"));
        assert!(!admits("users = [\"Alice\"]"), "names are compared exactly");
        assert!(admits("groups = [\"ops\"]"));
        assert!(!admits("groups = [\"admins\"]"));
        assert!(admits("cidrs = [\"127.0.0.0/8\"]"));
        assert!(!admits("cidrs = [\"10.0.0.0/8\"]"));
    }

    #[test]
    fn claims_match_a_value_an_array_item_or_a_scope_word() {
        let p = alice();
        let admits = |toml: &str| admits(&policy(toml), Some(&p), HOME);
        assert!(admits("claims = { tenant = \"acme\" }"));
        assert!(admits("claims = { roles = \"b\" }"));
        assert!(admits("claims = { scope = \"orders:write\" }"));
        assert!(
            !admits("claims = { scope = \"orders\" }"),
            "whole words only"
        );
        assert!(
            !admits("claims = { note = \"orders:read\" }"),
            "only scope claims are word lists"
        );
        assert!(!admits("claims = { tenant = \"acme\", roles = \"c\" }"));
        assert!(!admits("claims = { missing = \"x\" }"));
    }

    #[test]
    fn kinds_combine_with_and_unless_the_mode_is_any() {
        let p = alice();
        let both = "users = [\"alice\"]\ncidrs = [\"10.0.0.0/8\"]\n";
        assert!(!admits(&policy(both), Some(&p), HOME));
        assert!(admits(
            &policy(&format!("{both}mode = \"any\"")),
            Some(&p),
            HOME
        ));
        let ten: IpAddr = "10.1.2.3".parse().unwrap();
        assert!(admits(&policy(both), Some(&p), ten));
    }

    #[test]
    fn an_anonymous_caller_passes_only_on_its_address() {
        let policy = policy("cidrs = [\"127.0.0.1/32\"]\nusers = [\"alice\"]\nmode = \"any\"");
        assert!(admits(&policy, None, HOME));
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(admits(&policy, None, mapped), "IPv4-mapped is IPv4");
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(!admits(&policy, None, other));
    }
}
