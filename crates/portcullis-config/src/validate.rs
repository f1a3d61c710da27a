//! Turning raw file types into model types, collecting every problem with its
//! key path and line.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::model::*;
use crate::raw::*;
use crate::validator::{is_segment, show, Validator, DAY, MS};
use crate::MAX_BACKENDS;

/// Service names also end up in cookie names and metric labels, so they get
/// the narrower set without '~'.
fn is_service_name(s: &str) -> bool {
    is_segment(s) && !s.contains('~')
}

fn is_cookie_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

pub(crate) fn node_config(
    v: &mut Validator<'_>,
    raw: FileNodeConfig,
    base_dir: &Path,
) -> Option<NodeConfig> {
    let id = node_id(v, raw.node.id);
    let log_level = raw.node.log_level.filter(|level| log_filter_ok(v, level));
    let gateway = gateway_section(v, raw.gateway, base_dir);
    let admin = raw.admin.and_then(|a| {
        let listen = v.addr("admin.listen", &a.listen)?;
        let tls = a.tls.map(|t| TlsFiles {
            cert: base_dir.join(&t.cert),
            key: base_dir.join(&t.key),
        });
        Some(AdminSection { listen, tls })
    });
    let cluster = crate::cluster::cluster_section(v, raw.cluster, base_dir);
    let secrets = raw
        .secrets
        .and_then(|s| secrets_section(v, &s.master, base_dir));
    let balancer = raw.balancer.and_then(|b| balancer_section(v, b, base_dir));
    Some(NodeConfig {
        node: NodeSection { id, log_level },
        gateway: gateway?,
        admin,
        cluster: cluster?,
        secrets,
        balancer,
        base_dir: base_dir.to_path_buf(),
    })
}

/// `[balancer]`; every key is validated even when an earlier one failed.
fn balancer_section(
    v: &mut Validator<'_>,
    raw: FileBalancer,
    base_dir: &Path,
) -> Option<BalancerSection> {
    let listen = v.addr("balancer.listen", &raw.listen);
    let connect_timeout = v.duration(
        "balancer.connect_timeout",
        raw.connect_timeout.as_ref(),
        Duration::from_secs(2),
        MS,
        Duration::from_secs(300),
    );
    let request_timeout = v.duration(
        "balancer.request_timeout",
        raw.request_timeout.as_ref(),
        Duration::from_secs(60),
        MS,
        DAY,
    );
    let tls = raw.tls.map(|t| TlsFiles {
        cert: base_dir.join(&t.cert),
        key: base_dir.join(&t.key),
    });
    let members_ca = raw.members_ca.and_then(|ca| {
        // Read now, so `check` reports a missing or empty file by its key.
        match crate::tls::load_tls_ca(&ca, base_dir) {
            Ok(_) => Some(ca),
            Err(err) => {
                v.error("balancer.members_ca", err.to_string());
                None
            }
        }
    });
    Some(BalancerSection {
        listen: listen?,
        mode: raw.mode.unwrap_or(BalancerMode::Redirect),
        connect_timeout,
        request_timeout,
        tls,
        members_ca,
    })
}

/// `[node] log_level`: comma-separated `level` or `target=level` directives
/// (the filters of `RUST_LOG` without span or field selectors).
fn log_filter_ok(v: &mut Validator<'_>, filter: &str) -> bool {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let directive_ok = |directive: &str| {
        let (target, level) = match directive.split_once('=') {
            Some((target, level)) => (target, level),
            None => ("", directive),
        };
        let target_ok = target
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':' || b == b'-');
        target_ok && LEVELS.iter().any(|l| l.eq_ignore_ascii_case(level.trim()))
    };
    let ok = !filter.trim().is_empty() && filter.split(',').all(|d| directive_ok(d.trim()));
    if !ok {
        v.error(
            "node.log_level",
            "expected a level (trace, debug, info, warn, error, off) or directives such as \"info,portcullis::access=off\"",
        );
    }
    ok
}

