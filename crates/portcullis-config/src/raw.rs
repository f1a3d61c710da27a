//! Raw file types: exactly the TOML as written, before validation. Optional
//! fields are defaults to be filled in; strings that need parsing (durations,
//! urls, addresses) stay strings so their errors can name the key and line.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::model::{BackendProtocol, BalancerMode, Engine, LoadBalancing, Role};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileNodeConfig {
    #[serde(default)]
    pub node: FileNode,
    pub gateway: FileGateway,
    pub admin: Option<FileAdmin>,
    #[serde(default)]
    pub cluster: FileCluster,
    pub secrets: Option<FileSecrets>,
    pub balancer: Option<FileBalancer>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileNode {
    pub id: Option<String>,
    pub log_level: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileGateway {
    pub listen: String,
    pub path: Option<String>,
    pub public_url: Option<String>,
    pub tls: Option<FileTls>,
    pub shutdown_grace: Option<FileDuration>,
    pub max_connections: Option<i64>,
    pub header_read_timeout: Option<FileDuration>,
    /// Bytes per second a request body must average over 10 s.
    pub min_body_rate: Option<i64>,
    pub engine: Option<Engine>,
    /// Proxies whose X-Forwarded-For entries name the client.
    pub trusted_proxies: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTls {
    pub cert: String,
    pub key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAdmin {
    pub listen: String,
    pub tls: Option<FileTls>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCluster {
    pub name: Option<String>,
    pub store: Option<String>,
    pub role: Option<Role>,
    pub heartbeat: Option<FileDuration>,
    /// A directory, or `false` for no cache.
    pub cache: Option<FileCache>,
    pub tls: Option<FileStoreTls>,
    pub user: Option<String>,
    pub password_file: Option<String>,
}

/// `[cluster] cache`: a path, or `false`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum FileCache {
    Path(String),
    Enabled(bool),
}

/// `[cluster] tls`: how a member reaches an `etcd+tls://` store.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileStoreTls {
    pub ca: String,
    pub cert: Option<String>,
    pub key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSecrets {
    pub master: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileBalancer {
    pub listen: String,
    pub mode: Option<BalancerMode>,
    pub connect_timeout: Option<FileDuration>,
    pub request_timeout: Option<FileDuration>,
    pub tls: Option<FileTls>,
    /// PEM file (relative to the config file) of the CA members' certificates chain to.
    pub members_ca: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTopology {
    #[serde(default)]
    pub service: Vec<FileService>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileService {
    pub name: String,
    pub urls: Vec<String>,
    #[serde(default)]
    pub backup_urls: Vec<String>,
    pub protocol: Option<BackendProtocol>,
    pub preserve_host: Option<bool>,
    pub tls_ca: Option<String>,
    pub tls_verify: Option<bool>,
    #[serde(default)]
    pub ha: FileHa,
    pub health: Option<FileHealth>,
    #[serde(default)]
    pub timeouts: FileTimeouts,
    pub backend_auth: Option<FileBackendAuth>,
    pub auth: Option<FileAuth>,
    pub rate_limit: Option<FileRateLimit>,
    pub authorize: Option<FileAuthorize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileHa {
    pub enabled: Option<bool>,
    pub load_balancing: Option<LoadBalancing>,
    pub max_failover_attempts: Option<i64>,
    pub failover_sleep: Option<FileDuration>,
    pub failover_non_idempotent: Option<bool>,
    pub retry_on_status: Option<Vec<i64>>,
    pub replay_buffer_bytes: Option<i64>,
    pub sticky_session: Option<bool>,
    pub sticky_session_cookie_name: Option<String>,
    pub no_fallback: Option<bool>,
    pub disable_load_balancing_for_user_agents: Option<Vec<String>>,
    pub failback: Option<bool>,
    pub slow_start: Option<FileDuration>,
    pub eject_after: Option<i64>,
    pub eject_for: Option<FileDuration>,
    pub stall_timeout: Option<FileDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileHealth {
    pub path: Option<String>,
    pub interval: Option<FileDuration>,
    pub timeout: Option<FileDuration>,
    pub rise: Option<i64>,
    pub fall: Option<i64>,
    pub expect_status: Option<FileStatusRange>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTimeouts {
    pub connect: Option<FileDuration>,
    pub request: Option<FileDuration>,
    pub idle: Option<FileDuration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileBackendAuth {
    pub user: String,
    pub password_alias: String,
}

/// `[service.auth]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAuth {
    pub methods: Vec<FileAuthMethod>,
    pub jwt: Option<FileJwt>,
    pub api_key: Option<FileApiKey>,
    pub basic: Option<FileBasic>,
    pub identity_header: Option<String>,
    pub knox_doas: Option<bool>,
}

/// `[service.rate_limit]` as written; `key` is parsed in validation, where
/// `header:NAME` can be checked and named.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRateLimit {
    pub requests: i64,
    pub per: Option<FileDuration>,
    pub key: String,
    pub burst: Option<i64>,
}

/// `[service.authorize]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAuthorize {
    pub users: Option<Vec<String>>,
    pub groups: Option<Vec<String>>,
    pub claims: Option<std::collections::BTreeMap<String, String>>,
    pub cidrs: Option<Vec<String>>,
    pub mode: Option<FileAuthorizeMode>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileAuthorizeMode {
    All,
    Any,
}

/// Every method §11 names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileAuthMethod {
    Jwt,
    ApiKey,
    Basic,
}

/// `api_key = { header = "X-API-Key" }`; `{}` takes the default header.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileApiKey {
    pub header: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileJwt {
    pub jwks: String,
    pub issuer: String,
    pub audiences: Vec<String>,
    pub leeway: Option<FileDuration>,
}

/// `basic = { ... }`: exactly one of `ldap` and `htpasswd`, checked by
/// validation so that the message can say which keys go together.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileBasic {
    pub ldap: Option<String>,
    pub bind_dn: Option<String>,
    pub group_base: Option<String>,
    pub starttls: Option<bool>,
    pub tls_ca: Option<String>,
    pub htpasswd: Option<String>,
}

/// A duration as written. It stays text so that validation, which reports every
/// problem rather than the first, can name the key; the custom `expecting` makes
/// `heartbeat = 1` say a duration string was expected, not just "a string".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDuration(pub String);

impl<'de> Deserialize<'de> for FileDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = FileDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"250ms\", \"2s\" or \"5m\"")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<FileDuration, E> {
                Ok(FileDuration(text.to_string()))
            }
        }
        deserializer.deserialize_str(DurationVisitor)
    }
}

/// `expect_status` as written: "200-399", "200" or the bare integer 200, which
/// operators write naturally and which means the same thing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStatusRange(pub String);

impl<'de> Deserialize<'de> for FileStatusRange {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StatusVisitor;
        impl Visitor<'_> for StatusVisitor {
            type Value = FileStatusRange;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a status or range such as \"200\" or \"200-399\"")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<FileStatusRange, E> {
                Ok(FileStatusRange(text.to_string()))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<FileStatusRange, E> {
                Ok(FileStatusRange(n.to_string()))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<FileStatusRange, E> {
                Ok(FileStatusRange(n.to_string()))
            }
        }
        deserializer.deserialize_any(StatusVisitor)
    }
}
