//! Binding a member's listeners (gateway, admin, balancer), or taking them
//! over from a predecessor in a hot restart, and reading their TLS files
//! first: a member that cannot bind one leaves nothing running.

use std::net::SocketAddr;
use std::sync::Arc;

use portcullis_config::NodeConfig;
use portcullis_proxy::balancer::BalancerOptions;
use portcullis_proxy::listener::CertSwap;
use portcullis_proxy::ListenerOptions;
use tokio::net::TcpListener;

use crate::inherit::{keep_for_handover, Inherited, ListeningSocket};
use crate::MemberError;

/// Every listener of a member, bound before anything is spawned: a member
/// that cannot bind one leaves nothing running and no record behind.
pub(crate) struct Listeners {
    pub(crate) gateway: TcpListener,
    pub(crate) gateway_addr: SocketAddr,
    pub(crate) options: ListenerOptions,
    pub(crate) admin: Option<(TcpListener, SocketAddr)>,
    /// `[admin] tls`, read before anything is bound.
    pub(crate) admin_tls: Option<Arc<rustls::ServerConfig>>,
    pub(crate) balancer: Option<(TcpListener, SocketAddr, BalancerOptions)>,
    pub(crate) handover: Vec<ListeningSocket>,
    pub(crate) gateway_cert: Option<Arc<CertSwap>>,
    pub(crate) admin_cert: Option<Arc<CertSwap>>,
}

impl Listeners {
    /// Binds the gateway, admin and balancer listeners (and reads the
    /// gateway's TLS files), naming the config key of the one that fails.
    /// A socket in `inherited` for the same key and address is used instead
    /// of binding.
    pub(crate) async fn bind(
        config: &NodeConfig,
        inherited: &mut Inherited,
    ) -> Result<Listeners, MemberError> {
        let (tls, gateway_cert) = match &config.gateway.tls {
            Some(files) => {
                let (tls, cert) =
                    portcullis_proxy::listener::swappable_server_config(&files.cert, &files.key)
                        .map_err(MemberError::Tls)?;
                (Some(tls), Some(cert))
            }
            None => (None, None),
        };
        let (admin_tls, admin_cert) = match config.admin.as_ref().and_then(|a| a.tls.as_ref()) {
            Some(files) => {
                let (tls, cert) =
                    portcullis_proxy::listener::swappable_server_config(&files.cert, &files.key)
                        .map_err(MemberError::AdminTls)?;
                (Some(tls), Some(cert))
            }
            None => (None, None),
        };
        let mut handover = Vec::new();
        let mut bind = |key, listen| bind(key, listen, inherited, &mut handover);
        let (gateway, gateway_addr) = bind("gateway.listen", config.gateway.listen)?;
        let admin = match &config.admin {
            Some(admin) => Some(bind("admin.listen", admin.listen)?),
            None => None,
        };
        let balancer = match &config.balancer {
            Some(balancer) => {
                let options = crate::balancer::balancer_options(config, balancer)?;
                let (listener, addr) = bind("balancer.listen", balancer.listen)?;
                Some((listener, addr, options))
            }
            None => None,
        };
        let options = ListenerOptions {
            tls,
            max_connections: config.gateway.max_connections,
            header_read_timeout: config.gateway.header_read_timeout,
            shutdown_grace: config.gateway.shutdown_grace,
            engine: config.gateway.engine,
        };
        Ok(Listeners {
            gateway,
            gateway_addr,
            options,
            admin,
            admin_tls,
            balancer,
            handover,
            gateway_cert,
            admin_cert,
        })
    }
}

/// The socket `inherited` holds for `key` and `listen`, else a new one bound
/// to `listen` (naming the config `key` on failure); a duplicate of it goes
/// to `handover`.
fn bind(
    key: &'static str,
    listen: SocketAddr,
    inherited: &mut Inherited,
    handover: &mut Vec<ListeningSocket>,
) -> Result<(TcpListener, SocketAddr), MemberError> {
    let failed = |source| MemberError::Bind {
        key,
        listen,
        source,
    };
    let listener = match inherited.take(key, listen) {
        Some(listener) => listener,
        None => bind_std(listen).map_err(failed)?,
    };
    let listener = TcpListener::from_std(listener).map_err(failed)?;
    let addr = listener.local_addr().map_err(failed)?;
    handover.extend(keep_for_handover(key, listen, &listener));
    Ok((listener, addr))
}

/// A non-blocking listener on `listen`, set up as tokio's `bind` sets it up
/// (address reuse, so a restart is not refused by connections in TIME_WAIT).
fn bind_std(listen: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(listen),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&listen.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}
