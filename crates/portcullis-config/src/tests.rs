use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;

use super::*;

const FULL_TOPOLOGY: &str = r#"[[service]]
name = "webhdfs"
urls = ["http://10.0.0.1:50070/webhdfs", "http://10.0.0.2:50070/webhdfs"]
backup_urls = ["https://10.0.0.3:50470/webhdfs"]
protocol = "h2"
preserve_host = true
tls_ca = "ca.pem"
tls_verify = false

[service.ha]
enabled = false
load_balancing = "least-requests"
max_failover_attempts = 5
failover_sleep = "250ms"
failover_non_idempotent = true
retry_on_status = [503]
replay_buffer_bytes = 1024
sticky_session = true
sticky_session_cookie_name = "GW"
no_fallback = true
disable_load_balancing_for_user_agents = ["ClouderaODBCDriverforApacheHive"]
failback = true
slow_start = "30s"
eject_after = 5
eject_for = "20s"
stall_timeout = "150ms"

[service.health]
path = "/ping"
interval = "5s"
timeout = "2s"
rise = 3
fall = 4
expect_status = "200-299"

[service.timeouts]
connect = "1s"
request = "2m"
idle = "1h"

[service.backend_auth]
user = "svc"
password_alias = "webhdfs.password"
"#;

fn topo(src: &str) -> Result<Topology, ConfigErrors> {
    parse_topology("t", "t.toml", src)
}

fn first_error(src: &str) -> ConfigError {
    topo(src).expect_err("must be rejected").0.remove(0)
}

#[test]
fn every_topology_key_is_parsed() {
    let t = topo(FULL_TOPOLOGY).unwrap();
    let s = &t.services[0];
    assert_eq!(s.name, "webhdfs");
    assert_eq!(s.urls.len(), 2);
    assert_eq!(s.backup_urls[0].as_str(), "https://10.0.0.3:50470/webhdfs");
    assert_eq!(s.protocol, BackendProtocol::H2);
    assert!(s.preserve_host);
    assert_eq!(s.tls_ca.as_deref(), Some("ca.pem"));
    assert!(!s.tls_verify);
    let ha = &s.ha;
    assert!(!ha.enabled);
    assert_eq!(ha.load_balancing, LoadBalancing::LeastRequests);
    assert_eq!(ha.max_failover_attempts, 5);
    assert_eq!(ha.failover_sleep, Duration::from_millis(250));
    assert!(ha.failover_non_idempotent);
    assert_eq!(ha.retry_on_status, vec![503]);
    assert_eq!(ha.replay_buffer_bytes, 1024);
    assert!(ha.sticky_session);
    assert_eq!(ha.sticky_session_cookie_name, "GW");
    assert!(ha.no_fallback);
    assert_eq!(
        ha.disable_load_balancing_for_user_agents,
        vec!["ClouderaODBCDriverforApacheHive"]
    );
    assert!(ha.failback);
    assert_eq!(ha.slow_start, Duration::from_secs(30));
    assert_eq!(ha.eject_after, 5);
    assert_eq!(ha.eject_for, Duration::from_secs(20));
    assert_eq!(ha.stall_timeout, Duration::from_millis(150));
    let h = s.health.as_ref().unwrap();
    assert_eq!(
        (h.path.as_str(), h.interval, h.timeout, h.rise, h.fall),
        (
            "/ping",
            Duration::from_secs(5),
            Duration::from_secs(2),
            3,
            4
        )
    );
    assert_eq!(h.expect_status, StatusRange { min: 200, max: 299 });
    assert!(h.expect_status.contains(204) && !h.expect_status.contains(301));
    assert_eq!(
        s.timeouts,
        Timeouts {
            connect: Duration::from_secs(1),
            request: Duration::from_secs(120),
            idle: Duration::from_secs(3600)
        }
    );
    assert_eq!(
        s.backend_auth,
        Some(BackendAuth {
            user: "svc".into(),
            password_alias: "webhdfs.password".into()
        })
    );
}

