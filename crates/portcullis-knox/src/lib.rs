//! The importer behind `portcullis topology import-knox`: turns an Apache Knox
//! topology (XML) into a Portcullis topology (TOML) that behaves as the
//! services did under Knox.
//!
//! Knox ignores what it does not understand; this converter says so instead. Every
//! setting that cannot be carried over becomes a warning naming what and why.
//! Where Knox's defaults differ from Portcullis's, the Knox value is written out
//! with a `# Knox default` comment, so that importing changes no behaviour silently.

#![forbid(unsafe_code)]

use std::fmt::Write as _;

use roxmltree::Node;

mod security;
use security::Security;

/// Why a Knox topology could not be converted at all (what merely cannot be
/// carried over is a warning instead).
#[derive(Debug, thiserror::Error)]
pub enum KnoxError {
    #[error("invalid Knox topology XML")]
    Xml(#[source] roxmltree::Error),
    #[error("not a Knox topology: the root element is <{0}>, expected <topology>")]
    NotATopology(String),
    #[error("nothing to import: the Knox topology has no <service> with a <url>")]
    NothingToImport,
    /// A conversion that Portcullis would refuse: a bug here, not the operator's.
    #[error("internal error: the converted topology does not validate: {0}")]
    InvalidOutput(String),
}

/// The converted topology text and what could not be carried over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnoxConversion {
    pub toml: String,
    pub warnings: Vec<String>,
}

/// Knox sleeps this long (ms) between failovers unless told otherwise; Portcullis 0.
const KNOX_FAILOVER_SLEEP_MS: u64 = 1000;
/// Knox never load-balances this client (it cannot follow a sticky cookie).
const KNOX_NO_LB_AGENTS: &str = "ClouderaODBCDriverforApacheHive";
/// portcullis-config's ranges; a value outside them would make the output invalid.
const MAX_FAILOVER_SLEEP_MS: u64 = 60_000;
const MAX_FAILOVER_ATTEMPTS: u32 = 100;

/// Every key Knox's HaProvider reads, for the "did you mean" hint.
const HA_KEYS: &str = "enabled maxFailoverAttempts failoverSleep enableLoadBalancing \
    enableStickySession stickySessionCookieName noFallback disableLoadBalancingForUserAgents \
    failoverNonIdempotentRequestEnabled zookeeperEnsemble zookeeperNamespace maxRetryAttempts \
    retrySleep";

/// Service-level params that Knox applies on top of the HaProvider's for a role.
const SERVICE_HA_OVERRIDES: &str = "haEnabled failoverSleep maxFailoverAttempts retrySleep \
    maxRetryAttempts zookeeperEnsemble zookeeperNamespace";

/// Converts Knox topology XML; the header comment names no file.
pub fn convert_knox_topology(xml: &str) -> Result<KnoxConversion, KnoxError> {
    convert_knox_topology_from(xml, "an Apache Knox topology")
}

/// Converts Knox topology XML; `source` (for example the file name) goes in the
/// header comment.
pub fn convert_knox_topology_from(xml: &str, source: &str) -> Result<KnoxConversion, KnoxError> {
    let doc = roxmltree::Document::parse(xml).map_err(KnoxError::Xml)?;
    let root = doc.root_element();
    if root.tag_name().name() != "topology" {
        return Err(KnoxError::NotATopology(root.tag_name().name().to_string()));
    }
    let mut warnings = Vec::new();
    let mut services: Vec<KnoxService> = Vec::new();
    let mut ha: Option<HaProvider> = None;
    let mut security = Security::default();
    for child in elements(root) {
        match child.tag_name().name() {
            "gateway" => {
                for provider in elements(child) {
                    read_provider(provider, &mut ha, &mut security, &mut warnings);
                }
            }
            "service" => {
                if let Some(service) = read_service(child, &services, &mut warnings) {
                    services.push(service);
                }
            }
            other => warnings.push(format!(
                "element <{other}> is not carried over: it has no Portcullis equivalent"
            )),
        }
    }
    if services.is_empty() {
        return Err(KnoxError::NothingToImport);
    }
    // No HaProvider: nothing is disabled, but no role is covered either.
    let ha = ha.unwrap_or_default();
    if let Some(why) = &ha.disabled_why {
        warnings.push(format!(
            "the HaProvider {why}, so HA is off for every role: imported with ha.enabled = false"
        ));
    }
    for (role, _) in &ha.params {
        if !services.iter().any(|s| &s.role == role) {
            let hint = services
                .iter()
                .find(|s| s.role.eq_ignore_ascii_case(role))
                .map(|s| format!(" (roles are case-sensitive; the service is {})", s.role))
                .unwrap_or_default();
            warnings.push(format!(
                "HaProvider param {role} is not carried over: the topology has no service with role {role}{hint}"
            ));
        }
    }

    let roles: Vec<&str> = services.iter().map(|s| s.role.as_str()).collect();
    security.check(&roles, &mut warnings);

    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Imported from {} by `portcullis topology import-knox`.",
        comment_safe(source)
    );
    out.push_str("# Check the warnings printed with it: they list what was not carried over.\n");
    for service in &services {
        let table = ha_table(service, &ha, &mut warnings);
        write_service(&mut out, service, table);
        out.push_str(&security.tables(&service.role, &mut warnings));
    }

    // A conversion that Portcullis would refuse is a bug here, not the operator's.
    if let Err(e) = portcullis_config::parse_topology("imported", "imported.toml", &out) {
        return Err(KnoxError::InvalidOutput(e.to_string()));
    }
    Ok(KnoxConversion {
        toml: out,
        warnings,
    })
}

