use portcullis_config::{parse_topology, AuthMethod, AuthorizeMode, JwksSource, Topology};

use crate::convert_knox_topology;
use crate::security::is_loopback_ldap;

fn provider(role: &str, name: &str, params: &[(&str, &str)]) -> String {
    let params: String = params
        .iter()
        .map(|(n, v)| format!("<param><name>{n}</name><value>{v}</value></param>"))
        .collect();
    format!("<provider><role>{role}</role><name>{name}</name><enabled>true</enabled>{params}</provider>")
}

const SERVICES: &str =
    "<service><role>WEBHDFS</role><url>http://nn.example.com:50070/webhdfs</url></service>\
    <service><role>HIVE</role><url>http://hs2.example.com:10001/cliservice</url></service>";

fn convert(providers: &str) -> (String, Vec<String>) {
    let xml = format!("<topology><gateway>{providers}</gateway>{SERVICES}</topology>");
    let c = convert_knox_topology(&xml).expect("converts");
    (c.toml, c.warnings)
}

fn load(toml: &str) -> Topology {
    parse_topology("imported", "imported.toml", toml).unwrap_or_else(|e| panic!("{e}\n{toml}"))
}

fn assert_warned(warnings: &[String], needles: &str) {
    let found = warnings
        .iter()
        .any(|w| needles.split('|').all(|n| w.contains(n)));
    assert!(found, "no warning with {needles:?} in {warnings:#?}");
}

fn shiro(extra: &[(&str, &str)]) -> String {
    let mut params = vec![
        ("sessionTimeout", "30"),
        (
            "main.ldapRealm",
            "org.apache.knox.gateway.shirorealm.KnoxLdapRealm",
        ),
        (
            "main.ldapContextFactory",
            "org.apache.knox.gateway.shirorealm.KnoxLdapContextFactory",
        ),
        ("main.ldapRealm.contextFactory", "$ldapContextFactory"),
        (
            "main.ldapRealm.userDnTemplate",
            "uid={0},ou=people,dc=hadoop,dc=apache,dc=org",
        ),
        (
            "main.ldapRealm.contextFactory.url",
            "ldap://ldap.example.com:33389",
        ),
        (
            "main.ldapRealm.contextFactory.authenticationMechanism",
            "simple",
        ),
        ("urls./**", "authcBasic"),
    ];
    params.extend_from_slice(extra);
    provider("authentication", "ShiroProvider", &params)
}

#[test]
fn an_ldap_realm_becomes_basic_with_the_user_in_the_bind_dn() {
    let groups = [
        ("main.ldapRealm.authorizationEnabled", "true"),
        (
            "main.ldapRealm.searchBase",
            "ou=groups,dc=hadoop,dc=apache,dc=org",
        ),
        (
            "main.ldapRealm.contextFactory.systemUsername",
            "uid=guest,ou=people,dc=hadoop,dc=apache,dc=org",
        ),
        (
            "main.ldapRealm.memberAttributeValueTemplate",
            "uid={0},ou=people,dc=hadoop,dc=apache,dc=org",
        ),
    ];
    let (toml, warnings) =
        convert(&(shiro(&groups) + &provider("identity-assertion", "Default", &[])));
    let expected = concat!(
        "\n[service.auth]\nmethods = [\"basic\"]\n",
        "basic = { ldap = \"ldap://ldap.example.com:33389\", starttls = true, bind_dn = \"uid={user},ou=people,dc=hadoop,dc=apache,dc=org\", group_base = \"ou=groups,dc=hadoop,dc=apache,dc=org\" }\n",
        "identity_header = \"X-Forwarded-User\"  # Knox Default identity assertion\n",
        "knox_doas = true  # Knox Default identity assertion: ?doAs=<user>\n",
    );
    assert_eq!(toml.matches(expected).count(), 2, "every service: {toml}");
    assert_warned(&warnings, "ShiroProvider param sessionTimeout|no sessions");
    assert_warned(
        &warnings,
        "main.ldapRealm.contextFactory.systemUsername|signed-in user",
    );
    assert_warned(&warnings, "memberAttributeValueTemplate|group_base");
    assert_warned(&warnings, "plain LDAP to another host|starttls = true");
    assert_eq!(
        warnings.len(),
        4,
        "the realm's wiring is silent: {warnings:#?}"
    );
    // The output is a topology Portcullis accepts (convert() fails
    // otherwise), auth tables included.
    let topology =
        parse_topology("imported", "imported.toml", &toml).expect("the import validates");
    assert!(topology.services.iter().all(|s| s.auth.is_some()));
}

