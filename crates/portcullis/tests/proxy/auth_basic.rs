//! `[service.auth]` with Basic, end to end: a member in front of a demo
//! backend that echoes the headers it got, checking passwords against a
//! real OpenLDAP `slapd` (started, seeded and killed here) or an htpasswd
//! file of bcrypt and argon2id hashes.

use std::path::{Path, PathBuf};

use base64::Engine;
use http::{Request, StatusCode};
use portcullis_config::{BasicPolicy, LdapPolicy};
use portcullis_demo::DemoBackend;
use portcullis_policy::{AuthResult, BasicVerifier, BASIC_CHALLENGE};
use portcullis_testkit::*;

const USERS: &[(&str, &str)] = &[("ann", "ann-pw"), ("bob", "bob pw ü"), ("cid", "cid-pw")];

fn seed<'a>() -> LdapSeed<'a> {
    LdapSeed {
        users: USERS,
        groups: &[("staff", &["ann", "bob"]), ("admins", &["ann"])],
        posix_groups: &[("ops", &["ann"])],
        tls: None,
    }
}

fn bind_dn() -> String {
    format!("uid={{user}},{LDAP_PEOPLE}")
}

fn ldap_table(url: &str, extra: &str) -> String {
    format!(
        "basic = {{ ldap = \"{url}\", bind_dn = \"{}\", group_base = \"{LDAP_GROUPS}\"{extra} }}",
        bind_dn()
    )
}

async fn start(basic: &str) -> (DemoBackend, TestMember) {
    let backend = DemoBackend::spawn("b", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let text = topology(
        "svc",
        &[backend.url()],
        &format!("[service.auth]\nmethods = [\"basic\"]\n{basic}\n"),
    );
    let member = TestMember::start(&[("t", &text)]).await;
    (backend, member)
}

fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

async fn login(member: &TestMember, user: &str, password: &str) -> Reply {
    let request = Request::get(member.url("/gateway/t/svc/who"))
        .header("authorization", basic(user, password))
        .header("x-forwarded-user", "root")
        .body(empty())
        .unwrap();
    send(&client(), request).await
}

fn assert_passed(reply: &Reply, user: &str, what: &str) {
    assert_eq!(reply.status, StatusCode::OK, "{what}: {}", reply.text());
    let headers = &reply.json()["headers"];
    assert_eq!(headers["x-forwarded-user"], user, "{headers}");
    assert_eq!(
        headers.get("authorization"),
        None,
        "the password never reaches the backend"
    );
}

fn assert_refused(reply: &Reply, what: &str) {
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "{what}: {}",
        reply.text()
    );
    let challenge = reply
        .headers
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok());
    assert_eq!(challenge, Some(BASIC_CHALLENGE), "{what}");
    assert_eq!(
        reply.text(),
        r#"{"error":"unauthorized","service":"svc","topology":"t"}"#,
        "{what}: the same body whatever the reason"
    );
}

