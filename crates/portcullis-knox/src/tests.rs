use super::*;
use portcullis_config::{parse_topology, HaPolicy, LoadBalancing as Lb, Topology};
use std::time::Duration;

const ON: &str = "<enabled>true</enabled>";
const TWO: &[&str] = &["http://a.example.com:1/x", "http://b.example.com:1/x"];

fn svc(role: &str, urls: &[&str], extra: &str) -> String {
    let urls: String = urls.iter().map(|u| format!("<url>{u}</url>")).collect();
    format!("<service><role>{role}</role>{urls}{extra}</service>")
}

/// A topology: other providers, an HaProvider (`enabled` is its <enabled>
/// element) with `params`, then `services`.
fn topo(others: &str, enabled: &str, params: &[(&str, &str)], services: &str) -> String {
    let params: String = params
        .iter()
        .map(|(n, v)| format!("<param><name>{n}</name><value>{v}</value></param>"))
        .collect();
    let ha =
        format!("<provider><role>ha</role><name>HaProvider</name>{enabled}{params}</provider>");
    format!("<topology><gateway>{others}{ha}</gateway>{services}</topology>")
}

/// One role, HaProvider enabled, two urls.
fn one(role: &str, value: &str) -> String {
    topo("", ON, &[(role, value)], &svc(role, TWO, ""))
}

/// Converts, then loads the output the way a member would.
fn convert(xml: &str) -> (Topology, Vec<String>, String) {
    let c = convert_knox_topology(xml).expect("converts");
    let topology = parse_topology("imported", "imported.toml", &c.toml)
        .unwrap_or_else(|e| panic!("{e}\n{}", c.toml));
    (topology, c.warnings, c.toml)
}

fn ha<'a>(t: &'a Topology, name: &str) -> &'a HaPolicy {
    &t.services.iter().find(|s| s.name == name).expect(name).ha
}

/// Asserts a warning holds every '|'-separated part of `needles`.
fn assert_warned(warnings: &[String], needles: &str) {
    let found = warnings
        .iter()
        .any(|w| needles.split('|').all(|n| w.contains(n)));
    assert!(found, "no warning with {needles:?} in {warnings:#?}");
}

#[test]
fn every_mapped_key_reaches_the_model() {
    let value = " enabled = true ;maxFailoverAttempts=7;failoverSleep=250;\
        enableLoadBalancing=true;enableStickySession=true;stickySessionCookieName=HS2;\
        noFallback=true;disableLoadBalancingForUserAgents=curl , Beeline;\
        failoverNonIdempotentRequestEnabled=true";
    let (t, warnings, _) = convert(&one("HIVE", value));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(t.services[0].name, "hive");
    let urls: Vec<&str> = t.services[0].urls.iter().map(|u| u.as_str()).collect();
    assert_eq!(urls, TWO);
    let ha = ha(&t, "hive");
    assert_eq!((ha.enabled, ha.max_failover_attempts), (true, 7));
    assert_eq!(ha.failover_sleep, Duration::from_millis(250));
    assert_eq!(ha.load_balancing, Lb::RoundRobin);
    assert!(ha.sticky_session && ha.no_fallback && ha.failover_non_idempotent);
    assert_eq!(ha.sticky_session_cookie_name, "HS2");
    let agents = &ha.disable_load_balancing_for_user_agents;
    assert_eq!(agents, &["curl", "Beeline"]);
    assert!(ha.retry_on_status.is_empty());
}

#[test]
fn knox_defaults_are_written_when_a_key_is_absent() {
    let (t, _, text) = convert(&one("WEBHDFS", "enabled=true"));
    let ha = ha(&t, "webhdfs");
    assert_eq!(ha.failover_sleep, Duration::from_millis(1000));
    let agents = &ha.disable_load_balancing_for_user_agents;
    assert_eq!(agents, &[KNOX_NO_LB_AGENTS]);
    assert!(ha.retry_on_status.is_empty());
    assert_eq!((ha.max_failover_attempts, ha.load_balancing), (3, Lb::None));
    assert!(text.contains("failover_sleep = \"1000ms\"  # Knox default"));
    assert!(text.contains("retry_on_status = []  # Knox never fails over on a status"));
}