#[test]
fn a_minimal_topology_gets_the_defaults() {
    let t = topo("[[service]]\nname = \"a\"\nurls = [\"http://127.0.0.1:1\"]\n").unwrap();
    let s = &t.services[0];
    assert_eq!(s.ha, HaPolicy::default());
    assert_eq!(s.timeouts, Timeouts::default());
    assert_eq!(s.health, None);
    assert_eq!(s.protocol, BackendProtocol::Http1);
    assert!(s.tls_verify && !s.preserve_host && s.backup_urls.is_empty());
    let with_health =
        topo("[[service]]\nname = \"a\"\nurls = [\"http://h\"]\n[service.health]\n").unwrap();
    assert_eq!(with_health.services[0].health, Some(HealthCheck::default()));
}

#[test]
fn inline_tables_work_too() {
    let t = topo("service = [{ name = \"a\", urls = [\"http://h:1\"], ha = { max_failover_attempts = 1 } }]\n").unwrap();
    assert_eq!(t.services[0].ha.max_failover_attempts, 1);
}

#[test]
fn unknown_key_names_path_and_line() {
    let e = first_error("[[service]]\nname = \"a\"\nurls = [\"http://h\"]\n\n[service.ha]\nmax_failover_attemps = 3\n");
    assert_eq!(e.path, "service[0].ha.max_failover_attemps");
    assert_eq!(e.line, Some(6));
    assert!(
        e.message.contains("unknown key") && e.message.contains("max_failover_attempts"),
        "{}",
        e.message
    );
    assert!(e.to_string().starts_with("t.toml:6:"), "{e}");
}

#[test]
fn wrong_type_names_path_and_line() {
    let e = first_error("[[service]]\nname = \"a\"\nurls = [\"http://h\"]\n[service.ha]\nsticky_session = \"yes\"\n");
    assert_eq!(e.path, "service[0].ha.sticky_session");
    assert_eq!(e.line, Some(5));
    assert!(e.message.contains("bool"), "{}", e.message);
}

#[test]
fn bad_enum_value_lists_the_choices() {
    let e = first_error("[[service]]\nname = \"a\"\nurls = [\"http://h\"]\n[service.ha]\nload_balancing = \"fastest\"\n");
    assert_eq!(e.path, "service[0].ha.load_balancing");
    assert_eq!(e.line, Some(5));
    assert!(e.message.contains("round-robin"), "{}", e.message);
}

#[test]
fn bad_duration_names_path_and_line() {
    let e = first_error("[[service]]\nname = \"a\"\nurls = [\"http://h\"]\n[service.timeouts]\nconnect = \"3 seconds\"\n");
    assert_eq!(e.path, "service[0].timeouts.connect");
    assert_eq!(e.line, Some(5));
    assert!(e.message.contains("\"250ms\""), "{}", e.message);
}

#[test]
fn out_of_range_names_path_line_and_bounds() {
    let src = "[[service]]\nname = \"a\"\nurls = [\"http://h\"]\n\n[[service]]\nname = \"b\"\nurls = [\"http://h\"]\n[service.ha]\nmax_failover_attempts = 500\n";
    let e = first_error(src);
    assert_eq!(e.path, "service[1].ha.max_failover_attempts");
    assert_eq!((e.line, e.column), (Some(9), Some(25)));
    assert_eq!(
        e.to_string(),
        "t.toml:9:25: service[1].ha.max_failover_attempts: expected an integer between 0 and 100, found 500"
    );
}

#[test]
fn empty_urls_are_rejected() {
    let e = first_error("[[service]]\nname = \"a\"\nurls = []\n");
    assert_eq!(e.path, "service[0].urls");
    assert_eq!(e.line, Some(3));
}

#[test]
fn duplicate_service_names_point_at_the_second() {
    let e = first_error("[[service]]\nname = \"a\"\nurls = [\"http://h\"]\n[[service]]\nname = \"a\"\nurls = [\"http://h\"]\n");
    assert_eq!(e.path, "service[1].name");
    assert_eq!(e.line, Some(5));
    assert!(e.message.contains("duplicate"));
}

#[test]
fn bad_url_scheme_is_rejected() {
    let e =
        first_error("[[service]]\nname = \"a\"\nurls = [\n  \"http://ok\",\n  \"ftp://h/x\",\n]\n");
    assert_eq!(e.path, "service[0].urls[1]");
    assert_eq!(e.line, Some(5));
    assert!(e.message.contains("ftp"), "{}", e.message);
}