struct KnoxService {
    role: String,
    name: String,
    urls: Vec<String>,
    params: Vec<(String, String)>,
}

#[derive(Default)]
struct HaProvider {
    /// Why it is off; `None` when it is on.
    disabled_why: Option<String>,
    /// (role, "k=v;k=v") in document order.
    params: Vec<(String, String)>,
}

/// What a role's HaProvider value said; `None` is "absent" (Knox default).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct HaSettings {
    enabled: Option<bool>,
    max_failover_attempts: Option<u32>,
    failover_sleep_ms: Option<u64>,
    load_balancing: Option<bool>,
    sticky_session: Option<bool>,
    cookie_name: Option<String>,
    no_fallback: Option<bool>,
    user_agents: Option<Vec<String>>,
    failover_non_idempotent: Option<bool>,
}

fn elements<'a, 'i>(node: Node<'a, 'i>) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children().filter(Node::is_element)
}

/// Trimmed text of the first child element `tag`.
fn text_of(node: Node<'_, '_>, tag: &str) -> Option<String> {
    elements(node)
        .find(|c| c.tag_name().name() == tag)
        .map(|c| c.text().unwrap_or("").trim().to_string())
}

/// `<param><name>..</name><value>..</value></param>` children, in order.
fn params_of(node: Node<'_, '_>) -> Vec<(String, String)> {
    elements(node)
        .filter(|c| c.tag_name().name() == "param")
        .map(|p| {
            let name = text_of(p, "name").unwrap_or_default();
            (name, text_of(p, "value").unwrap_or_default())
        })
        .collect()
}

fn read_provider(
    node: Node<'_, '_>,
    ha: &mut Option<HaProvider>,
    security: &mut Security,
    warnings: &mut Vec<String>,
) {
    if node.tag_name().name() != "provider" {
        warnings.push(format!(
            "element <{}> in <gateway> is not carried over: it has no Portcullis equivalent",
            node.tag_name().name()
        ));
        return;
    }
    let role = text_of(node, "role").unwrap_or_default();
    let name = text_of(node, "name").unwrap_or_default();
    let enabled = text_of(node, "enabled").is_some_and(|e| e.eq_ignore_ascii_case("true"));
    if security.read(&role, &name, enabled, &params_of(node), warnings) {
        return;
    }
    if role != "ha" {
        warnings.push(format!(
            "provider {role}/{name} is not carried over: {}",
            provider_reason(&role)
        ));
        return;
    }
    if ha.is_some() {
        warnings.push(format!(
            "provider ha/{name} is not carried over: the topology already has an HA provider"
        ));
        return;
    }
    // Knox deploys a provider only when <enabled> reads as true; absent is false.
    let disabled_why = match text_of(node, "enabled") {
        Some(text) if text.eq_ignore_ascii_case("true") => None,
        Some(text) => Some(format!("is disabled (<enabled>{text}</enabled>)")),
        None => Some("has no <enabled>true</enabled> (Knox then does not deploy it)".to_string()),
    };
    let mut params: Vec<(String, String)> = Vec::new();
    for (role, value) in params_of(node) {
        // Knox keeps params in a map: a repeated role keeps the last value.
        if params.iter().any(|(r, _)| *r == role) {
            warnings.push(format!(
                "HaProvider param {role} is given twice: the last one is used"
            ));
        }
        params.retain(|(r, _)| *r != role);
        params.push((role, value));
    }
    *ha = Some(HaProvider {
        disabled_why,
        params,
    });
}