#[test]
fn disabled_or_missing_ha_turns_ha_off() {
    for enabled in ["<enabled>false</enabled>", ""] {
        let services = svc("WEBHDFS", TWO, "") + &svc("OOZIE", TWO, "");
        let params = [("WEBHDFS", "enabled=true;maxFailoverAttempts=4")];
        let (t, warnings, _) = convert(&topo("", enabled, &params, &services));
        assert!(!ha(&t, "webhdfs").enabled && !ha(&t, "oozie").enabled);
        assert_eq!(ha(&t, "webhdfs").max_failover_attempts, 4);
        assert_warned(&warnings, "the HaProvider |HA is off for every role");
    }
    // No HaProvider at all: Knox used the first of several urls only.
    let services = svc("HIVE", TWO, "") + &svc("UI", &TWO[..1], "");
    let (t, warnings, _) = convert(&format!("<topology>{services}</topology>"));
    assert!(!ha(&t, "hive").enabled);
    assert!(ha(&t, "ui").enabled, "one url: nothing to turn off");
    assert_warned(&warnings, "service HIVE lists 2 urls|first url");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
}

#[test]
fn what_cannot_be_carried_over_is_warned_about() {
    let rm = "zookeeperEnsemble=zk:1;zookeeperNamespace=rm;maxRetryAttempts=2;retrySleep=9";
    let hive = "maxfailoverattempts=6;bogus=1;enableStickySession=true;novalue=;a=b=c";
    let params = [("RM", rm), ("HIVE", hive), ("OOZIE", "on"), ("webhdfs", "")];
    let timeout = "<param><name>httpclient.socketTimeout</name><value>5m</value></param>";
    let services = svc("RM", TWO, "<version>2.7.0</version>")
        + &svc("HIVE", TWO, timeout)
        + &svc("WEBHDFS", TWO, "")
        + "<service><role>KNOX</role></service>";
    let others = "<provider><role>authentication</role><name>ShiroProvider</name></provider>\
        <provider><role>identity-assertion</role><name>Default</name></provider>";
    let (t, w, _) = convert(&topo(others, ON, &params, &services));
    for needles in [
        "RM: zookeeperEnsemble=zk:1 is not carried over: ZooKeeper discovery is not supported",
        "RM: zookeeperNamespace=rm|ZooKeeper",
        "RM: maxRetryAttempts=2|does not retry the same url",
        "RM: retrySleep=9|not carried over",
        "HIVE: maxfailoverattempts=6|did you mean maxFailoverAttempts?",
        "HIVE: bogus=1|not a Knox HaProvider key",
        "HIVE: enableStickySession=true|without enableLoadBalancing=true",
        "HIVE: \"novalue=\"|Knox ignores it",
        "HIVE: \"a=b=c\"",
        "service HIVE: param httpclient.socketTimeout|timeouts",
        "HaProvider param OOZIE|no service with role OOZIE",
        "HaProvider param webhdfs|case-sensitive|WEBHDFS",
        "service KNOX is skipped|<url>",
        "provider authentication/ShiroProvider is not carried over: ",
        "provider identity-assertion/Default is not carried over: ",
    ] {
        assert_warned(&w, needles);
    }
    assert!(
        !w.iter().any(|w| w.contains("version")),
        "<version> is silent"
    );
    let hive = ha(&t, "hive");
    assert!(
        !hive.sticky_session,
        "Knox ignores it without load balancing"
    );
    assert_eq!(hive.load_balancing, Lb::None);
    let names: Vec<&str> = t.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["rm", "hive", "webhdfs"], "order as in the XML");
}

#[test]
fn bad_values_are_skipped_with_a_warning() {
    let value = "maxFailoverAttempts=abc;failoverSleep=120000;\
        stickySessionCookieName=a b;enabled=yes;failoverSleep=5;failoverSleep=6";
    let (t, w, _) = convert(&one("HIVE", value));
    let ha = ha(&t, "hive");
    assert_eq!(ha.max_failover_attempts, 3);
    assert_eq!(
        ha.failover_sleep,
        Duration::from_millis(6),
        "the last one wins"
    );
    assert_eq!(ha.sticky_session_cookie_name, "KNOX_BACKEND");
    assert!(!ha.enabled, "Knox reads anything but true as false");
    assert_warned(&w, "HaProvider param HIVE: maxFailoverAttempts=abc|skipped");
    assert_warned(&w, "failoverSleep=120000|skipped");
    assert_warned(&w, "stickySessionCookieName=a b|skipped");
    assert_warned(&w, "enabled=yes|imported as false");
    assert_warned(&w, "failoverSleep is given twice");
}