#[test]
fn bad_status_range_is_rejected() {
    let e = first_error("[[service]]\nname = \"a\"\nurls = [\"http://h\"]\n[service.health]\nexpect_status = \"399-200\"\n");
    assert_eq!(e.path, "service[0].health.expect_status");
    assert_eq!(e.line, Some(5));
}

#[test]
fn all_semantic_errors_are_reported() {
    let errors = topo("[[service]]\nname = \"a b\"\nurls = []\n[service.ha]\neject_after = 0\n")
        .unwrap_err();
    let paths: Vec<&str> = errors.0.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "service[0].name",
            "service[0].urls",
            "service[0].ha.eject_after"
        ]
    );
}

#[test]
fn syntax_errors_have_a_line() {
    let e = first_error("[[service]]\nname = \"a\nurls = []\n");
    assert_eq!(e.line, Some(2));
}

const FULL_NODE: &str = r#"[node]
id = "member-1"
log_level = "info,portcullis::access=off"

[gateway]
listen = "0.0.0.0:8443"
path = "gw"
public_url = "https://member1.example.com:8443"
tls = { cert = "tls/gateway.crt", key = "tls/gateway.key" }
shutdown_grace = "5s"
max_connections = 500
header_read_timeout = "3s"

[admin]
listen = "127.0.0.1:9090"
tls = { cert = "tls/admin.crt", key = "tls/admin.key" }

[cluster]
name = "prod"
store = "etcd://127.0.0.1:2379,127.0.0.2:2379"
role = "worker"
heartbeat = "2s"

[secrets]
master = "file:master.key"

[balancer]
listen = "0.0.0.0:8080"
mode = "proxy"
connect_timeout = "500ms"
request_timeout = "2m"
tls = { cert = "tls/balancer.crt", key = "tls/balancer.key" }
"#;

#[test]
fn a_log_level_that_is_not_a_filter_names_its_key() {
    for bad in ["", "loud", "info,portcullis=verbose", "[span]=debug"] {
        let text = format!(
            "[node]\nid = \"m\"\nlog_level = {bad:?}\n[gateway]\nlisten = \"127.0.0.1:1\"\n[cluster]\nstore = \"dir:s\"\n"
        );
        let errors = parse_node_config(&text, Path::new("p.toml")).unwrap_err();
        assert_eq!(errors.0[0].path, "node.log_level", "{bad:?}");
        assert_eq!(errors.0[0].line, Some(3), "{bad:?}");
    }
}

#[test]
fn every_node_key_is_parsed() {
    let c = parse_node_config(FULL_NODE, Path::new("/etc/portcullis/portcullis.toml")).unwrap();
    assert_eq!(c.node.id, "member-1");
    assert_eq!(
        c.node.log_level.as_deref(),
        Some("info,portcullis::access=off")
    );
    assert_eq!(c.gateway.listen, "0.0.0.0:8443".parse().unwrap());
    assert_eq!(c.gateway.path, "gw");
    assert_eq!(
        c.gateway.public_url.as_str(),
        "https://member1.example.com:8443/"
    );
    assert_eq!(
        c.gateway.tls,
        Some(TlsFiles {
            cert: "/etc/portcullis/tls/gateway.crt".into(),
            key: "/etc/portcullis/tls/gateway.key".into()
        })
    );
    assert_eq!(c.gateway.shutdown_grace, Duration::from_secs(5));
    assert_eq!(c.gateway.max_connections, 500);
    assert_eq!(c.gateway.header_read_timeout, Duration::from_secs(3));
    assert_eq!(
        c.admin,
        Some(AdminSection {
            listen: "127.0.0.1:9090".parse().unwrap(),
            tls: Some(TlsFiles {
                cert: "/etc/portcullis/tls/admin.crt".into(),
                key: "/etc/portcullis/tls/admin.key".into()
            }),
        })
    );
    assert_eq!(c.cluster.name, "prod");
    assert_eq!(
        c.cluster.store,
        StoreLocation::Etcd(vec!["127.0.0.1:2379".into(), "127.0.0.2:2379".into()])
    );
    assert_eq!(c.cluster.role, Role::Worker);
    assert_eq!(c.cluster.heartbeat, Duration::from_secs(2));
    assert_eq!(
        c.secrets,
        Some(SecretsSection {
            master: SecretSource::File("/etc/portcullis/master.key".into())
        })
    );
    assert_eq!(
        c.balancer,
        Some(BalancerSection {
            listen: "0.0.0.0:8080".parse().unwrap(),
            mode: BalancerMode::Proxy,
            connect_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_secs(120),
            tls: Some(TlsFiles {
                cert: "/etc/portcullis/tls/balancer.crt".into(),
                key: "/etc/portcullis/tls/balancer.key".into()
            }),
            members_ca: None,
        })
    );
}

