use std::time::Duration;

use crate::{parse_topology, ConfigError, RateLimitKey, RateLimitPolicy};

const SERVICE: &str = "[[service]]\nname = \"a\"\nurls = [\"http://127.0.0.1:1\"]\n";
const AUTH: &str = "[service.auth]\nmethods = [\"jwt\"]\njwt = { jwks = \"https://idp.example/jwks\", issuer = \"i\", audiences = [\"a\"] }\n";

const KEYS: &str = "[service.auth]\nmethods = [\"api_key\"]\n";

fn policy(extra: &str, table: &str) -> RateLimitPolicy {
    let text = format!("{SERVICE}{extra}[service.rate_limit]\n{table}");
    let topology = parse_topology("t", "t.toml", &text).unwrap();
    topology.services[0].rate_limit.clone().expect("rate limit")
}

fn errors(extra: &str, table: &str) -> Vec<ConfigError> {
    let text = format!("{SERVICE}{extra}[service.rate_limit]\n{table}");
    parse_topology("t", "t.toml", &text)
        .expect_err("must be refused")
        .0
}

#[test]
fn a_limit_is_parsed_with_its_defaults() {
    let p = policy("", "requests = 100\nkey = \"client_ip\"\n");
    assert_eq!(p.requests, 100);
    assert_eq!(p.per, Duration::from_secs(1));
    assert_eq!(p.burst, 0);
    assert_eq!(p.key, RateLimitKey::ClientIp);
    let none = parse_topology("t", "t.toml", SERVICE).unwrap();
    assert_eq!(none.services[0].rate_limit, None, "no table, no limit");
}

#[test]
fn every_key_kind_is_parsed() {
    let p = policy(
        AUTH,
        "requests = 5\nper = \"1m\"\nburst = 20\nkey = \"principal\"\n",
    );
    assert_eq!(
        (p.requests, p.per, p.burst),
        (5, Duration::from_secs(60), 20)
    );
    assert_eq!(p.key, RateLimitKey::Principal);
    let p = policy(KEYS, "requests = 5\nkey = \"api_key\"\n");
    assert_eq!(p.key, RateLimitKey::ApiKey);
    // Per API key needs the api_key method, not just some [service.auth].
    let refused = errors(AUTH, "requests = 5\nkey = \"api_key\"\n");
    assert!(
        refused[0].message.contains("does not list \"api_key\""),
        "{refused:?}"
    );
    let p = policy("", "requests = 5\nkey = \"header:X-Tenant\"\n");
    assert_eq!(p.key, RateLimitKey::Header("x-tenant".into()));
}

#[test]
fn bad_values_are_named_by_key_path_and_line() {
    let errs = errors(
        "",
        "requests = 0\nper = \"500ms\"\nburst = -1\nkey = \"header:bad name\"\n",
    );
    let found: Vec<(&str, Option<usize>)> =
        errs.iter().map(|e| (e.path.as_str(), e.line)).collect();
    assert_eq!(
        found,
        [
            ("service[0].rate_limit.requests", Some(5)),
            ("service[0].rate_limit.per", Some(6)),
            ("service[0].rate_limit.burst", Some(7)),
            ("service[0].rate_limit.key", Some(8)),
        ]
    );
    let errs = errors("", "requests = 1\nper = \"1500ms\"\nkey = \"client_ip\"\n");
    assert!(errs[0].message.contains("whole seconds"), "{}", errs[0]);
    let errs = errors("", "requests = 1\nkey = \"cookie\"\n");
    assert!(errs[0].message.contains("header:NAME"), "{}", errs[0]);
}

#[test]
fn caller_keys_need_authentication() {
    for key in ["principal", "api_key"] {
        let errs = errors("", &format!("requests = 1\nkey = \"{key}\"\n"));
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].path, "service[0].rate_limit.key");
        assert!(errs[0].message.contains("[service.auth]"), "{}", errs[0]);
    }
}

#[test]
fn unknown_fields_are_refused() {
    let text =
        format!("{SERVICE}[service.rate_limit]\nrequests = 1\nkey = \"client_ip\"\nrate = 3\n");
    assert!(parse_topology("t", "t.toml", &text).is_err());
}
