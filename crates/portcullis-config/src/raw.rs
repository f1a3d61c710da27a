//! Raw file types: exactly the TOML as written, before validation. Optional
//! fields are defaults to be filled in; strings that need parsing (durations,
//! urls, addresses) stay strings so their errors can name the key and line.

use serde::Deserialize;

use crate::model::{BackendProtocol, BalancerMode, LoadBalancing, Role};

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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileGateway {
    pub listen: String,
    pub path: Option<String>,
    pub public_url: Option<String>,
    pub tls: Option<FileTls>,
    pub shutdown_grace: Option<String>,
    pub max_connections: Option<u64>,
    pub header_read_timeout: Option<String>,
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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCluster {
    pub name: Option<String>,
    pub store: Option<String>,
    pub role: Option<Role>,
    pub heartbeat: Option<String>,
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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileHa {
    pub enabled: Option<bool>,
    pub load_balancing: Option<LoadBalancing>,
    pub max_failover_attempts: Option<i64>,
    pub failover_sleep: Option<String>,
    pub failover_non_idempotent: Option<bool>,
    pub retry_on_status: Option<Vec<i64>>,
    pub replay_buffer_bytes: Option<i64>,
    pub sticky_session: Option<bool>,
    pub sticky_session_cookie_name: Option<String>,
    pub no_fallback: Option<bool>,
    pub disable_load_balancing_for_user_agents: Option<Vec<String>>,
    pub failback: Option<bool>,
    pub slow_start: Option<String>,
    pub eject_after: Option<i64>,
    pub eject_for: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileHealth {
    pub path: Option<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub rise: Option<i64>,
    pub fall: Option<i64>,
    pub expect_status: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTimeouts {
    pub connect: Option<String>,
    pub request: Option<String>,
    pub idle: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileBackendAuth {
    pub user: String,
    pub password_alias: String,
}