fn auth_counts(member: &TestMember) -> Vec<(&'static str, AuthResult, u64)> {
    member.service("t", "svc").stats.auth.snapshot()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldap_logins_pass_fail_alike_and_survive_the_directory_going_down_while_cached() {
    let mut slapd = Slapd::start(&seed());
    let (_backend, member) = start(&ldap_table(&slapd.url(), "")).await;

    assert_passed(&login(&member, "ann", "ann-pw").await, "ann", "ann");
    assert_passed(&login(&member, "bob", "bob pw ü").await, "bob", "bob");
    assert_refused(&login(&member, "ann", "wrong").await, "a wrong password");
    assert_refused(&login(&member, "nobody", "ann-pw").await, "an unknown user");
    assert_refused(
        &login(&member, "ann", "").await,
        "an empty password (unauthenticated bind)",
    );
    assert_refused(&login(&member, "*", "ann-pw").await, "a wildcard user");
    let missing = send(
        &client(),
        Request::get(member.url("/gateway/t/svc/who"))
            .body(empty())
            .unwrap(),
    )
    .await;
    assert_refused(&missing, "no credentials");

    slapd.kill();
    // Seen good within the minute: still passes with the directory down.
    assert_passed(&login(&member, "ann", "ann-pw").await, "ann", "ann, cached");
    // Never seen: cannot be checked, which is not the client's fault.
    let new = login(&member, "cid", "cid-pw").await;
    assert_eq!(
        new.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        new.text()
    );
    assert_eq!(new.json()["error"], "authentication unavailable");
    assert_eq!(new.headers.get("www-authenticate"), None);

    assert_eq!(
        auth_counts(&member),
        [
            ("none", AuthResult::Missing, 1),
            ("basic", AuthResult::Ok, 3),
            ("basic", AuthResult::Invalid, 4),
            ("basic", AuthResult::Unavailable, 1),
        ]
    );
    member.stop().await;
}

fn ldap_policy(url: &str, starttls: bool, tls_ca: Option<&Path>) -> BasicPolicy {
    BasicPolicy::Ldap(LdapPolicy {
        url: url.parse().unwrap(),
        bind_dn: bind_dn(),
        group_base: Some(LDAP_GROUPS.to_string()),
        starttls,
        tls_ca: tls_ca.map(|p| p.display().to_string()),
    })
}

/// The policy crate's verifier against the same slapd: the groups a login
/// brings (for `[service.authorize]`), by DN and by memberUid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ldap_login_brings_the_users_groups() {
    let slapd = Slapd::start(&seed());
    let verifier =
        BasicVerifier::build(&ldap_policy(&slapd.url(), false, None), Path::new("/")).unwrap();
    let ann = verifier.verify("ann", "ann-pw").await.unwrap();
    assert_eq!(ann.name, "ann");
    assert_eq!(ann.groups, ["admins", "ops", "staff"]);
    let bob = verifier.verify("bob", "bob pw ü").await.unwrap();
    assert_eq!(bob.groups, ["staff"]);
    // The directory's spelling of the name, whatever case was typed.
    let shouted = verifier.verify("ANN", "ann-pw").await.unwrap();
    assert_eq!((shouted.name.as_str(), shouted.groups.len()), ("ann", 3));
    let cid = verifier.verify("cid", "cid-pw").await.unwrap();
    assert!(cid.groups.is_empty(), "{:?}", cid.groups);
    // A user name is one RDN value, never more DN or filter.
    for user in ["ann,ou=people", "ann)(uid=*", "*"] {
        assert_eq!(
            verifier.verify(user, "ann-pw").await,
            Err(AuthResult::Invalid),
            "{user}"
        );
    }
}

/// A slapd whose certificate comes from a CA made here (StartTLS on its
/// plain port, and an `ldaps://` port), and that CA's file.
fn tls_directory() -> (Slapd, PathBuf) {
    let (ca_pem, cert, key) = portcullis_testkit::tls::private_ca_and_localhost_cert();
    let slapd = Slapd::start(&LdapSeed {
        tls: Some((&cert, &key)),
        ..seed()
    });
    let ca = slapd.dir().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    (slapd, ca)
}