/// Why a Knox provider role has no counterpart, in terms an operator can act on.
fn provider_reason(role: &str) -> &'static str {
    match role {
        "authentication" | "federation" => {
            "Portcullis authenticates with ShiroProvider's LDAP realm (basic), JWTProvider or SSOCookieProvider (jwt) only; the services are imported WITHOUT authentication"
        }
        "identity-assertion" => {
            "only the Default identity assertion is carried over (identity_header, knox_doas); names are asserted as authenticated, without mapping"
        }
        "authorization" => "only AclsAuthz is carried over ([service.authorize])",
        "webappsec" => "Portcullis adds no CSRF, CORS or security headers; configure them in the backends",
        "hostmap" => "Portcullis has no host mapping; write the urls with the addresses Portcullis should use",
        _ => "Portcullis has no equivalent",
    }
}

fn read_service(
    node: Node<'_, '_>,
    seen: &[KnoxService],
    warnings: &mut Vec<String>,
) -> Option<KnoxService> {
    let Some(role) = text_of(node, "role").filter(|r| !r.is_empty()) else {
        warnings.push("a <service> without a <role> is skipped".to_string());
        return None;
    };
    let name = role.to_ascii_lowercase();
    if seen.iter().any(|s| s.name == name) {
        warnings.push(format!(
            "service {role} is skipped: the topology already has a service {name:?} and each needs its own name"
        ));
        return None;
    }
    let mut urls: Vec<String> = Vec::new();
    for url in elements(node).filter(|c| c.tag_name().name() == "url") {
        urls.push(url.text().unwrap_or("").trim().to_string());
        if let Err(why) = probe("probe", &urls) {
            let url = urls.pop().unwrap_or_default();
            warnings.push(format!(
                "service {role}: url {url:?} is not carried over: {why}"
            ));
        }
    }
    if urls.is_empty() {
        warnings.push(format!(
            "service {role} is skipped: it has no usable <url> to proxy to"
        ));
        return None;
    }
    if let Err(why) = probe(&name, &urls) {
        warnings.push(format!("service {role} is skipped: {why}"));
        return None;
    }
    Some(KnoxService {
        role,
        name,
        urls,
        params: params_of(node),
    })
}

/// Asks portcullis-config itself whether one service with this name and these
/// urls loads, so the converter never disagrees with the loader (URL schemes,
/// duplicates after normalisation, service name characters).
fn probe(name: &str, urls: &[String]) -> Result<(), String> {
    let urls: Vec<String> = urls.iter().map(|u| toml_string(u)).collect();
    let (name, urls) = (toml_string(name), urls.join(", "));
    let src = format!("[[service]]\nname = {name}\nurls = [{urls}]\n");
    portcullis_config::parse_topology("probe", "probe.toml", &src)
        .map(drop)
        .map_err(|e| {
            e.first()
                .map_or_else(|| e.to_string(), |e| e.message.clone())
        })
}