#[test]
fn a_loopback_directory_keeps_plain_ldap() {
    assert!(is_loopback_ldap("ldap://localhost:33389"));
    assert!(is_loopback_ldap("ldap://127.0.0.1/"));
    assert!(is_loopback_ldap("ldap://[::1]:389"));
    assert!(!is_loopback_ldap("ldap://ldap.example.com:389"));
    assert!(!is_loopback_ldap("ldap://10.0.0.1"));
}

#[test]
fn an_ldap_realm_that_cannot_be_carried_over_says_authentication_is_lost() {
    for (params, why) in [
        (
            vec![(
                "main.ldapRealm",
                "org.apache.knox.gateway.shirorealm.KnoxPamRealm",
            )],
            "not an LDAP realm",
        ),
        (
            vec![("main.ldapRealm.userDnTemplate", "uid=x")],
            "userDnTemplate with {0}",
        ),
        (
            vec![("main.ldapRealm.contextFactory.url", "http://x")],
            "ldaps://",
        ),
    ] {
        let xml = shiro(&[]);
        let mut xml = xml.clone();
        for (name, value) in params {
            // The later param wins, as in Knox's map of params.
            xml = xml.replace(
                "</provider>",
                &format!("<param><name>{name}</name><value>{value}</value></param></provider>"),
            );
        }
        let (toml, warnings) = convert(&xml.replace(
            "<name>main.ldapRealm</name><value>org.apache.knox.gateway.shirorealm.KnoxLdapRealm</value>",
            if why == "not an LDAP realm" { "<name>x</name><value>y</value>" } else { "<name>main.ldapRealm</name><value>org.apache.knox.gateway.shirorealm.KnoxLdapRealm</value>" },
        ));
        assert!(!toml.contains("[service.auth]"), "{why}: {toml}");
        assert_warned(
            &warnings,
            &format!("ShiroProvider is not carried over|{why}|WITHOUT authentication"),
        );
    }
}

#[test]
fn a_jwt_provider_becomes_jwt_and_what_is_missing_is_named() {
    let jwt = provider(
        "federation",
        "JWTProvider",
        &[
            ("knox.token.audiences", "orders, billing"),
            ("knox.token.jwks.url", "https://idp.example.com/jwks.json"),
            ("jwt.expected.issuer", "https://idp.example.com"),
            ("jwt.expected.sigalg", "RS256"),
            ("knox.token.query.param.name", "knoxtoken"),
        ],
    );
    let (toml, warnings) = convert(&jwt);
    let t = load(&toml);
    for service in &t.services {
        let auth = service.auth.as_ref().expect("auth");
        assert_eq!(auth.methods, [AuthMethod::Jwt]);
        assert!(!auth.knox_doas, "no identity assertion provider");
        let jwt = auth.jwt.as_ref().expect("jwt");
        assert!(
            matches!(&jwt.jwks, JwksSource::Url(u) if u.as_str() == "https://idp.example.com/jwks.json")
        );
        assert_eq!(jwt.issuer, "https://idp.example.com");
        assert_eq!(jwt.audiences, ["orders", "billing"]);
    }
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert_warned(
        &warnings,
        "JWTProvider param knox.token.query.param.name|Authorization: Bearer",
    );

    // A PEM key and no audience: the output refuses every token until the
    // operator supplies both, and says so.
    let pem = provider(
        "federation",
        "JWTProvider",
        &[("knox.token.verification.pem", "MIIBIjAN")],
    );
    let (toml, warnings) = convert(&pem);
    let t = load(&toml);
    let jwt = t.services[0].auth.as_ref().unwrap().jwt.as_ref().unwrap();
    assert_eq!(jwt.jwks, JwksSource::File("jwks.json".into()));
    assert_eq!(jwt.issuer, "KNOXSSO", "Knox's default issuer");
    assert_warned(
        &warnings,
        "knox.token.verification.pem|jwks.json|every token is refused",
    );
    assert_warned(&warnings, "checked no audience|REPLACE-with");
}

#[test]
fn an_sso_cookie_provider_becomes_jwt_with_a_warning_about_the_cookie() {
    let sso = provider(
        "federation",
        "SSOCookieProvider",
        &[
            (
                "sso.authentication.provider.url",
                "https://knox.example.com:8443/gateway/knoxsso/api/v1/websso",
            ),
            ("sso.expected.audiences", "ui"),
        ],
    );
    let (toml, warnings) = convert(
        &(sso
            + &provider(
                "identity-assertion",
                "Default",
                &[("principal.mapping", "guest=hdfs;")],
            )),
    );
    let t = load(&toml);
    let auth = t.services[1].auth.as_ref().unwrap();
    assert!(auth.knox_doas);
    assert_eq!(auth.identity_header, "x-forwarded-user");
    assert_eq!(auth.jwt.as_ref().unwrap().audiences, ["ui"]);
    assert_warned(
        &warnings,
        "SSOCookieProvider param sso.authentication.provider.url|sign in",
    );
    assert_warned(&warnings, "hadoop-jwt cookie");
    assert_warned(&warnings, "identity-assertion param principal.mapping");
    assert_warned(
        &warnings,
        "SSOCookieProvider verified tokens with no key|jwks.json",
    );
}