#[test]
fn service_params_override_the_provider_and_bad_urls_are_dropped() {
    let extra = "<url>ftp://c.example.com/</url><url>http://A.example.com:1/x</url>\
        <param><name>haEnabled</name><value>false</value></param>\
        <param><name>maxFailoverAttempts</name><value>1</value></param>";
    let services = svc("HIVE", TWO, extra) + &svc("HIVE", TWO, "");
    let params = [("HIVE", "maxFailoverAttempts=5")];
    let (t, w, _) = convert(&topo("", ON, &params, &services));
    assert_eq!(t.services.len(), 1);
    assert_eq!(t.services[0].urls.len(), 2);
    let hive = ha(&t, "hive");
    assert_eq!((hive.enabled, hive.max_failover_attempts), (false, 1));
    assert_warned(
        &w,
        "service HIVE: url \"ftp://c.example.com/\" is not carried over",
    );
    assert_warned(
        &w,
        "service HIVE: url \"http://A.example.com:1/x\"|more than once",
    );
    assert_warned(&w, "service HIVE is skipped|already has a service");
}

#[test]
fn strings_are_escaped() {
    let agents = r#"a "quoted" \ agent,tab&#9;here"#;
    let value = format!("disableLoadBalancingForUserAgents={agents}");
    let (t, _, _) = convert(&one("HIVE", &value));
    let agents = &ha(&t, "hive").disable_load_balancing_for_user_agents;
    assert_eq!(agents, &[r#"a "quoted" \ agent"#, "tab\there"]);
    assert_eq!(toml_string("\u{7f}\n"), "\"\\u007F\\n\"");
}

#[test]
fn unusable_input_is_an_error() {
    for (xml, expected) in [
        ("<topology><service>", "invalid Knox topology XML"),
        ("<gateway/>", "not a Knox topology"),
        (
            "<topology><service><role>K</role></service></topology>",
            "nothing to import",
        ),
    ] {
        let err = format!("{:#}", convert_knox_topology(xml).expect_err(xml));
        assert!(err.contains(expected), "{err}");
    }
}

// The samples are the binary's end-to-end fixtures (tests/import_knox.rs).
#[test]
fn the_samples_convert_and_validate() {
    let (t, w, _) = convert(include_str!("../samples/sandbox-ha.xml"));
    let hive = ha(&t, "hive");
    assert!(hive.sticky_session && hive.no_fallback);
    assert_eq!(hive.load_balancing, Lb::RoundRobin);
    assert_eq!(hive.sticky_session_cookie_name, "HIVE_BACKEND");
    assert_eq!(ha(&t, "resourcemanager").max_failover_attempts, 5);
    assert_warned(&w, "RESOURCEMANAGER: zookeeperEnsemble");
    let (t, _, _) = convert(include_str!("../samples/ha-disabled.xml"));
    let multi = t.services.iter().filter(|s| s.urls.len() > 1);
    assert!(multi.clone().count() == 2 && multi.clone().all(|s| !s.ha.enabled));
    convert(include_str!("../samples/webhdfs-lb.xml"));
    let (t, w, _) = convert(include_str!("../samples/jwt-federation.xml"));
    assert!(w.is_empty(), "{w:#?}");
    assert!(t
        .services
        .iter()
        .all(|s| s.auth.is_some() && s.authorize.is_some()));
    let (_, w, toml) = convert(include_str!("../samples/ldap-acls.xml"));
    assert_eq!(toml.matches("methods = [\"basic\"]").count(), 2, "{toml}");
    assert_eq!(w.len(), 1, "sessionTimeout only: {w:#?}");
    let (_, w, _) = convert(include_str!("../samples/sso-ui.xml"));
    assert_warned(&w, "hadoop-jwt cookie");
}