/// The `[service.ha]` table for one service, if any; warns about what is dropped.
fn ha_table(service: &KnoxService, ha: &HaProvider, warnings: &mut Vec<String>) -> Option<String> {
    let role = &service.role;
    let Some((_, value)) = ha.params.iter().find(|(r, _)| r == role) else {
        for (name, _) in &service.params {
            warnings.push(format!(
                "service {role}: param {name} is not carried over: {}",
                service_param_reason(name)
            ));
        }
        if service.urls.len() < 2 {
            return None; // Nothing to fail over to, nothing to write.
        }
        if ha.disabled_why.is_none() {
            warnings.push(format!(
                "service {role} lists {} urls but no HaProvider param covers {role}: Knox used only the first url, so it is imported with ha.enabled = false",
                service.urls.len()
            ));
            return Some(
                "enabled = false  # Knox had no HA for this role: first url only\n".into(),
            );
        }
        return Some("enabled = false  # the Knox HaProvider is disabled\n".into());
    };
    let mut settings = HaSettings::default();
    let at = format!("HaProvider param {role}");
    let mut seen_keys: Vec<&str> = Vec::new();
    for pair in value.split(';') {
        if pair.trim().is_empty() {
            continue; // "a=1;" — Java's split drops the empty tail too.
        }
        let tokens: Vec<&str> = pair.split('=').collect();
        let (key, val) = match tokens.as_slice() {
            [k, v] if !k.trim().is_empty() && !v.trim().is_empty() => (k.trim(), v.trim()),
            _ => {
                warnings.push(format!(
                    "{at}: {:?} is not a key=value pair with a value; Knox ignores it",
                    pair.trim()
                ));
                continue;
            }
        };
        if seen_keys.contains(&key) {
            warnings.push(format!(
                "{at}: {key} is given twice: the last value is used"
            ));
        }
        seen_keys.push(key);
        apply_key(&mut settings, &at, key, val, warnings);
    }
    // Knox lets a service's own params override a few HaProvider keys for its role.
    for (name, val) in &service.params {
        if listed(SERVICE_HA_OVERRIDES, name) && !val.trim().is_empty() {
            let key = if name == "haEnabled" { "enabled" } else { name };
            let at = format!("service {role} param");
            apply_key(&mut settings, &at, key, val.trim(), warnings);
        } else {
            warnings.push(format!(
                "service {role}: param {name} is not carried over: {}",
                service_param_reason(name)
            ));
        }
    }
    if settings.sticky_session == Some(true) && settings.load_balancing != Some(true) {
        warnings.push(format!(
            "{at}: enableStickySession=true is not carried over: Knox ignores it without enableLoadBalancing=true"
        ));
        settings.sticky_session = None;
    }
    Some(ha_text(&settings, ha.disabled_why.is_none()))
}

fn service_param_reason(name: &str) -> &'static str {
    match name {
        "httpclient.connectionTimeout" => "set [service.timeouts] connect instead",
        "httpclient.socketTimeout" => "set [service.timeouts] idle instead",
        "replayBufferSize" => "set ha.replay_buffer_bytes instead (in bytes)",
        n if listed(SERVICE_HA_OVERRIDES, n) => {
            "Knox applies it only to a role with a HaProvider param"
        }
        _ => "Knox service params have no Portcullis equivalent",
    }
}

/// Applies one HaProvider key. Keys compare case-sensitively, as in Knox.
fn apply_key(s: &mut HaSettings, at: &str, key: &str, value: &str, warnings: &mut Vec<String>) {
    let mut warn = |why: &str| warnings.push(format!("{at}: {key}={value} {why}"));
    // Knox reads booleans with Boolean.parseBoolean: anything but "true" is false.
    let boolean = |warn: &mut dyn FnMut(&str)| {
        let on = value.eq_ignore_ascii_case("true");
        if !on && !value.eq_ignore_ascii_case("false") {
            warn("is not true or false; imported as false, which is how Knox reads it");
        }
        Some(on)
    };
    match key {
        "enabled" => s.enabled = boolean(&mut warn),
        "enableLoadBalancing" => s.load_balancing = boolean(&mut warn),
        "enableStickySession" => s.sticky_session = boolean(&mut warn),
        "noFallback" => s.no_fallback = boolean(&mut warn),
        "failoverNonIdempotentRequestEnabled" => s.failover_non_idempotent = boolean(&mut warn),
        "maxFailoverAttempts" => match value.parse::<u32>() {
            Ok(n) if n <= MAX_FAILOVER_ATTEMPTS => s.max_failover_attempts = Some(n),
            _ => warn(&format!(
                "is not a whole number from 0 to {MAX_FAILOVER_ATTEMPTS}; skipped"
            )),
        },
        "failoverSleep" => match value.parse::<u64>() {
            Ok(ms) if ms <= MAX_FAILOVER_SLEEP_MS => s.failover_sleep_ms = Some(ms),
            _ => warn(&format!(
                "is not a whole number of milliseconds from 0 to {MAX_FAILOVER_SLEEP_MS}; skipped"
            )),
        },
        "stickySessionCookieName" => {
            if is_cookie_token(value) {
                s.cookie_name = Some(value.to_string());
            } else {
                warn("is not a valid cookie name; skipped");
            }
        }
        "disableLoadBalancingForUserAgents" => {
            let agents = value.split(',').map(str::trim).filter(|a| !a.is_empty());
            s.user_agents = Some(agents.map(str::to_string).collect());
        }
        "zookeeperEnsemble" | "zookeeperNamespace" => warn(
            "is not carried over: ZooKeeper discovery is not supported; list the backend urls in the service instead",
        ),
        "maxRetryAttempts" | "retrySleep" => warn(
            "is not carried over: Portcullis does not retry the same url; a failed try goes to the next url (max_failover_attempts, failover_sleep)",
        ),
        _ => {
            let hint = HA_KEYS
                .split_whitespace()
                .find(|k| k.eq_ignore_ascii_case(key))
                .map(|k| format!(" (keys are case-sensitive: did you mean {k}?)"))
                .unwrap_or_default();
            warn(&format!(
                "is not carried over: not a Knox HaProvider key, so Knox ignored it{hint}"
            ));
        }
    }
}

