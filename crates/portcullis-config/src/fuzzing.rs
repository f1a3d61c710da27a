//! Fuzz targets for the configuration parsers (docs/fuzzing.md). Each function
//! panics only when an invariant of the parser is broken: the cargo-fuzz
//! targets in `fuzz/` call them, and `tests/fuzz_corpus.rs` runs them over the
//! committed corpus in every ordinary `cargo test`.

use std::path::Path;
use std::time::Duration;

use crate::{
    parse_node_config, parse_topology, ConfigErrors, HealthCheck, NodeConfig, SecretSource,
    Service, StoreLocation, Topology, MAX_BACKENDS,
};

/// Runs `check` over every file of `fuzz/corpus/<target>/` and
/// `fuzz/regressions/<target>/` under `fuzz_dir`, as the corpus tests of
/// every crate do; panics naming the first file that fails, or when there is
/// no input at all.
pub fn run_corpus(fuzz_dir: &Path, target: &str, check: fn(&[u8])) {
    let mut ran = 0;
    for kind in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz_dir.join(kind).join(target)) else {
            continue;
        };
        let mut paths: Vec<std::path::PathBuf> =
            entries.map(|e| e.expect("corpus entry").path()).collect();
        paths.sort();
        for path in paths.into_iter().filter(|p| p.is_file()) {
            let data = std::fs::read(&path).expect("corpus file");
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{target} failed on {}", path.display());
            ran += 1;
        }
    }
    assert!(
        ran > 0,
        "no corpus for {target} under {}",
        fuzz_dir.display()
    );
}

/// The file name `config_node` parses under.
pub const NODE_FILE: &str = "/tmp/portcullis.toml";
/// The file label `config_topology` parses under.
pub const TOPOLOGY_FILE: &str = "t.toml";

/// `parse_node_config` on any text: never panics; an error names the file, a
/// line inside the text and says something; a config that passes holds only
/// values the validator promises.
pub fn config_node(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match parse_node_config(&text, Path::new(NODE_FILE)) {
        Ok(config) => check_node(&config),
        Err(errors) => check_errors(&errors, &text, NODE_FILE),
    }
}

/// `parse_topology` on any text: as `config_node`, for topology files.
pub fn config_topology(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match parse_topology("t", TOPOLOGY_FILE, &text) {
        Ok(topology) => check_topology(&topology),
        Err(errors) => check_errors(&errors, &text, TOPOLOGY_FILE),
    }
}

fn check_errors(errors: &ConfigErrors, text: &str, file: &str) {
    assert!(!errors.0.is_empty(), "an Err with no error in it");
    let lines = text.matches('\n').count() + 1;
    for error in &errors.0 {
        assert!(
            !error.message.trim().is_empty(),
            "an error without a message: {error:?}"
        );
        assert_eq!(error.file, file, "an error naming another file");
        if let Some(line) = error.line {
            assert!(
                (1..=lines).contains(&line),
                "line {line} outside a text of {lines} lines: {error:?}"
            );
        }
        if let Some(column) = error.column {
            assert!(error.line.is_some(), "a column without a line: {error:?}");
            assert!(column >= 1, "column 0: {error:?}");
        }
    }
    let shown = errors.to_string();
    assert!(
        shown.starts_with(file),
        "display does not start with the file"
    );
}

/// Characters of one URL path segment, as `validator::is_segment`.
fn is_segment(s: &str) -> bool {
    !matches!(s, "" | "." | "..")
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-~".contains(&b))
}

fn check_public_url(url: &url::Url) {
    assert!(
        matches!(url.scheme(), "http" | "https"),
        "public_url scheme {url}"
    );
    assert!(
        url.host_str().is_some_and(|h| !h.is_empty()),
        "public_url host {url}"
    );
    assert!(
        url.query().is_none() && url.fragment().is_none(),
        "public_url {url}"
    );
    assert!(
        url.username().is_empty() && url.password().is_none(),
        "public_url {url}"
    );
}

