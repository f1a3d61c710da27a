use crate::{load_topology, parse_topology, BasicPolicy, ConfigError, Topology};

const SERVICE: &str = "[[service]]\nname = \"a\"\nurls = [\"http://127.0.0.1:1\"]\n";

fn topo(auth: &str) -> Result<Topology, crate::ConfigErrors> {
    parse_topology("t", "t.toml", &format!("{SERVICE}[service.auth]\n{auth}"))
}

fn errors(auth: &str) -> Vec<ConfigError> {
    topo(auth).expect_err("must be refused").0
}

fn basic(auth: &str) -> BasicPolicy {
    let mut topology = topo(auth).unwrap();
    topology.services.remove(0).auth.unwrap().basic.unwrap()
}

const LDAP: &str = r#"basic = { ldap = "ldaps://ldap.example", bind_dn = "uid={user},ou=people,dc=example,dc=com", group_base = "ou=groups,dc=example,dc=com" }"#;

#[test]
fn an_ldap_policy_is_parsed() {
    let BasicPolicy::Ldap(ldap) = basic(&format!("methods = [\"basic\"]\n{LDAP}\n")) else {
        panic!("not ldap");
    };
    assert_eq!(ldap.url.as_str(), "ldaps://ldap.example");
    assert_eq!(ldap.bind_dn, "uid={user},ou=people,dc=example,dc=com");
    assert_eq!(
        ldap.group_base.as_deref(),
        Some("ou=groups,dc=example,dc=com")
    );
    assert!(!ldap.starttls);
    assert_eq!(ldap.tls_ca, None);
    let starttls = basic(
        "methods = [\"jwt\", \"basic\"]\njwt = { jwks = \"file:j.json\", issuer = \"i\", audiences = [\"a\"] }\n[service.auth.basic]\nldap = \"ldap://ldap.example:389\"\nstarttls = true\ntls_ca = \"ca.pem\"\nbind_dn = \"cn={user},dc=x\"\n",
    );
    let BasicPolicy::Ldap(ldap) = starttls else {
        panic!("not ldap");
    };
    assert!(ldap.starttls);
    assert_eq!(ldap.tls_ca.as_deref(), Some("ca.pem"));
    assert_eq!(ldap.group_base, None);
}

#[test]
fn an_htpasswd_policy_is_parsed() {
    let p = basic("methods = [\"basic\"]\nbasic = { htpasswd = \"file:users.htpasswd\" }\n");
    assert_eq!(p, BasicPolicy::Htpasswd("users.htpasswd".into()));
}

#[test]
fn ldap_values_are_checked_with_their_key_paths() {
    let dn = r#"bind_dn = "uid={user},dc=x""#;
    let cases = [
        (
            r#"ldap = "ldap://ldap.example""#,
            dn,
            "basic.ldap",
            "in clear",
        ),
        (
            r#"ldap = "http://ldap.example""#,
            dn,
            "basic.ldap",
            "scheme",
        ),
        (
            r#"ldap = "ldaps://u:p@ldap.example""#,
            dn,
            "basic.ldap",
            "credentials",
        ),
        (
            r#"ldap = "ldaps://ldap.example/dc=x""#,
            dn,
            "basic.ldap",
            "host[:port] only",
        ),
        (
            "ldap = \"ldaps://ldap.example\"\nstarttls = true",
            dn,
            "basic.ldap",
            "TLS from the start",
        ),
        (
            r#"ldap = "ldaps://ldap.example""#,
            r#"bind_dn = "uid=ann,dc=x""#,
            "basic.bind_dn",
            "{user}",
        ),
        (
            r#"ldap = "ldaps://ldap.example""#,
            "",
            "basic.bind_dn",
            "{user}",
        ),
        (
            "ldap = \"ldap://127.0.0.1:3890\"\ntls_ca = \"ca.pem\"",
            dn,
            "basic.tls_ca",
            "no TLS",
        ),
        (
            "ldap = \"ldaps://ldap.example\"\ngroup_base = \"\"",
            dn,
            "basic.group_base",
            "no groups",
        ),
        (
            "ldap = \"ldaps://ldap.example\"\nhtpasswd = \"file:u\"",
            dn,
            "basic",
            "exactly one",
        ),
        ("htpasswd = \"users\"", "", "basic.htpasswd", "file:PATH"),
        (
            "htpasswd = \"file:u\"\nstarttls = true",
            "",
            "basic.starttls",
            "LDAP key",
        ),
    ];
    for (first, second, path, says) in cases {
        let errs = errors(&format!(
            "methods = [\"basic\"]\n[service.auth.basic]\n{first}\n{second}\n"
        ));
        assert_eq!(
            errs[0].path,
            format!("service[0].auth.{path}"),
            "{first}: {}",
            errs[0]
        );
        assert!(errs[0].message.contains(says), "{first}: {}", errs[0]);
        assert!(errs[0].line.is_some(), "{first}: {}", errs[0]);
    }
    // Plain LDAP is fine to a loopback directory (a local slapd or proxy).
    for host in ["127.0.0.1:3890", "[::1]", "localhost"] {
        basic(&format!(
            "methods = [\"basic\"]\nbasic = {{ ldap = \"ldap://{host}\", bind_dn = \"uid={{user}},dc=x\" }}\n"
        ));
    }
}

#[test]
fn methods_and_the_basic_table_must_agree() {
    let no_table = errors("methods = [\"basic\"]\n");
    assert_eq!(no_table[0].path, "service[0].auth.methods");
    assert!(no_table[0].message.contains("no basic"), "{}", no_table[0]);
    let jwt = r#"jwt = { jwks = "file:j.json", issuer = "i", audiences = ["a"] }"#;
    let stray = errors(&format!("methods = [\"jwt\"]\n{jwt}\n{LDAP}\n"));
    assert_eq!(stray[0].path, "service[0].auth.basic");
    let unknown =
        errors("methods = [\"basic\"]\nbasic = { htpasswd = \"file:u\", realm = \"x\" }\n");
    assert!(unknown[0].to_string().contains("realm"), "{}", unknown[0]);
}

#[test]
fn an_htpasswd_file_with_a_weak_hash_is_refused_when_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{SERVICE}[service.auth]\nmethods = [\"basic\"]\nbasic = {{ htpasswd = \"file:users\" }}\n"
    );
    let missing = load_topology("t", "t.toml", &text, dir.path()).expect_err("no file");
    assert_eq!(missing.0[0].path, "service[0].auth.basic.htpasswd");
    assert!(missing.0[0].message.contains("cannot read"), "{missing}");
    let bcrypt = "ann:$2y$05$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui\n";
    std::fs::write(dir.path().join("users"), format!("{bcrypt}bob:$apr1$x$y\n")).unwrap();
    let weak = load_topology("t", "t.toml", &text, dir.path()).expect_err("MD5");
    assert_eq!(weak.0[0].path, "service[0].auth.basic.htpasswd");
    assert!(weak.0[0].message.contains("line 2"), "{weak}");
    assert!(weak.0[0].message.contains("MD5"), "{weak}");
    std::fs::write(dir.path().join("users"), bcrypt).unwrap();
    load_topology("t", "t.toml", &text, dir.path()).expect("a bcrypt-only file");
}