/// Whether `key` is one of the space-separated words of `list`.
fn listed(list: &str, key: &str) -> bool {
    list.split_whitespace().any(|k| k == key)
}

/// RFC 6265 token, the same rule portcullis-config applies to cookie names.
fn is_cookie_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn write_service(out: &mut String, service: &KnoxService, ha: Option<String>) {
    out.push_str("\n[[service]]\n");
    let _ = writeln!(out, "name = {}", toml_string(&service.name));
    if service.urls.len() == 1 {
        let _ = writeln!(out, "urls = [{}]", toml_string(&service.urls[0]));
    } else {
        out.push_str("urls = [\n");
        for url in &service.urls {
            let _ = writeln!(out, "  {},", toml_string(url));
        }
        out.push_str("]\n");
    }
    if let Some(table) = ha {
        out.push_str("\n[service.ha]\n");
        out.push_str(&table);
    }
}

/// The `[service.ha]` keys in the model's order, Knox defaults made explicit.
fn ha_text(s: &HaSettings, provider_enabled: bool) -> String {
    let mut out = String::new();
    let mut put = |key: &str, value: String, comment: Option<&str>| {
        let comment = comment.map(|c| format!("  # {c}")).unwrap_or_default();
        let _ = writeln!(out, "{key} = {value}{comment}");
    };
    if !provider_enabled {
        put(
            "enabled",
            "false".into(),
            Some("the Knox HaProvider is disabled"),
        );
    } else if let Some(on) = s.enabled {
        put("enabled", on.to_string(), None);
    }
    if let Some(lb) = s.load_balancing {
        let mode = if lb { "round-robin" } else { "none" };
        put("load_balancing", toml_string(mode), None);
    }
    if let Some(n) = s.max_failover_attempts {
        put("max_failover_attempts", n.to_string(), None);
    }
    match s.failover_sleep_ms {
        Some(ms) => put("failover_sleep", format!("\"{ms}ms\""), None),
        None => put(
            "failover_sleep",
            format!("\"{KNOX_FAILOVER_SLEEP_MS}ms\""),
            Some("Knox default"),
        ),
    }
    if let Some(on) = s.failover_non_idempotent {
        put("failover_non_idempotent", on.to_string(), None);
    }
    put(
        "retry_on_status",
        "[]".into(),
        Some("Knox never fails over on a status; Portcullis default is [502, 503, 504]"),
    );
    if let Some(on) = s.sticky_session {
        put("sticky_session", on.to_string(), None);
    }
    if let Some(name) = &s.cookie_name {
        put("sticky_session_cookie_name", toml_string(name), None);
    }
    if let Some(on) = s.no_fallback {
        put("no_fallback", on.to_string(), None);
    }
    let default_agents = [KNOX_NO_LB_AGENTS.to_string()];
    let (agents, comment) = match &s.user_agents {
        Some(list) => (list.as_slice(), None),
        None => (&default_agents[..], Some("Knox default")),
    };
    let agents: Vec<String> = agents.iter().map(|a| toml_string(a)).collect();
    let key = "disable_load_balancing_for_user_agents";
    put(key, format!("[{}]", agents.join(", ")), comment);
    out
}

/// A TOML basic string: quotes, backslashes and control characters escaped.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A comment runs to the end of the line and may not hold control characters.
fn comment_safe(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests;