fn check_node(config: &NodeConfig) {
    let base = Path::new(NODE_FILE).parent().unwrap_or(Path::new("."));
    assert_eq!(config.base_dir, base);
    let id = &config.node.id;
    assert!(
        !id.trim().is_empty() && !id.chars().any(char::is_control),
        "node.id {id:?}"
    );

    let g = &config.gateway;
    assert!(is_segment(&g.path), "gateway.path {:?}", g.path);
    check_public_url(&g.public_url);
    if let Some(tls) = &g.tls {
        assert!(
            tls.cert.starts_with(base) && tls.key.starts_with(base),
            "tls paths {tls:?}"
        );
    }
    assert!(g.shutdown_grace <= Duration::from_secs(86_400));
    assert!((1..=1_000_000).contains(&g.max_connections));
    assert!(g.min_body_rate <= 1 << 30);
    assert!((Duration::from_millis(1)..=Duration::from_secs(300)).contains(&g.header_read_timeout));

    let c = &config.cluster;
    assert!(is_segment(&c.name), "cluster.name {:?}", c.name);
    assert!(
        (Duration::from_millis(100)..=Duration::from_secs(60)).contains(&c.heartbeat),
        "heartbeat {:?}",
        c.heartbeat
    );
    match &c.store {
        StoreLocation::Dir(dir) => assert!(dir.starts_with(base), "store dir {dir:?}"),
        StoreLocation::Etcd(endpoints) => {
            assert!(!endpoints.is_empty());
            for e in endpoints {
                let (host, port) = e.rsplit_once(':').expect("etcd endpoint without a port");
                assert!(!host.is_empty(), "etcd endpoint {e:?}");
                assert!(port.parse::<u16>().is_ok(), "etcd endpoint {e:?}");
            }
        }
    }
    if let Some(secrets) = &config.secrets {
        match &secrets.master {
            SecretSource::File(path) => assert!(path.starts_with(base), "{path:?}"),
            SecretSource::Env(name) => assert!(!name.is_empty()),
        }
    }
}

fn check_topology(topology: &Topology) {
    assert_eq!(topology.name, "t");
    assert!(!topology.services.is_empty(), "a topology without services");
    let mut names = std::collections::HashSet::new();
    for service in &topology.services {
        assert!(
            names.insert(service.name.as_str()),
            "duplicate service {:?}",
            service.name
        );
        check_service(service);
    }
}

fn check_service(s: &Service) {
    assert!(
        is_segment(&s.name) && !s.name.contains('~'),
        "service name {:?}",
        s.name
    );
    assert!(!s.urls.is_empty(), "service {:?} without urls", s.name);
    let backends = s.urls.len() + s.backup_urls.len();
    assert!(
        backends <= MAX_BACKENDS,
        "{backends} backends in {:?}",
        s.name
    );
    let mut seen = std::collections::HashSet::new();
    for url in s.urls.iter().chain(&s.backup_urls) {
        assert!(seen.insert(url.as_str()), "backend {url} listed twice");
        assert!(matches!(url.scheme(), "http" | "https"), "backend {url}");
        assert!(
            url.host_str().is_some_and(|h| !h.is_empty()),
            "backend {url}"
        );
        assert!(
            url.query().is_none() && url.fragment().is_none(),
            "backend {url}"
        );
        assert!(
            url.username().is_empty() && url.password().is_none(),
            "backend {url}"
        );
        assert!(url.port_or_known_default().is_some(), "backend {url}");
    }
    let ms = Duration::from_millis(1);
    let day = Duration::from_secs(86_400);
    let t = &s.timeouts;
    assert!((ms..=Duration::from_secs(300)).contains(&t.connect));
    assert!((ms..=day).contains(&t.request));
    assert!((ms..=day).contains(&t.idle));
    if let Some(auth) = &s.backend_auth {
        assert!(
            !auth.user.is_empty() && !auth.user.contains(':'),
            "{auth:?}"
        );
        assert!(!auth.password_alias.is_empty(), "{auth:?}");
    }
    if let Some(health) = &s.health {
        check_health(health);
    }

    let ha = &s.ha;
    assert!(ha.max_failover_attempts <= 100);
    assert!(ha.failover_sleep <= Duration::from_secs(60));
    assert!(ha.retry_on_status.iter().all(|c| (100..=599).contains(c)));
    assert!(ha.replay_buffer_bytes <= 64 << 20);
    let cookie = &ha.sticky_session_cookie_name;
    assert!(
        !cookie.is_empty()
            && cookie
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)),
        "cookie name {cookie:?}"
    );
    // The gateway names the cookie `{name}-{service}`: still a cookie token.
    assert!(http_header_token(&format!("{cookie}-{}", s.name)));
    assert!(ha.slow_start <= Duration::from_secs(3600));
    assert!((1..=1000).contains(&ha.eject_after));
    assert!((Duration::from_secs(1)..=Duration::from_secs(300)).contains(&ha.eject_for));
    assert!(ha.stall_timeout <= Duration::from_secs(3600));
}

fn http_header_token(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn check_health(h: &HealthCheck) {
    assert!(h.path.starts_with('/'), "health path {:?}", h.path);
    assert!((Duration::from_millis(10)..=Duration::from_secs(3600)).contains(&h.interval));
    assert!(h.timeout >= Duration::from_millis(1) && h.timeout <= h.interval);
    assert!((1..=100).contains(&h.rise) && (1..=100).contains(&h.fall));
    let r = h.expect_status;
    assert!((100..=599).contains(&r.min) && r.min <= r.max && r.max <= 599);
}