fn node_id(v: &mut Validator<'_>, raw: Option<String>) -> String {
    match raw {
        Some(id) if id.trim().is_empty() || id.chars().any(char::is_control) => {
            v.error(
                "node.id",
                "expected a non-empty name without control characters",
            );
            String::new()
        }
        Some(id) => id,
        None => default_node_id(),
    }
}

/// `[gateway]`. Every key is validated even when an earlier one failed, so
/// one run reports every problem.
fn gateway_section(
    v: &mut Validator<'_>,
    raw: FileGateway,
    base_dir: &Path,
) -> Option<GatewaySection> {
    let listen = v.addr("gateway.listen", &raw.listen);
    let path = raw.path.unwrap_or_else(|| "gateway".to_string());
    let path = path.trim_matches('/').to_string();
    if !is_segment(&path) {
        v.error("gateway.path", format!("expected one URL path segment of letters, digits, '.', '_', '-' or '~', found {path:?}"));
    }
    let tls = raw.tls.map(|t| TlsFiles {
        cert: base_dir.join(&t.cert),
        key: base_dir.join(&t.key),
    });
    let public_url = public_url(v, raw.public_url.as_deref(), listen, tls.is_some());
    let shutdown_grace = v.duration(
        "gateway.shutdown_grace",
        raw.shutdown_grace.as_ref(),
        Duration::from_secs(30),
        Duration::ZERO,
        DAY,
    );
    let max_connections = v.int(
        "gateway.max_connections",
        raw.max_connections,
        10_000,
        1,
        1_000_000,
    ) as usize;
    let min_body_rate = v.int("gateway.min_body_rate", raw.min_body_rate, 1024, 0, 1 << 30) as u64;
    let header_read_timeout = v.duration(
        "gateway.header_read_timeout",
        raw.header_read_timeout.as_ref(),
        Duration::from_secs(10),
        MS,
        Duration::from_secs(300),
    );
    let trusted_proxies = trusted_proxies(v, raw.trusted_proxies);
    Some(GatewaySection {
        listen: listen?,
        path,
        public_url: public_url?,
        public_url_configured: raw.public_url.is_some(),
        tls,
        shutdown_grace,
        max_connections,
        header_read_timeout,
        min_body_rate,
        engine: raw.engine.unwrap_or_default(),
        trusted_proxies,
    })
}

/// `gateway.trusted_proxies`: networks or addresses, as `authorize.cidrs`
/// takes them. A network of every address is refused: it would let any
/// client choose the address that rate limits and `cidrs` see.
fn trusted_proxies(v: &mut Validator<'_>, raw: Option<Vec<String>>) -> Vec<ipnet::IpNet> {
    let path = "gateway.trusted_proxies";
    let mut nets = Vec::new();
    for (j, net) in crate::authorize::networks(v, path, raw.unwrap_or_default()) {
        if net.prefix_len() == 0 {
            v.error(
                &format!("{path}[{j}]"),
                format!("{:?} trusts every address, so any client could choose its own; list the networks of your proxies only", net.to_string()),
            );
        } else {
            nets.push(net);
        }
    }
    nets
}

/// `gateway.public_url`, or the URL derived from the listen address when it
/// is not configured.
fn public_url(
    v: &mut Validator<'_>,
    configured: Option<&str>,
    listen: Option<SocketAddr>,
    tls: bool,
) -> Option<url::Url> {
    let Some(text) = configured else {
        let addr = listen?;
        let scheme = if tls { "https" } else { "http" };
        let host = if addr.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else if addr.is_ipv6() {
            format!("[{}]", addr.ip())
        } else {
            addr.ip().to_string()
        };
        return url::Url::parse(&format!("{scheme}://{host}:{}", addr.port())).ok();
    };
    match url::Url::parse(text) {
        // Other members and the balancer append paths to this URL, so a
        // query, fragment or credentials would end up in every redirect.
        Ok(url)
            if matches!(url.scheme(), "http" | "https")
                && url.host_str().is_some_and(|h| !h.is_empty())
                && url.query().is_none()
                && url.fragment().is_none()
                && url.username().is_empty()
                && url.password().is_none() =>
        {
            Some(url)
        }
        _ => {
            v.error(
                "gateway.public_url",
                format!("expected an http:// or https:// URL without query, fragment or credentials, found {text:?}"),
            );
            None
        }
    }
}

