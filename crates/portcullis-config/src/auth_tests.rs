use std::time::Duration;

use crate::{
    load_topology, parse_topology, AuthMethod, AuthPolicy, ConfigError, ConfigErrors, JwksSource,
    Topology,
};

const SERVICE: &str = "[[service]]\nname = \"a\"\nurls = [\"http://127.0.0.1:1\"]\n";

fn topo(auth: &str) -> Result<Topology, ConfigErrors> {
    parse_topology("t", "t.toml", &format!("{SERVICE}[service.auth]\n{auth}"))
}

fn errors(auth: &str) -> Vec<ConfigError> {
    topo(auth).expect_err("must be refused").0
}

fn policy(auth: &str) -> AuthPolicy {
    topo(auth).unwrap().services.remove(0).auth.expect("auth")
}

const JWT: &str =
    r#"jwt = { jwks = "file:jwks.json", issuer = "https://idp.example", audiences = ["orders"] }"#;

#[test]
fn a_jwt_policy_is_parsed_with_its_defaults() {
    let p = policy(&format!("methods = [\"jwt\"]\n{JWT}\n"));
    assert_eq!(p.methods, [AuthMethod::Jwt]);
    assert_eq!(p.identity_header, "x-forwarded-user");
    assert!(!p.knox_doas);
    let jwt = p.jwt.unwrap();
    assert_eq!(jwt.jwks, JwksSource::File("jwks.json".into()));
    assert_eq!(jwt.issuer, "https://idp.example");
    assert_eq!(jwt.audiences, ["orders"]);
    assert_eq!(jwt.leeway, Duration::from_secs(30));
    let none = parse_topology("t", "t.toml", SERVICE).unwrap();
    assert_eq!(none.services[0].auth, None, "no table, no authentication");
}

#[test]
fn every_key_is_parsed() {
    let p = policy(
        "methods = [\"jwt\"]\nidentity_header = \"X-Remote-User\"\nknox_doas = true\n[service.auth.jwt]\njwks = \"https://idp.example/jwks\"\nissuer = \"i\"\naudiences = [\"a\", \"b\"]\nleeway = \"2m\"\n",
    );
    assert_eq!(p.identity_header, "x-remote-user");
    assert!(p.knox_doas);
    let jwt = p.jwt.unwrap();
    assert!(matches!(&jwt.jwks, JwksSource::Url(u) if u.as_str() == "https://idp.example/jwks"));
    assert_eq!(jwt.audiences, ["a", "b"]);
    assert_eq!(jwt.leeway, Duration::from_secs(120));
}

#[test]
fn every_method_is_accepted_and_a_table_without_its_method_refused() {
    let p = policy(&format!(
        "methods = [\"basic\", \"jwt\", \"api_key\"]\n{JWT}\nbasic = {{ htpasswd = \"file:x\" }}\n"
    ));
    assert_eq!(
        p.methods,
        [AuthMethod::Basic, AuthMethod::Jwt, AuthMethod::ApiKey]
    );
    let table = errors(&format!(
        "methods = [\"jwt\"]\n{JWT}\nbasic = {{ htpasswd = \"file:x\" }}\n"
    ));
    assert_eq!(table[0].path, "service[0].auth.basic");
    assert!(table[0].message.contains("does not list"), "{}", table[0]);
    let twice = errors(&format!("methods = [\"jwt\", \"jwt\"]\n{JWT}\n"));
    assert_eq!(twice[0].path, "service[0].auth.methods[1]");
    let unknown = errors("methods = [\"kerberos\"]\n");
    assert!(
        unknown[0].to_string().contains("service[0].auth.methods"),
        "{}",
        unknown[0]
    );
}

#[test]
fn an_api_key_policy_takes_the_default_header_or_the_one_given() {
    let p = policy("methods = [\"api_key\"]\n");
    assert_eq!(p.methods, [AuthMethod::ApiKey]);
    assert_eq!(p.api_key.unwrap().header, "x-api-key");
    assert_eq!(p.jwt, None);
    let p = policy(&format!(
        "methods = [\"jwt\", \"api_key\"]\n{JWT}\napi_key = {{ header = \"X-Gateway-Key\" }}\n"
    ));
    assert_eq!(p.methods, [AuthMethod::Jwt, AuthMethod::ApiKey]);
    assert_eq!(p.api_key.unwrap().header, "x-gateway-key");
    assert!(p.jwt.is_some());
}

#[test]
fn an_api_key_header_must_be_a_free_header_name() {
    for (header, expected) in [
        ("Authorization", "sets or removes itself"),
        ("Cookie", "sets or removes itself"),
        ("Host", "sets or removes itself"),
        ("bad header", "expected an HTTP header name"),
    ] {
        let errs = errors(&format!(
            "methods = [\"api_key\"]\napi_key = {{ header = \"{header}\" }}\n"
        ));
        assert_eq!(errs[0].path, "service[0].auth.api_key.header", "{header}");
        assert!(errs[0].message.contains(expected), "{}", errs[0]);
        assert_eq!(errs[0].line, Some(6), "{}", errs[0]);
    }
    let unlisted = errors(&format!(
        "methods = [\"jwt\"]\n{JWT}\napi_key = {{ header = \"X-API-Key\" }}\n"
    ));
    assert_eq!(unlisted[0].path, "service[0].auth.api_key");
    assert!(
        unlisted[0].message.contains("does not list"),
        "{}",
        unlisted[0]
    );
    let unknown = errors("methods = [\"api_key\"]\napi_key = { name = \"x\" }\n");
    assert!(unknown[0].to_string().contains("api_key"), "{}", unknown[0]);
}

