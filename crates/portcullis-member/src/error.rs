//! Why a member could not start. Each message names the config key or the
//! store alias involved, as the operator would look for it.

use std::net::SocketAddr;

use portcullis_cluster::StoreError;
use portcullis_proxy::listener::TlsSetupError;
use portcullis_secrets::SecretError;

#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    #[error("secrets.master")]
    Master(#[source] SecretError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("cluster.store: cannot read {store}")]
    StoreUnreadable {
        store: String,
        #[source]
        source: StoreError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Cache(#[from] crate::cache::CacheError),
    #[error("cannot create or read alias {alias}")]
    Alias {
        alias: &'static str,
        #[source]
        source: StoreError,
    },
    #[error("alias {0} does not hold 32 bytes")]
    KeyLength(&'static str),
    #[error("alias {0} is not text")]
    NotText(&'static str),
    #[error("gateway.tls")]
    Tls(#[source] TlsSetupError),
    #[error("admin.tls")]
    AdminTls(#[source] TlsSetupError),
    #[error("balancer.tls")]
    BalancerTls(#[source] TlsSetupError),
    #[error("balancer.members_ca")]
    BalancerMembersCa(#[source] portcullis_config::TlsCaError),
    #[error("balancer.members_ca")]
    BalancerMembersTls(#[source] portcullis_proxy::balancer::MembersTlsError),
    #[error("{key}: cannot listen on {listen}")]
    Bind {
        key: &'static str,
        listen: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}