fn secrets_section(v: &mut Validator<'_>, master: &str, base_dir: &Path) -> Option<SecretsSection> {
    let master = if let Some(path) = master.strip_prefix("file:").filter(|p| !p.is_empty()) {
        SecretSource::File(base_dir.join(path))
    } else if let Some(name) = master.strip_prefix("env:").filter(|n| !n.is_empty()) {
        SecretSource::Env(name.to_string())
    } else {
        v.error(
            "secrets.master",
            format!("expected \"file:PATH\" or \"env:NAME\", found {master:?}"),
        );
        return None;
    };
    Some(SecretsSection { master })
}

fn default_node_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "portcullis".to_string())
}

pub(crate) fn topology(v: &mut Validator<'_>, name: &str, raw: FileTopology) -> Topology {
    if raw.service.is_empty() {
        v.error("service", "expected at least one [[service]]");
    }
    let mut names = HashSet::new();
    let mut services = Vec::new();
    for (i, raw_service) in raw.service.into_iter().enumerate() {
        let at = format!("service[{i}]");
        if !names.insert(raw_service.name.clone()) {
            v.error(
                &format!("{at}.name"),
                format!(
                    "duplicate service name {:?}; each service of a topology needs its own name",
                    raw_service.name
                ),
            );
        }
        services.push(service(v, &at, raw_service));
    }
    Topology {
        name: name.to_string(),
        services,
    }
}

fn service(v: &mut Validator<'_>, at: &str, raw: FileService) -> Service {
    if !is_service_name(&raw.name) {
        v.error(
            &format!("{at}.name"),
            format!(
                "expected one URL path segment of letters, digits, '.', '_' or '-', found {:?}",
                raw.name
            ),
        );
    }
    if raw.urls.is_empty() {
        v.error(&format!("{at}.urls"), "expected at least one backend URL");
    }
    let mut seen = HashSet::new();
    let mut parse_list = |v: &mut Validator<'_>, key: &str, list: &[String]| -> Vec<url::Url> {
        let mut out = Vec::new();
        for (j, text) in list.iter().enumerate() {
            let path = format!("{at}.{key}[{j}]");
            if let Some(url) = v.backend_url(&path, text) {
                if !seen.insert(url.clone()) {
                    v.error(
                        &path,
                        format!("{text:?} appears more than once in urls and backup_urls; list each backend once"),
                    );
                }
                out.push(url);
            }
        }
        out
    };
    let urls = parse_list(v, "urls", &raw.urls);
    let backup_urls = parse_list(v, "backup_urls", &raw.backup_urls);
    backend_count(v, at, raw.urls.len(), raw.backup_urls.len());
    let health = raw.health.map(|h| health(v, &format!("{at}.health"), h));
    let t = raw.timeouts;
    let d = Timeouts::default();
    let timeouts = Timeouts {
        connect: v.duration(
            &format!("{at}.timeouts.connect"),
            t.connect.as_ref(),
            d.connect,
            MS,
            Duration::from_secs(300),
        ),
        request: v.duration(
            &format!("{at}.timeouts.request"),
            t.request.as_ref(),
            d.request,
            MS,
            DAY,
        ),
        idle: v.duration(
            &format!("{at}.timeouts.idle"),
            t.idle.as_ref(),
            d.idle,
            MS,
            DAY,
        ),
    };
    let backend_auth = raw.backend_auth.map(|a| {
        if a.user.is_empty() || a.user.contains(':') {
            v.error(
                &format!("{at}.backend_auth.user"),
                "expected a non-empty user name without ':'",
            );
        }
        if a.password_alias.is_empty() {
            v.error(
                &format!("{at}.backend_auth.password_alias"),
                "expected an alias name",
            );
        }
        BackendAuth {
            user: a.user,
            password_alias: a.password_alias,
        }
    });
    let auth = raw.auth.map(|a| crate::auth::auth(v, at, a));
    let rate_limit = raw
        .rate_limit
        .map(|r| crate::rate_limit::rate_limit(v, at, r, auth.as_ref()));
    Service {
        name: raw.name,
        urls,
        backup_urls,
        protocol: raw.protocol.unwrap_or(BackendProtocol::Http1),
        preserve_host: raw.preserve_host.unwrap_or(false),
        tls_ca: raw.tls_ca,
        tls_verify: raw.tls_verify.unwrap_or(true),
        ha: ha(v, &format!("{at}.ha"), raw.ha),
        health,
        timeouts,
        backend_auth,
        authorize: raw
            .authorize
            .map(|a| crate::authorize::authorize(v, at, a, auth.is_some())),
        auth,
        rate_limit,
    }
}

