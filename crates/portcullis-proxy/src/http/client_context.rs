//! What the gateway knows about the client side of a connection, shared by
//! every request on it: the peer, the local port, TLS, the framing gate's
//! verdict and the slot a tunnel is handed over in.

use std::sync::{Arc, Mutex};

use http::header::HeaderValue;

/// What the gateway knows about the client side of a request; the header
/// values are built once per connection, not per request.
#[derive(Debug)]
pub struct ClientContext {
    pub peer_ip: std::net::IpAddr,
    pub local_port: u16,
    pub tls: bool,
    peer_ip_header: HeaderValue,
    /// Shared by the listener's connections: one header value per port.
    local_port_header: Arc<HeaderValue>,
    /// Set on connections whose loop runs tunnels itself (see
    /// `listener::park`): the backend side of an accepted upgrade waits here.
    /// Boxed: most connections have none, and this context lives as long as
    /// its connection, idle or not.
    tunnel_slot: Option<Box<Mutex<Option<PendingTunnel>>>>,
    /// The strict HTTP/1 framing gate of this connection, when it has one.
    gate: std::sync::OnceLock<Arc<crate::h1gate::GateStatus>>,
}

/// The backend side of an upgrade, and the tunnel's idle timeout.
pub type PendingTunnel = (hyper::upgrade::OnUpgrade, std::time::Duration);

impl ClientContext {
    /// The peer address as a header value (X-Real-IP, X-Forwarded-For).
    pub(crate) fn peer_ip_header(&self) -> &HeaderValue {
        &self.peer_ip_header
    }

    /// The local port as a header value (X-Forwarded-Port).
    pub(crate) fn local_port_header(&self) -> &HeaderValue {
        &self.local_port_header
    }

    pub fn new(peer_ip: std::net::IpAddr, local_port: u16, tls: bool) -> ClientContext {
        let local_port_header = Arc::new(HeaderValue::from(local_port));
        Self::with_port_header(peer_ip, local_port, local_port_header, tls)
    }

    /// As [`ClientContext::new`], with the local port's header value given:
    /// a listener builds it once and every connection shares it.
    pub fn with_port_header(
        peer_ip: std::net::IpAddr,
        local_port: u16,
        local_port_header: Arc<HeaderValue>,
        tls: bool,
    ) -> ClientContext {
        ClientContext {
            peer_ip,
            local_port,
            tls,
            peer_ip_header: HeaderValue::from_str(&peer_ip.to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("unknown")),
            local_port_header,
            tunnel_slot: None,
            gate: std::sync::OnceLock::new(),
        }
    }

    /// Attaches the connection's framing gate (once).
    pub fn attach_gate(&self, status: Arc<crate::h1gate::GateStatus>) {
        let _ = self.gate.set(status);
    }

    /// The framing rule this connection's client broke, if any; marks the
    /// refusal as answered by the request path.
    pub fn take_gate_violation(&self) -> Option<&'static str> {
        let status = self.gate.get()?;
        let violation = status.violation()?;
        status.mark_answered();
        Some(violation.reason())
    }

    /// For connections that take their socket back from hyper: upgrades are
    /// handed to the connection loop instead of hyper's upgrade machinery.
    pub fn with_tunnel_slot(mut self) -> Self {
        self.tunnel_slot = Some(Box::new(Mutex::new(None)));
        self
    }

    /// Leaves the backend side of an upgrade for the connection loop; gives it
    /// back when this connection uses hyper's own upgrades.
    pub fn hand_over_tunnel(&self, tunnel: PendingTunnel) -> Option<PendingTunnel> {
        match &self.tunnel_slot {
            Some(slot) => {
                *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(tunnel);
                None
            }
            None => Some(tunnel),
        }
    }

    pub fn take_tunnel(&self) -> Option<PendingTunnel> {
        self.tunnel_slot
            .as_ref()
            .and_then(|slot| slot.lock().unwrap_or_else(|p| p.into_inner()).take())
    }
}
