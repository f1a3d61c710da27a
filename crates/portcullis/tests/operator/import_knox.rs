//! `portcullis topology import-knox FILE` as an operator runs it on real Knox
//! topologies: the TOML on stdout must load as a Portcullis topology, and what
//! could not be carried over must be listed as `warning: ...` lines on stderr.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use portcullis_config::{parse_topology, LoadBalancing, Topology};

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../portcullis-knox/samples")
        .join(name)
}

fn import(file: &Path) -> Output {
    Command::new(portcullis_testkit::binary())
        .args(["topology", "import-knox"])
        .arg(file)
        .output()
        .expect("runs the portcullis binary")
}

/// Runs the import, checks it succeeded, and loads stdout as a member would.
fn import_ok(name: &str) -> (Topology, Vec<String>) {
    let (topology, warnings, _) = import_text(name);
    (topology, warnings)
}

/// `import_ok` with stdout as text too.
fn import_text(name: &str) -> (Topology, Vec<String>, String) {
    let out = import(&sample(name));
    let stdout = String::from_utf8(out.stdout).expect("stdout is UTF-8");
    let stderr = String::from_utf8(out.stderr).expect("stderr is UTF-8");
    assert!(out.status.success(), "{name}: {:?}\n{stderr}", out.status);
    let topology = parse_topology("imported", "stdout", &stdout)
        .unwrap_or_else(|e| panic!("{name}: stdout does not load: {e}\n{stdout}"));
    let warnings = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("warning: "))
        .map(str::to_string)
        .collect();
    (topology, warnings, stdout)
}

fn assert_warned(warnings: &[String], needles: &[&str]) {
    let found = warnings
        .iter()
        .any(|w| needles.iter().all(|n| w.contains(n)));
    assert!(found, "no warning with {needles:?} in {warnings:#?}");
}

fn service<'a>(t: &'a Topology, name: &str) -> &'a portcullis_config::Service {
    t.services
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no service {name} in {t:#?}"))
}

#[test]
fn typical_hadoop_ha_topology() {
    let (t, warnings) = import_ok("sandbox-ha.xml");
    let names: Vec<&str> = t.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["webhdfs", "resourcemanager", "hive", "jobhistoryui"],
        "KNOX has no url and is skipped; the rest keep the XML's order"
    );

    let webhdfs = service(&t, "webhdfs");
    assert_eq!(webhdfs.urls.len(), 2);
    assert_eq!(
        webhdfs.urls[1].as_str(),
        "http://nn2.example.com:50070/webhdfs"
    );
    assert!(webhdfs.ha.enabled);
    assert_eq!(webhdfs.ha.failover_sleep.as_millis(), 1000);
    assert!(
        webhdfs.ha.retry_on_status.is_empty(),
        "Knox never fails over on a status"
    );

    let hive = &service(&t, "hive").ha;
    assert_eq!(hive.load_balancing, LoadBalancing::RoundRobin);
    assert!(hive.sticky_session && hive.no_fallback);
    assert_eq!(hive.sticky_session_cookie_name, "HIVE_BACKEND");
    assert_eq!(hive.max_failover_attempts, 2);
    assert_eq!(hive.failover_sleep.as_millis(), 500);
    assert_eq!(
        hive.disable_load_balancing_for_user_agents,
        ["ClouderaODBCDriverforApacheHive"],
        "Knox's default is written out"
    );

    let rm = &service(&t, "resourcemanager").ha;
    assert_eq!(
        (rm.max_failover_attempts, rm.failover_sleep.as_millis()),
        (5, 2000)
    );

    // The ShiroProvider's LDAP realm and the Default identity assertion
    // are carried over (see ldap_basic_acls_and_identity_assertion).
    assert_warned(&warnings, &["ShiroProvider param sessionTimeout"]);
    assert!(
        !warnings.iter().any(|w| w.contains("identity-assertion")),
        "{warnings:#?}"
    );
    assert_warned(&warnings, &["provider hostmap/static is not carried over"]);
    assert_warned(
        &warnings,
        &["RESOURCEMANAGER", "zookeeperEnsemble", "ZooKeeper"],
    );
    assert_warned(&warnings, &["service KNOX is skipped"]);
    assert_warned(&warnings, &["service HIVE", "replayBufferSize"]);
}

#[test]
fn disabled_ha_provider_turns_ha_off_everywhere() {
    let (t, warnings) = import_ok("ha-disabled.xml");
    assert_eq!(t.services.len(), 3);
    let webhdfs = &service(&t, "webhdfs").ha;
    assert!(!webhdfs.enabled);
    assert_eq!(
        webhdfs.max_failover_attempts, 4,
        "kept for when HA is turned on"
    );
    assert!(
        !service(&t, "hbaseui").ha.enabled,
        "Knox used the first url only"
    );
    assert_eq!(service(&t, "yarnui").urls.len(), 1);
    assert_warned(
        &warnings,
        &["HaProvider is disabled", "HA is off for every role"],
    );
    assert_warned(
        &warnings,
        &["HaProvider param OOZIE", "no service with role OOZIE"],
    );
    // The SSOCookieProvider is carried over as jwt; what it cannot keep
    // (the cookie, the key) is named.
    assert_warned(&warnings, &["SSOCookieProvider", "hadoop-jwt cookie"]);
}

