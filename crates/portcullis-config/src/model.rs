//! Validated configuration: what the rest of Portcullis works with. Every value
//! here has passed the checks in `validate.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    pub node: NodeSection,
    pub gateway: GatewaySection,
    pub admin: Option<AdminSection>,
    pub cluster: ClusterSection,
    pub secrets: Option<SecretsSection>,
    pub balancer: Option<BalancerSection>,
    /// Directory of the config file; relative paths were resolved against it.
    pub base_dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSection {
    pub id: String,
    /// `[node] log_level`: the log filter when neither `--log-level` nor
    /// `RUST_LOG` sets one; a reload applies a new value.
    pub log_level: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewaySection {
    pub listen: SocketAddr,
    /// URL prefix without slashes.
    pub path: String,
    pub public_url: url::Url,
    /// `public_url` was written in the file (not derived from `listen`):
    /// rewritten `Location` headers then use it instead of the client's Host.
    pub public_url_configured: bool,
    pub tls: Option<TlsFiles>,
    pub shutdown_grace: Duration,
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    /// Slowest request body accepted, in bytes/s averaged over 10 s; 0 is off.
    pub min_body_rate: u64,
    /// What serves HTTP/1.1 clients and plain HTTP/1.1 backends.
    pub engine: Engine,
    /// `[gateway] trusted_proxies`: peers in these networks, and the
    /// X-Forwarded-For entries they vouch for, are proxies; the client is
    /// the rightmost address that is not one. Empty: the peer is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// The HTTP/1.1 engine (`[gateway] engine`). HTTP/2 is always hyper's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// Portcullis's own HTTP/1.1 engine on httparse (the default).
    #[default]
    Portcullis,
    /// hyper on both sides, as before the own engine.
    Hyper,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSection {
    pub listen: SocketAddr,
    /// The admin listener (API, dashboard, metrics) terminates TLS.
    pub tls: Option<TlsFiles>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSection {
    pub name: String,
    pub store: StoreLocation,
    pub role: Role,
    pub heartbeat: Duration,
    /// Where the member keeps its last good state; `None`: `cache = false`.
    pub cache: Option<PathBuf>,
    /// Set exactly when the store is `etcd+tls://`.
    pub tls: Option<StoreTls>,
    /// etcd authentication, when `[cluster] user` is set.
    pub auth: Option<StoreAuth>,
}

/// `[cluster] tls`: the CA that signed etcd's certificate and, when etcd
/// asks for one, the member's client certificate and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreTls {
    pub ca: PathBuf,
    pub client: Option<TlsFiles>,
}

/// `[cluster] user` and `password_file`. The password cannot be an alias:
/// aliases live in the store it opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreAuth {
    pub user: String,
    pub password_file: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    Dir(PathBuf),
    /// `host:port` endpoints.
    Etcd(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Manager,
    Worker,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretsSection {
    pub master: SecretSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalancerSection {
    pub listen: SocketAddr,
    pub mode: BalancerMode,
    /// `proxy` mode: how long connecting to a member may take.
    pub connect_timeout: Duration,
    /// `proxy` mode: how long a member may take to send its response head.
    pub request_timeout: Duration,
    /// Terminates TLS on the balancer's listener.
    pub tls: Option<TlsFiles>,
    /// `proxy` mode: the CA `https://` members are verified against (the
    /// system's roots are not used): a PEM file path relative to `base_dir`,
    /// or inline PEM, as a service's `tls_ca`.
    pub members_ca: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BalancerMode {
    Redirect,
    Proxy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub name: String,
    pub services: Vec<Service>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub urls: Vec<url::Url>,
    pub backup_urls: Vec<url::Url>,
    pub protocol: BackendProtocol,
    pub preserve_host: bool,
    /// A PEM file path (relative to the member's config directory) or inline PEM.
    pub tls_ca: Option<String>,
    pub tls_verify: bool,
    pub ha: HaPolicy,
    pub health: Option<HealthCheck>,
    pub timeouts: Timeouts,
    pub backend_auth: Option<BackendAuth>,
    /// `[service.auth]`: who may call the service; `None` lets everyone.
    pub auth: Option<AuthPolicy>,
    /// `[service.rate_limit]`: cluster-wide request limit; `None`: unlimited.
    pub rate_limit: Option<RateLimitPolicy>,
    /// `[service.authorize]`: which callers may pass; `None` lets every
    /// authenticated caller (or everyone, without `auth`).
    pub authorize: Option<AuthorizePolicy>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub enum BackendProtocol {
    #[serde(rename = "http1")]
    Http1,
    #[serde(rename = "h2")]
    H2,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaPolicy {
    pub enabled: bool,
    pub load_balancing: LoadBalancing,
    pub max_failover_attempts: u32,
    pub failover_sleep: Duration,
    pub failover_non_idempotent: bool,
    pub retry_on_status: Vec<u16>,
    pub replay_buffer_bytes: usize,
    pub sticky_session: bool,
    pub sticky_session_cookie_name: String,
    pub no_fallback: bool,
    pub disable_load_balancing_for_user_agents: Vec<String>,
    pub failback: bool,
    pub slow_start: Duration,
    pub eject_after: u32,
    pub eject_for: Duration,
    /// Abandon a try once its backend has sent no response headers to any
    /// request for this long (zero: off). See docs/ha.md.
    pub stall_timeout: Duration,
}

impl Default for HaPolicy {
    fn default() -> Self {
        HaPolicy {
            enabled: true,
            load_balancing: LoadBalancing::None,
            max_failover_attempts: 3,
            failover_sleep: Duration::ZERO,
            failover_non_idempotent: false,
            retry_on_status: vec![502, 503, 504],
            replay_buffer_bytes: 65536,
            sticky_session: false,
            sticky_session_cookie_name: "KNOX_BACKEND".to_string(),
            no_fallback: false,
            disable_load_balancing_for_user_agents: Vec::new(),
            failback: false,
            slow_start: Duration::ZERO,
            eject_after: 3,
            eject_for: Duration::from_secs(10),
            stall_timeout: Duration::ZERO,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoadBalancing {
    None,
    RoundRobin,
    LeastRequests,
    Random,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    pub expect_status: StatusRange,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            path: "/".to_string(),
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 3,
            expect_status: StatusRange { min: 200, max: 399 },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRange {
    pub min: u16,
    pub max: u16,
}

impl StatusRange {
    pub fn contains(&self, status: u16) -> bool {
        (self.min..=self.max).contains(&status)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub request: Duration,
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(3),
            request: Duration::from_secs(60),
            idle: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendAuth {
    pub user: String,
    pub password_alias: String,
}

/// `[service.auth]` (PRODUCT.md §11, docs/policies.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthPolicy {
    /// Tried in this order.
    pub methods: Vec<AuthMethod>,
    /// Set exactly when `methods` lists [`AuthMethod::Jwt`].
    pub jwt: Option<JwtPolicy>,
    /// Set exactly when `methods` lists [`AuthMethod::ApiKey`].
    pub api_key: Option<ApiKeyPolicy>,
    /// Set exactly when `methods` lists [`AuthMethod::Basic`].
    pub basic: Option<BasicPolicy>,
    /// The header the principal goes to the backends in; client-supplied
    /// copies are removed. Lower case, a valid field name.
    pub identity_header: String,
    /// Also add `?doAs=<principal>`, as Knox's identity assertion does.
    pub knox_doas: bool,
}

impl AuthPolicy {
    pub const DEFAULT_IDENTITY_HEADER: &'static str = "x-forwarded-user";
    pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
}

/// `[service.rate_limit]` (PRODUCT.md §11, docs/policies.md): `requests`
/// per `per` across the cluster, for each value of `key`, plus `burst`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitPolicy {
    pub requests: u64,
    /// Whole seconds, at least one.
    pub per: Duration,
    pub key: RateLimitKey,
    /// Requests admitted at once above the steady rate.
    pub burst: u64,
}

impl RateLimitPolicy {
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(1);
}

/// What a rate limit counts requests per.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateLimitKey {
    /// The principal `[service.auth]` signed in.
    Principal,
    /// The connection's peer address.
    ClientIp,
    /// The API key a caller signed in with; keyed by the principal the
    /// sign-in gave (an API key's name), so that made-up key values cannot
    /// open fresh buckets.
    ApiKey,
    /// The value of this request header (lower case); requests without it
    /// share one bucket.
    Header(String),
}

/// `[service.auth] api_key`: keys created with `portcullis key create`, sent
/// in one header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyPolicy {
    /// Lower case, a valid field name, not one the gateway sets itself.
    pub header: String,
}

impl ApiKeyPolicy {
    pub const DEFAULT_HEADER: &'static str = "x-api-key";
}

/// `[service.authorize]` (PRODUCT.md §11, docs/policies.md). Within a kind
/// one entry is enough (OR); across the kinds that are given, every kind
/// must match in mode `All` (Knox AclsAuthz's default), one in mode `Any`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizePolicy {
    /// Principal names; `None`: not checked.
    pub users: Option<Vec<String>>,
    /// Any of the principal's groups (LDAP groups or the JWT `groups` claim).
    pub groups: Option<Vec<String>>,
    /// Claim name and the value it must hold; every listed claim is checked.
    pub claims: Option<Vec<(String, String)>>,
    /// The client's address (the connection's peer).
    pub cidrs: Option<Vec<ipnet::IpNet>>,
    pub mode: AuthorizeMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizeMode {
    /// Every kind given must match (the default).
    All,
    /// One kind matching is enough (Knox `acl.mode = OR`).
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// A bearer JWT in `Authorization`.
    Jwt,
    /// A key from `portcullis key create` in the configured header.
    ApiKey,
    /// `Authorization: Basic`, checked against LDAP or an htpasswd file.
    Basic,
}

impl AuthMethod {
    /// Every method, in the order of their discriminants (metric slots).
    pub const ALL: [AuthMethod; 3] = [AuthMethod::Jwt, AuthMethod::ApiKey, AuthMethod::Basic];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Jwt => "jwt",
            AuthMethod::ApiKey => "api_key",
            AuthMethod::Basic => "basic",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtPolicy {
    pub jwks: JwksSource,
    /// The `iss` every token must carry.
    pub issuer: String,
    /// A token's `aud` must hold at least one of these.
    pub audiences: Vec<String>,
    /// Slack for `exp` and `nbf`, whole seconds.
    pub leeway: Duration,
}

/// Where Basic credentials are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BasicPolicy {
    Ldap(LdapPolicy),
    /// `file:PATH` of an htpasswd file (bcrypt and argon2 lines only), read
    /// when the topology is applied; PATH relative to the member's config
    /// directory, as a `file:` key set.
    Htpasswd(String),
}

/// `basic = { ldap = ..., bind_dn = ..., ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapPolicy {
    /// `ldaps://` or `ldap://` (StartTLS, or a loopback host).
    pub url: url::Url,
    /// The DN a user binds as; `{user}` stands for the escaped user name.
    pub bind_dn: String,
    /// Where groups naming the user are searched; no groups when absent.
    pub group_base: Option<String>,
    pub starttls: bool,
    /// `file:PATH` of the PEM CA(s) the directory's certificate must chain
    /// to; the system roots when absent.
    pub tls_ca: Option<String>,
}

/// Where a JWT key set comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// `file:PATH`: read when the topology is applied; PATH relative to the
    /// member's config directory, as `tls_ca`.
    File(String),
    /// `https://...` (or `http://` to a loopback host): fetched in the
    /// background and refreshed.
    Url(url::Url),
}

impl std::fmt::Display for JwksSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwksSource::File(path) => write!(f, "file:{path}"),
            JwksSource::Url(url) => write!(f, "{url}"),
        }
    }
}

/// Operator-set state of one backend, shared by every member through the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AdminState {
    /// Normal traffic.
    #[default]
    Enabled,
    /// No new clients; sticky clients stay.
    Draining,
    /// No traffic at all.
    Disabled,
}

impl AdminState {
    pub fn as_str(self) -> &'static str {
        match self {
            AdminState::Enabled => "enabled",
            AdminState::Draining => "draining",
            AdminState::Disabled => "disabled",
        }
    }

    pub fn parse(text: &str) -> Option<AdminState> {
        match text.trim() {
            "enabled" => Some(AdminState::Enabled),
            "draining" => Some(AdminState::Draining),
            "disabled" => Some(AdminState::Disabled),
            _ => None,
        }
    }
}