/// With `tls_ca` the directory at `url` signs ann in with her groups and
/// refuses a bad password; without it the directory is unavailable (TLS
/// fails), never sent the password in clear.
async fn assert_verified_against_ca(url: &str, starttls: bool, ca: &Path) {
    let trusted =
        BasicVerifier::build(&ldap_policy(url, starttls, Some(ca)), Path::new("/")).unwrap();
    let ann = trusted.verify("ann", "ann-pw").await.unwrap();
    assert_eq!(ann.groups, ["admins", "ops", "staff"], "{url}");
    assert_eq!(trusted.verify("ann", "bad").await, Err(AuthResult::Invalid));
    let untrusted =
        BasicVerifier::build(&ldap_policy(url, starttls, None), Path::new("/")).unwrap();
    assert_eq!(
        untrusted.verify("ann", "ann-pw").await,
        Err(AuthResult::Unavailable),
        "{url} without tls_ca"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_verifies_the_directory_against_tls_ca() {
    let (slapd, ca) = tls_directory();
    let url = format!("ldap://localhost:{}", slapd.port());
    assert_verified_against_ca(&url, true, &ca).await;
}

/// `ldaps://`: TLS from the first byte, to slapd's TLS listener. A plain
/// `ldap://` port spoken to as `ldaps://` is unavailable too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldaps_verifies_the_directory_against_tls_ca() {
    let (slapd, ca) = tls_directory();
    let ldaps_port = slapd.ldaps_port().expect("an ldaps listener");
    assert_verified_against_ca(&format!("ldaps://localhost:{ldaps_port}"), false, &ca).await;

    let plain_port = format!("ldaps://localhost:{}", slapd.port());
    let wrong =
        BasicVerifier::build(&ldap_policy(&plain_port, false, Some(&ca)), Path::new("/")).unwrap();
    assert_eq!(
        wrong.verify("ann", "ann-pw").await,
        Err(AuthResult::Unavailable)
    );
}

/// Hashes made here at the lowest costs, so the test stays fast.
fn htpasswd_text() -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let bcrypt = bcrypt::hash("ann-pw", 4).unwrap();
    let params = argon2::Params::new(256, 1, 1, None).unwrap();
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::from_b64("c2FsdHNhbHRzYWx0").unwrap();
    let argon = argon.hash_password(b"bob-pw", &salt).unwrap().to_string();
    format!("# test users\nann:{bcrypt}\nbob:{argon}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn htpasswd_bcrypt_and_argon2_users_pass_and_others_get_401() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.htpasswd");
    std::fs::write(&file, htpasswd_text()).unwrap();
    let (_backend, member) = start(&format!(
        "basic = {{ htpasswd = \"file:{}\" }}",
        file.display()
    ))
    .await;
    assert_passed(&login(&member, "ann", "ann-pw").await, "ann", "bcrypt");
    assert_passed(&login(&member, "bob", "bob-pw").await, "bob", "argon2id");
    assert_refused(&login(&member, "ann", "bob-pw").await, "a wrong password");
    assert_refused(&login(&member, "eve", "ann-pw").await, "an unknown user");
    member.stop().await;
}

/// Basic beside JWT: each request is judged by the method whose kind of
/// credentials it carries; with none, the challenge names both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_and_jwt_together_each_judge_their_own_credentials() {
    use portcullis_policy::test_keys::{claims, TestKey};
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.htpasswd");
    std::fs::write(&users, htpasswd_text()).unwrap();
    let key = TestKey::ed25519("e1");
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, TestKey::jwks(&[&key])).unwrap();
    let backend = DemoBackend::spawn("b", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let text = topology(
        "svc",
        &[backend.url()],
        &format!(
            "[service.auth]\nmethods = [\"basic\", \"jwt\"]\nbasic = {{ htpasswd = \"file:{}\" }}\njwt = {{ jwks = \"file:{}\", issuer = \"iss\", audiences = [\"aud\"] }}\n",
            users.display(),
            jwks.display()
        ),
    );
    let member = TestMember::start(&[("t", &text)]).await;
    assert_passed(&login(&member, "ann", "ann-pw").await, "ann", "basic");
    let bearer = format!("Bearer {}", key.sign(&claims("zed", "iss", "aud")));
    let request = Request::get(member.url("/gateway/t/svc/who"))
        .header("authorization", bearer)
        .body(empty())
        .unwrap();
    assert_passed(&send(&client(), request).await, "zed", "jwt");
    let none = send(
        &client(),
        Request::get(member.url("/gateway/t/svc/who"))
            .body(empty())
            .unwrap(),
    )
    .await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        none.headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Basic realm=\"portcullis\", charset=\"UTF-8\", Bearer realm=\"portcullis\"")
    );
    member.stop().await;
}

#[test]
fn check_refuses_an_htpasswd_file_with_an_md5_line() {
    let dir = tempfile::tempdir().unwrap();
    let bcrypt = bcrypt::hash("x", 4).unwrap();
    std::fs::write(
        dir.path().join("users.htpasswd"),
        format!("ann:{bcrypt}\nold:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/\n"),
    )
    .unwrap();
    let file = dir.path().join("t.toml");
    let text = topology(
        "svc",
        &["http://127.0.0.1:1".to_string()],
        "[service.auth]\nmethods = [\"basic\"]\nbasic = { htpasswd = \"file:users.htpasswd\" }\n",
    );
    std::fs::write(&file, text).unwrap();
    // A topology's files are relative to the member's config directory,
    // which `check` without -c takes to be the current one.
    let out = std::process::Command::new(binary())
        .current_dir(dir.path())
        .arg("check")
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("service[0].auth.basic.htpasswd")
            && stderr.contains("line 2: user \"old\": MD5 hashes are refused"),
        "{stderr}"
    );
}