#[test]
fn acls_become_authorize_per_service() {
    let acls = provider(
        "authorization",
        "AclsAuthz",
        &[
            ("webhdfs.acl", "guest,admin;*;10.1.*.*,192.168.0.7"),
            ("hive.acl", "*;analysts;*"),
            ("hive.acl.mode", "OR"),
            ("oozie.acl", "x;y;z"),
        ],
    );
    let jwt = provider(
        "federation",
        "JWTProvider",
        &[
            ("knox.token.jwks.url", "https://i/j"),
            ("knox.token.audiences", "a"),
        ],
    );
    let (toml, warnings) = convert(&(jwt + &acls));
    let t = load(&toml);
    let webhdfs = t.services[0].authorize.as_ref().expect("webhdfs acl");
    assert_eq!(
        webhdfs.users.as_deref(),
        Some(&["guest".to_string(), "admin".to_string()][..])
    );
    assert_eq!(webhdfs.groups, None, "* is not checked");
    let nets: Vec<String> = webhdfs
        .cidrs
        .iter()
        .flatten()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(nets, ["10.1.0.0/16", "192.168.0.7/32"]);
    assert_eq!(webhdfs.mode, AuthorizeMode::All);
    let hive = t.services[1].authorize.as_ref().expect("hive acl");
    assert_eq!(hive.groups.as_deref(), Some(&["analysts".to_string()][..]));
    assert_eq!(
        (hive.users.is_none(), hive.mode),
        (true, AuthorizeMode::Any)
    );
    assert_warned(&warnings, "AclsAuthz param oozie.acl|no service's role");
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
}

#[test]
fn acls_that_cannot_be_carried_over_are_named() {
    let acls = provider(
        "authorization",
        "AclsAuthz",
        &[
            ("acl.mode", "OR"),
            ("webhdfs.acl", "KNOX_ADMIN_USERS;*;*"),
            ("hive.acl", "*;*;host.example.com"),
        ],
    );
    let (toml, warnings) = convert(&(shiro(&[]) + &acls));
    assert!(!toml.contains("[service.authorize]"), "{toml}");
    assert_warned(
        &warnings,
        "service WEBHDFS|KNOX_ADMIN_USERS is not carried over",
    );
    assert_warned(&warnings, "service WEBHDFS|imported without its ACL");
    assert_warned(&warnings, "service HIVE|address \"host.example.com\"");
    // Users need an authenticated caller: without one, the ACL is not written.
    let users = provider("authorization", "AclsAuthz", &[("hive.acl", "bob;*;*")]);
    let (toml, warnings) = convert(&users);
    assert!(!toml.contains("[service.authorize]"), "{toml}");
    assert_warned(&warnings, "service HIVE|no authentication provider");
    // Addresses alone need none.
    let ips = provider(
        "authorization",
        "AclsAuthz",
        &[("hive.acl", "*;*;127.0.0.1")],
    );
    let (toml, warnings) = convert(&ips);
    let t = load(&toml);
    assert!(t.services[1].auth.is_none() && t.services[1].authorize.is_some());
    assert!(warnings.is_empty(), "{warnings:#?}");
}

#[test]
fn disabled_and_unknown_security_providers_are_warned_about() {
    let disabled = provider("federation", "JWTProvider", &[]).replace("true", "false");
    let others = provider("authentication", "HadoopAuth", &[])
        + &provider("identity-assertion", "Regex", &[]);
    let (toml, warnings) =
        convert(&(disabled + &others + &provider("identity-assertion", "Default", &[])));
    assert!(!toml.contains("[service.auth]"), "{toml}");
    assert_warned(
        &warnings,
        "federation/JWTProvider is not carried over|not enabled",
    );
    assert_warned(
        &warnings,
        "authentication/HadoopAuth is not carried over|WITHOUT authentication",
    );
    assert_warned(
        &warnings,
        "identity-assertion/Regex is not carried over|only the Default",
    );
    assert_warned(
        &warnings,
        "Default identity assertion is not carried over|no authentication provider",
    );
    let anonymous = provider("authentication", "Anonymous", &[]);
    let (toml, warnings) = convert(&anonymous);
    assert!(
        !toml.contains("[service.auth]") && warnings.is_empty(),
        "{warnings:?}"
    );
}