#[test]
fn balancer_defaults_and_errors_name_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    let node = |balancer: &str| {
        format!(
            "[gateway]\nlisten = \"127.0.0.1:1\"\n[balancer]\nlisten = \"127.0.0.1:2\"\n{balancer}"
        )
    };
    let c = parse_node_config(&node(""), &path).unwrap();
    let b = c.balancer.unwrap();
    assert_eq!(b.mode, BalancerMode::Redirect);
    assert_eq!(
        (b.connect_timeout, b.request_timeout),
        (Duration::from_secs(2), Duration::from_secs(60))
    );
    assert_eq!((b.tls, b.members_ca), (None, None));
    for (text, key) in [
        ("connect_timeout = \"soon\"\n", "balancer.connect_timeout"),
        ("request_timeout = \"0s\"\n", "balancer.request_timeout"),
        ("members_ca = \"missing.pem\"\n", "balancer.members_ca"),
        ("tls = { cert = \"c.pem\" }\n", "balancer.tls"),
    ] {
        let errors = parse_node_config(&node(text), &path).unwrap_err().0;
        assert!(
            errors.iter().any(|e| e.path.starts_with(key)),
            "{text}: {errors:?}"
        );
    }
    let ca = rcgen::generate_simple_self_signed(vec!["ca".into()]).unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.cert.pem()).unwrap();
    let c = parse_node_config(&node("members_ca = \"ca.pem\"\n"), &path).unwrap();
    assert_eq!(c.balancer.unwrap().members_ca.as_deref(), Some("ca.pem"));
}

#[test]
fn a_minimal_node_config_gets_the_defaults() {
    let c = parse_node_config(
        "[gateway]\nlisten = \"127.0.0.1:8443\"\n",
        Path::new("dir/p.toml"),
    )
    .unwrap();
    assert!(!c.node.id.is_empty());
    assert_eq!(c.gateway.path, "gateway");
    assert_eq!(c.gateway.public_url.as_str(), "http://127.0.0.1:8443/");
    assert_eq!(c.gateway.shutdown_grace, Duration::from_secs(30));
    assert_eq!(c.gateway.header_read_timeout, Duration::from_secs(10));
    assert_eq!(c.cluster.store, StoreLocation::Dir("dir/./store".into()));
    assert_eq!(c.cluster.role, Role::Manager);
    assert_eq!(c.cluster.heartbeat, Duration::from_secs(1));
    assert_eq!((c.admin, c.secrets, c.balancer), (None, None, None));
}

#[test]
fn bad_node_values_name_key_and_line() {
    let e = parse_node_config(
        "[gateway]\nlisten = \"not an address\"\n",
        Path::new("p.toml"),
    )
    .unwrap_err()
    .0
    .remove(0);
    assert_eq!((e.path.as_str(), e.line), ("gateway.listen", Some(2)));
    let e = parse_node_config(
        "[gateway]\nlisten = \"127.0.0.1:1\"\n[cluster]\nstore = \"nfs:/x\"\n",
        Path::new("p.toml"),
    )
    .unwrap_err()
    .0
    .remove(0);
    assert_eq!((e.path.as_str(), e.line), ("cluster.store", Some(4)));
    assert!(e.message.contains("dir:PATH"));
    let e = parse_node_config(
        "[gateway]\nlisten = \"127.0.0.1:1\"\n[secrets]\nmaster = \"vault:x\"\n",
        Path::new("p.toml"),
    )
    .unwrap_err()
    .0
    .remove(0);
    assert_eq!(e.path, "secrets.master");
    let e = parse_node_config(
        "[gateway]\nlisten = \"127.0.0.1:1\"\nlisten_port = 3\n",
        Path::new("p.toml"),
    )
    .unwrap_err()
    .0
    .remove(0);
    assert_eq!((e.path.as_str(), e.line), ("gateway.listen_port", Some(3)));
    let e = parse_node_config("[node]\nid = \"x\"\n", Path::new("p.toml"))
        .unwrap_err()
        .0
        .remove(0);
    assert!(e.message.contains("gateway"), "{}", e.message);
}