/// The data plane tracks the backends a request tried in one 64-bit mask, so
/// it refuses a larger service; refusing it here names the key and line
/// instead of letting every member fail to apply what was accepted.
fn backend_count(v: &mut Validator<'_>, at: &str, urls: usize, backups: usize) {
    if urls + backups <= MAX_BACKENDS {
        return;
    }
    let key = if urls > MAX_BACKENDS {
        "urls"
    } else {
        "backup_urls"
    };
    v.error(
        &format!("{at}.{key}"),
        format!(
            "expected at most {MAX_BACKENDS} backends in urls and backup_urls together, found {}",
            urls + backups
        ),
    );
}

/// Checks what a topology names outside itself (the `tls_ca` files) as the
/// member applying it will, relative to `base_dir`.
pub(crate) fn topology_files(v: &mut Validator<'_>, topology: &Topology, base_dir: &Path) {
    for (i, service) in topology.services.iter().enumerate() {
        if let Some(auth) = &service.auth {
            crate::auth::auth_files(v, i, auth, base_dir);
        }
        // With tls_verify = false the data plane never reads the CA either.
        let Some(ca) = service.tls_ca.as_deref().filter(|_| service.tls_verify) else {
            continue;
        };
        if let Err(err) = crate::tls::load_tls_ca(ca, base_dir) {
            v.error(&format!("service[{i}].tls_ca"), err.to_string());
        }
    }
}