#[test]
fn methods_and_tables_must_agree() {
    assert_eq!(errors("methods = []\n")[0].path, "service[0].auth.methods");
    let no_table = errors("methods = [\"jwt\"]\n");
    assert_eq!(no_table[0].path, "service[0].auth.methods");
    assert!(no_table[0].message.contains("no jwt ="), "{}", no_table[0]);
    let twice = errors(&format!("methods = [\"jwt\", \"jwt\"]\n{JWT}\n"));
    assert_eq!(twice[0].path, "service[0].auth.methods[1]");
}

#[test]
fn jwt_values_are_checked_with_their_key_paths() {
    let cases = [
        (
            r#"jwks = "ftp://x/jwks""#,
            "service[0].auth.jwt.jwks",
            "scheme",
        ),
        (r#"jwks = "file:""#, "service[0].auth.jwt.jwks", "path"),
        (
            r#"jwks = "http://idp.example/jwks""#,
            "service[0].auth.jwt.jwks",
            "loopback",
        ),
        (
            r#"jwks = "https://u:p@idp.example/jwks""#,
            "service[0].auth.jwt.jwks",
            "credentials",
        ),
        (r#"issuer = """#, "service[0].auth.jwt.issuer", "issuer"),
        (
            r#"audiences = []"#,
            "service[0].auth.jwt.audiences",
            "at least one",
        ),
        (
            r#"audiences = ["a", ""]"#,
            "service[0].auth.jwt.audiences[1]",
            "non-empty",
        ),
        (r#"leeway = "11m""#, "service[0].auth.jwt.leeway", "between"),
        (
            r#"leeway = "1500ms""#,
            "service[0].auth.jwt.leeway",
            "whole seconds",
        ),
    ];
    for (line, path, says) in cases {
        let mut table = vec![
            ("jwks", r#"jwks = "file:j.json""#),
            ("issuer", r#"issuer = "i""#),
            ("audiences", r#"audiences = ["a"]"#),
        ];
        let key = line.split(' ').next().unwrap();
        table.retain(|(k, _)| *k != key);
        let mut text = format!("methods = [\"jwt\"]\n[service.auth.jwt]\n{line}\n");
        for (_, other) in table {
            text.push_str(other);
            text.push('\n');
        }
        let errs = errors(&text);
        assert_eq!(errs[0].path, path, "{line}: {}", errs[0]);
        assert!(errs[0].message.contains(says), "{line}: {}", errs[0]);
        assert_eq!(errs[0].line, Some(7), "{line}: {}", errs[0]);
    }
}

#[test]
fn http_is_allowed_for_loopback_hosts_only() {
    for url in [
        "http://127.0.0.1:8080/jwks",
        "http://[::1]/jwks",
        "http://localhost/jwks",
        "http://127.9.9.9/k",
    ] {
        let p = policy(&format!(
            "methods = [\"jwt\"]\njwt = {{ jwks = \"{url}\", issuer = \"i\", audiences = [\"a\"] }}\n"
        ));
        assert!(matches!(p.jwt.unwrap().jwks, JwksSource::Url(_)), "{url}");
    }
}

#[test]
fn identity_headers_must_be_names_the_gateway_does_not_own() {
    for (name, says) in [
        ("X Bad", "header name"),
        ("Authorization", "sets or removes"),
        ("host", "sets or removes"),
    ] {
        let errs = errors(&format!(
            "methods = [\"jwt\"]\n{JWT}\nidentity_header = \"{name}\"\n"
        ));
        assert_eq!(errs[0].path, "service[0].auth.identity_header", "{name}");
        assert!(errs[0].message.contains(says), "{name}: {}", errs[0]);
    }
}

#[test]
fn a_file_key_set_is_checked_when_the_topology_is_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("{SERVICE}[service.auth]\nmethods = [\"jwt\"]\n{JWT}\n");
    let missing = load_topology("t", "t.toml", &text, dir.path()).expect_err("no file");
    assert_eq!(missing.0[0].path, "service[0].auth.jwt.jwks");
    assert!(missing.0[0].message.contains("cannot read"), "{missing}");
    std::fs::write(
        dir.path().join("jwks.json"),
        r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#,
    )
    .unwrap();
    let useless = load_topology("t", "t.toml", &text, dir.path()).expect_err("no usable key");
    assert!(useless.0[0].message.contains("no usable"), "{useless}");
    std::fs::write(
        dir.path().join("jwks.json"),
        r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#,
    )
    .unwrap();
    load_topology("t", "t.toml", &text, dir.path()).expect("a good key set");
}