#[test]
fn load_balanced_services_and_ignored_keys() {
    let (t, warnings) = import_ok("webhdfs-lb.xml");
    let hbase = &service(&t, "webhbase").ha;
    assert_eq!(hbase.load_balancing, LoadBalancing::RoundRobin);
    assert!(hbase.failover_non_idempotent);
    assert_eq!(
        hbase.disable_load_balancing_for_user_agents,
        ["curl", "ClouderaODBCDriverforApacheHive"]
    );
    let webhdfs = &service(&t, "webhdfs").ha;
    assert_eq!(webhdfs.load_balancing, LoadBalancing::None);
    assert_eq!(
        webhdfs.max_failover_attempts, 1,
        "the service param overrides"
    );
    assert_eq!(webhdfs.failover_sleep.as_millis(), 0);
    assert_warned(&warnings, &["WEBHBASE", "maxRetryAttempts"]);
    assert_warned(&warnings, &["WEBHBASE", "retrySleep"]);
    assert_warned(
        &warnings,
        &["maxfailoverattempts=6", "did you mean maxFailoverAttempts?"],
    );
    assert_warned(
        &warnings,
        &["provider webappsec/WebAppSec is not carried over"],
    );
}

#[test]
fn ldap_basic_acls_and_identity_assertion() {
    let (t, warnings, stdout) = import_text("ldap-acls.xml");
    assert_eq!(t.services.len(), 2);
    let basic = "basic = { ldap = \"ldaps://ldap.example.com:636\", bind_dn = \"uid={user},ou=people,dc=hadoop,dc=apache,dc=org\", group_base = \"ou=groups,dc=hadoop,dc=apache,dc=org\" }";
    assert_eq!(stdout.matches(basic).count(), 2, "{stdout}");
    assert_eq!(stdout.matches("knox_doas = true").count(), 2, "{stdout}");
    assert!(
        stdout.contains("users = [\"guest\", \"hdfs\"]\ncidrs = [\"10.20.0.0/16\"]\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("users = [\"admin\"]\ngroups = [\"analysts\"]\nmode = \"any\""),
        "{stdout}"
    );
    assert_eq!(warnings.len(), 1, "sessionTimeout only: {warnings:#?}");
}

/// The JWT sample imports without a warning and passes `portcullis check`
/// as a topology file.
#[test]
fn jwt_federation_imports_cleanly_and_passes_check() {
    let (t, warnings, stdout) = import_text("jwt-federation.xml");
    assert!(warnings.is_empty(), "{warnings:#?}");
    let webhdfs = service(&t, "webhdfs");
    let auth = webhdfs.auth.as_ref().expect("auth");
    assert!(auth.knox_doas);
    let jwt = auth.jwt.as_ref().expect("jwt");
    assert_eq!(jwt.issuer, "https://idp.example.com/oauth2");
    assert_eq!(jwt.audiences, ["hadoop-apis"]);
    let groups = webhdfs.authorize.as_ref().and_then(|a| a.groups.clone());
    assert_eq!(groups.unwrap_or_default(), ["analysts", "etl"]);
    let yarn = service(&t, "yarn").authorize.as_ref().expect("yarn acl");
    assert_eq!(yarn.cidrs.as_ref().map(Vec::len), Some(1));

    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("imported.toml");
    std::fs::write(&file, &stdout).expect("write");
    let check = Command::new(portcullis_testkit::binary())
        .arg("check")
        .arg(&file)
        .output()
        .expect("runs the portcullis binary");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn sso_cookie_ui_names_what_the_operator_must_supply() {
    let (t, warnings) = import_ok("sso-ui.xml");
    assert!(t.services.iter().all(|s| s.auth.is_some()));
    assert_warned(&warnings, &["hadoop-jwt cookie"]);
    assert_warned(&warnings, &["jwks.json", "every token is refused"]);
    assert_warned(&warnings, &["checked no audience"]);
    assert_warned(&warnings, &["sso.authentication.provider.url"]);
}

#[test]
fn invalid_or_missing_files_are_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broken = dir.path().join("broken.xml");
    std::fs::write(&broken, "<topology><service><role>WEBHDFS</role>").expect("write");
    for file in [broken, dir.path().join("missing.xml")] {
        let out = import(&file);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{file:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{file:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{file:?}: no TOML on failure");
    }
}