fn ha(v: &mut Validator<'_>, at: &str, raw: FileHa) -> HaPolicy {
    let d = HaPolicy::default();
    let mut retry_on_status = Vec::new();
    for (i, code) in raw
        .retry_on_status
        .unwrap_or(d.retry_on_status.iter().map(|c| *c as i64).collect())
        .into_iter()
        .enumerate()
    {
        if (100..=599).contains(&code) {
            retry_on_status.push(code as u16);
        } else {
            v.error(
                &format!("{at}.retry_on_status[{i}]"),
                format!("expected an HTTP status between 100 and 599, found {code}"),
            );
        }
    }
    let cookie = raw
        .sticky_session_cookie_name
        .unwrap_or(d.sticky_session_cookie_name);
    if !is_cookie_token(&cookie) {
        v.error(
            &format!("{at}.sticky_session_cookie_name"),
            format!(
                "expected a cookie name (letters, digits and !#$%&'*+-.^_`|~), found {cookie:?}"
            ),
        );
    }
    HaPolicy {
        enabled: raw.enabled.unwrap_or(d.enabled),
        load_balancing: raw.load_balancing.unwrap_or(d.load_balancing),
        max_failover_attempts: v.int(
            &format!("{at}.max_failover_attempts"),
            raw.max_failover_attempts,
            d.max_failover_attempts.into(),
            0,
            100,
        ) as u32,
        failover_sleep: v.duration(
            &format!("{at}.failover_sleep"),
            raw.failover_sleep.as_ref(),
            d.failover_sleep,
            Duration::ZERO,
            Duration::from_secs(60),
        ),
        failover_non_idempotent: raw
            .failover_non_idempotent
            .unwrap_or(d.failover_non_idempotent),
        retry_on_status,
        replay_buffer_bytes: v.int(
            &format!("{at}.replay_buffer_bytes"),
            raw.replay_buffer_bytes,
            d.replay_buffer_bytes as i64,
            0,
            64 << 20,
        ) as usize,
        sticky_session: raw.sticky_session.unwrap_or(d.sticky_session),
        sticky_session_cookie_name: cookie,
        no_fallback: raw.no_fallback.unwrap_or(d.no_fallback),
        disable_load_balancing_for_user_agents: raw
            .disable_load_balancing_for_user_agents
            .unwrap_or_default(),
        failback: raw.failback.unwrap_or(d.failback),
        slow_start: v.duration(
            &format!("{at}.slow_start"),
            raw.slow_start.as_ref(),
            d.slow_start,
            Duration::ZERO,
            Duration::from_secs(3600),
        ),
        eject_after: v.int(
            &format!("{at}.eject_after"),
            raw.eject_after,
            d.eject_after.into(),
            1,
            1000,
        ) as u32,
        eject_for: v.duration(
            &format!("{at}.eject_for"),
            raw.eject_for.as_ref(),
            d.eject_for,
            Duration::from_secs(1),
            Duration::from_secs(300),
        ),
        stall_timeout: v.duration(
            &format!("{at}.stall_timeout"),
            raw.stall_timeout.as_ref(),
            d.stall_timeout,
            Duration::ZERO,
            Duration::from_secs(3600),
        ),
    }
}

fn health(v: &mut Validator<'_>, at: &str, raw: FileHealth) -> HealthCheck {
    let d = HealthCheck::default();
    let path = raw.path.unwrap_or(d.path);
    if !path.starts_with('/') {
        v.error(
            &format!("{at}.path"),
            format!("expected a path starting with '/', found {path:?}"),
        );
    }
    let interval = v.duration(
        &format!("{at}.interval"),
        raw.interval.as_ref(),
        d.interval,
        Duration::from_millis(10),
        Duration::from_secs(3600),
    );
    let timeout = v.duration(
        &format!("{at}.timeout"),
        raw.timeout.as_ref(),
        d.timeout.min(interval),
        MS,
        Duration::from_secs(3600),
    );
    if timeout > interval {
        v.error(
            &format!("{at}.timeout"),
            format!(
                "expected a timeout no longer than interval ({})",
                show(interval)
            ),
        );
    }
    let expect_status = match raw.expect_status {
        None => d.expect_status,
        Some(FileStatusRange(text)) => match parse_status_range(&text) {
            Some(range) => range,
            None => {
                v.error(&format!("{at}.expect_status"), format!("expected a status or range such as \"200\" or \"200-399\" within 100-599, found {text:?}"));
                d.expect_status
            }
        },
    };
    HealthCheck {
        path,
        interval,
        timeout,
        rise: v.int(&format!("{at}.rise"), raw.rise, d.rise.into(), 1, 100) as u32,
        fall: v.int(&format!("{at}.fall"), raw.fall, d.fall.into(), 1, 100) as u32,
        expect_status,
    }
}

fn parse_status_range(text: &str) -> Option<StatusRange> {
    let (min, max) = match text.split_once('-') {
        Some((a, b)) => (a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?),
        None => {
            let one = text.trim().parse::<u16>().ok()?;
            (one, one)
        }
    };
    ((100..=599).contains(&min) && (100..=599).contains(&max) && min <= max)
        .then_some(StatusRange { min, max })
}