#[test]
fn trusted_proxies_are_networks_and_never_every_address() {
    let config = |list: &str| {
        parse_node_config(
            &format!("[gateway]\nlisten = \"127.0.0.1:1\"\ntrusted_proxies = {list}\n"),
            Path::new("p.toml"),
        )
    };
    let ok = config(r#"["10.0.0.0/8", "::1", "192.0.2.7"]"#).unwrap();
    let nets: Vec<String> = ok
        .gateway
        .trusted_proxies
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(nets, ["10.0.0.0/8", "::1/128", "192.0.2.7/32"]);
    assert!(config("[]").unwrap().gateway.trusted_proxies.is_empty());
    let errors = config(r#"["nope", "0.0.0.0/0", "10.0.0.1/8", "::/0"]"#)
        .unwrap_err()
        .0;
    let at: Vec<(&str, Option<usize>)> = errors.iter().map(|e| (e.path.as_str(), e.line)).collect();
    assert_eq!(
        at,
        [
            ("gateway.trusted_proxies[0]", Some(3)),
            ("gateway.trusted_proxies[2]", Some(3)),
            ("gateway.trusted_proxies[1]", Some(3)),
            ("gateway.trusted_proxies[3]", Some(3)),
        ]
    );
    assert!(
        errors[2].message.contains("trusts every address"),
        "{}",
        errors[2].message
    );
}

#[test]
fn durations() {
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("0ms"), Ok(Duration::ZERO));
    assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
    assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    for bad in [
        "",
        "5",
        "-1s",
        "1.5s",
        "1x",
        "s",
        " 1s",
        "99999999999999999999s",
    ] {
        assert!(parse_duration(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn topology_names() {
    assert!(validate_topology_name("sales-2.eu_west").is_ok());
    for bad in ["", ".hidden", "a/b", "../x", "a b", &"x".repeat(65)] {
        assert!(validate_topology_name(bad).is_err(), "{bad:?}");
    }
}

const ONE: &str = "[[service]]\nname = \"a\"\nurls = [\"http://h\"]\n";

#[test]
fn dotted_and_inline_subtables_are_located() {
    let e = first_error(&format!("{ONE}ha.eject_after = 0\n"));
    assert_eq!(
        (e.path.as_str(), e.line),
        ("service[0].ha.eject_after", Some(4))
    );
    let e = first_error(&format!(
        "{ONE}ha = {{ enabled = true, eject_after = 0 }}\n"
    ));
    assert_eq!((e.line, e.column), (Some(4), Some(38)));
    let t = topo(&format!("{ONE}timeouts.connect = \"5s\"\nhealth = {{}}\n")).unwrap();
    assert_eq!(t.services[0].timeouts.connect, Duration::from_secs(5));
    assert_eq!(t.services[0].health, Some(HealthCheck::default()));
}

#[test]
fn a_duration_of_the_wrong_type_says_what_a_duration_looks_like() {
    let e = first_error(&format!("{ONE}[service.ha]\nfailover_sleep = 5\n"));
    assert_eq!(
        (e.path.as_str(), e.line),
        ("service[0].ha.failover_sleep", Some(5))
    );
    assert!(
        e.message
            .contains("expected a duration string such as \"250ms\""),
        "{}",
        e.message
    );
    let e = first_error(&format!("{ONE}[service.ha]\neject_after = 1.5\n"));
    assert!(e.message.ends_with("expected an integer"), "{}", e.message);
}

#[test]
fn expect_status_may_be_a_bare_integer() {
    let t = topo(&format!("{ONE}[service.health]\nexpect_status = 204\n")).unwrap();
    let range = t.services[0].health.as_ref().map(|h| h.expect_status);
    assert_eq!(range, Some(StatusRange { min: 204, max: 204 }));
    let e = first_error(&format!(
        "{ONE}[service.health]\nexpect_status = \"200-600\"\n"
    ));
    assert_eq!(
        (e.path.as_str(), e.line),
        ("service[0].health.expect_status", Some(5))
    );
}

#[test]
fn backend_urls_without_query_fragment_or_credentials() {
    let src = "[[service]]\nname = \"a\"\nurls = [\"http://u:p@h\", \"http://h/?x=1\", \"http://h/#f\"]\n";
    let errors = topo(src).unwrap_err().0;
    let found: Vec<(&str, Option<usize>)> =
        errors.iter().map(|e| (e.path.as_str(), e.column)).collect();
    assert_eq!(
        found,
        vec![
            ("service[0].urls[0]", Some(9)),
            ("service[0].urls[1]", Some(25)),
            ("service[0].urls[2]", Some(42))
        ]
    );
    assert!(errors[0].message.contains("backend_auth"));
    assert!(errors[1].message.contains("query"));
}

#[test]
fn a_url_listed_twice_is_rejected_where_it_repeats() {
    let e = first_error(
        "[[service]]\nname = \"a\"\nurls = [\"http://h:1\"]\nbackup_urls = [\"http://h:1/\"]\n",
    );
    assert_eq!(
        (e.path.as_str(), e.line),
        ("service[0].backup_urls[0]", Some(4))
    );
}

#[test]
fn other_semantic_checks_name_key_and_line() {
    let cases = [
        (
            "[service.ha]\nsticky_session_cookie_name = \"a;b\"\n",
            "service[0].ha.sticky_session_cookie_name",
        ),
        (
            "[service.health]\ninterval = \"1s\"\ntimeout = \"2s\"\n",
            "service[0].health.timeout",
        ),
        ("[service.health]\nrise = 0\n", "service[0].health.rise"),
        (
            "[service.ha]\neject_for = \"301s\"\n",
            "service[0].ha.eject_for",
        ),
        (
            "[service.ha]\nreplay_buffer_bytes = 67108865\n",
            "service[0].ha.replay_buffer_bytes",
        ),
        (
            "[service.ha]\nretry_on_status = [502, 99]\n",
            "service[0].ha.retry_on_status[1]",
        ),
        (
            "[service.timeouts]\nidle = \"0s\"\n",
            "service[0].timeouts.idle",
        ),
    ];
    for (tail, path) in cases {
        let src = format!("{ONE}{tail}");
        let e = first_error(&src);
        let line = if tail.matches('\n').count() == 3 {
            6
        } else {
            5
        };
        assert_eq!((e.path.as_str(), e.line), (path, Some(line)), "{src}");
    }
    let e = first_error("[[service]]\nname = \"..\"\nurls = [\"http://h\"]\n");
    assert_eq!((e.path.as_str(), e.line), ("service[0].name", Some(2)));
}

#[test]
fn missing_keys_and_single_tables_are_explained() {
    let e = first_error("[[service]]\nname = \"a\"\n");
    assert_eq!((e.path.as_str(), e.line), ("service[0].urls", Some(1)));
    assert!(e.message.contains("missing key `urls`"), "{}", e.message);
    let e = first_error("[service]\nname = \"a\"\nurls = [\"http://h\"]\n");
    assert!(e.message.contains("[[service]]"), "{}", e.message);
    let e = first_error("");
    assert_eq!(e.path, "service");
}

#[test]
fn every_error_is_one_line_of_the_display() {
    let errors = topo("[[service]]\nname = \"a b\"\nurls = []\n").unwrap_err();
    assert_eq!(
        errors.to_string(),
        "t.toml:2:8: service[0].name: expected one URL path segment of letters, digits, '.', '_' or '-', found \"a b\"\n\
         t.toml:3:8: service[0].urls: expected at least one backend URL"
    );
}

#[test]
fn public_url_is_derived_or_checked() {
    let node = |src: &str| parse_node_config(src, Path::new("p.toml"));
    let c =
        node("[gateway]\nlisten = \"[::1]:8443\"\ntls = { cert = \"c\", key = \"k\" }\n").unwrap();
    assert_eq!(c.gateway.public_url.as_str(), "https://[::1]:8443/");
    assert_eq!(c.base_dir, Path::new("."));
    let c = node("[gateway]\nlisten = \"0.0.0.0:80\"\npath = \"/api/\"\n").unwrap();
    assert_eq!(
        (c.gateway.public_url.as_str(), c.gateway.path.as_str()),
        ("http://127.0.0.1/", "api")
    );
    let e =
        node("[gateway]\nlisten = \"0.0.0.0:80\"\npublic_url = \"https://x/?a=1\"\n").unwrap_err();
    assert_eq!(
        (e.0[0].path.as_str(), e.0[0].line),
        ("gateway.public_url", Some(3))
    );
    let e =
        node("[gateway]\nlisten = \"0.0.0.0:80\"\n[cluster]\nheartbeat = \"50ms\"\n").unwrap_err();
    assert_eq!(
        (e.0[0].path.as_str(), e.0[0].line),
        ("cluster.heartbeat", Some(4))
    );
    assert!(
        e.0[0].message.contains("between 100ms and 60s"),
        "{}",
        e.0[0].message
    );
}

#[test]
fn load_node_config_reads_files_and_reports_io_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.toml");
    std::fs::write(
        &path,
        "[gateway]\nlisten = \"127.0.0.1:1\"\n[secrets]\nmaster = \"env:K\"\n",
    )
    .unwrap();
    let c = load_node_config(&path).unwrap();
    assert_eq!(c.base_dir, dir.path());
    assert_eq!(
        c.cluster.store,
        StoreLocation::Dir(dir.path().join("./store"))
    );
    assert_eq!(
        c.secrets.map(|s| s.master),
        Some(SecretSource::Env("K".into()))
    );
    let e = load_node_config(&dir.path().join("missing.toml")).unwrap_err();
    assert_eq!((e.0[0].path.as_str(), e.0[0].line), ("", None));
    assert!(
        e.0[0].to_string().contains("missing.toml: cannot read"),
        "{}",
        e
    );
}

#[test]
fn stored_topologies_are_labelled_with_their_store_path() {
    let bad = "[[service]]\nname = \"s\"\nurls = [\"http://h\"]\nbogus = 1\n";
    let parsed = parse_stored_topology("sales", bad).expect_err("unknown key");
    assert!(
        parsed.0[0]
            .to_string()
            .starts_with("topologies/sales.toml:4"),
        "{parsed}"
    );
    let dir = tempfile::tempdir().unwrap();
    let loaded = load_stored_topology("sales", bad, dir.path()).expect_err("unknown key");
    assert_eq!(loaded.to_string(), parsed.to_string());
    let named = parse_stored_topology(".hidden", "").expect_err("bad name");
    assert!(
        named.0[0]
            .to_string()
            .starts_with("topologies/.hidden.toml: "),
        "{named}"
    );
}

#[test]
fn a_stored_topology_loads_as_it_parses_and_its_files_are_checked() {
    let good = "[[service]]\nname = \"s\"\nurls = [\"http://h\"]\n";
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        load_stored_topology("t", good, dir.path()).unwrap(),
        parse_topology("t", "elsewhere.toml", good).unwrap()
    );
    let with_ca = format!("{good}tls_ca = \"missing.pem\"\n");
    parse_stored_topology("t", &with_ca).expect("no file check when parsing");
    let missing = load_stored_topology("t", &with_ca, dir.path()).expect_err("no CA file");
    assert!(
        missing.0[0].to_string().starts_with("topologies/t.toml:"),
        "{missing}"
    );
}

proptest! {
    #[test]
    fn topology_parser_never_panics_on_any_text(s in "\\PC{0,200}") {
        let _ = topo(&s);
    }


    #[test]
    fn durations_round_trip(n in 0u64..1_000_000, unit in prop::sample::select(vec![("ms", 1_000_000u64), ("s", 1_000_000_000), ("m", 60_000_000_000), ("h", 3_600_000_000_000)])) {
        prop_assert_eq!(parse_duration(&format!("{n}{}", unit.0)), Ok(Duration::from_nanos(n * unit.1)));
    }

    #[test]
    fn duration_parser_never_panics(s in "\\PC{0,12}") {
        let _ = parse_duration(&s);
    }

    #[test]
    fn topology_parser_never_panics(s in "[\\[\\]a-z_=\"{}.,0-9 \\n]{0,120}") {
        let _ = topo(&s);
    }
}
