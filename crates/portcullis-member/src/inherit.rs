//! Listening sockets handed from one member process to the next (hot
//! restart, `SIGUSR2`): the old process passes its gateway, admin and
//! balancer sockets, each named by its config key and the configured `listen`
//! address, and the new one serves them instead of binding. Connections
//! waiting in a socket's accept queue belong to the socket, not to a
//! process, so none is refused or lost while the processes change over.

use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// One listening socket of a member, as handed over: which listener it is
/// (`gateway.listen`, `admin.listen`, `balancer.listen`), the configured
/// address it was bound for, and the socket.
#[derive(Debug)]
pub struct ListeningSocket {
    pub key: String,
    pub listen: SocketAddr,
    pub socket: OwnedFd,
}

/// The sockets a new process received; each is used at most once, by the
/// listener with the same key and the same configured address.
#[derive(Debug, Default)]
pub struct Inherited {
    sockets: Vec<ListeningSocket>,
}

impl Inherited {
    /// Nothing inherited: every listener is bound afresh.
    pub fn none() -> Inherited {
        Inherited::default()
    }

    pub fn new(sockets: Vec<ListeningSocket>) -> Inherited {
        Inherited { sockets }
    }

    /// The inherited socket for `key`, if there is one that fits `listen`:
    /// the same configured address, and really a TCP socket listening there.
    /// Otherwise the caller binds afresh; why is logged. A socket not taken
    /// is closed when this is dropped.
    pub(crate) fn take(&mut self, key: &str, listen: SocketAddr) -> Option<std::net::TcpListener> {
        let at = self.sockets.iter().position(|s| s.key == key)?;
        let inherited = self.sockets.swap_remove(at);
        if inherited.listen != listen {
            tracing::warn!(
                key,
                was = %inherited.listen,
                now = %listen,
                "the listen address changed; binding afresh instead of inheriting the socket"
            );
            return None;
        }
        match usable_listener(inherited.socket, listen) {
            Ok(listener) => {
                tracing::info!(key, %listen, "serving an inherited listening socket");
                Some(listener)
            }
            Err(reason) => {
                tracing::warn!(key, %listen, reason, "the inherited socket is unusable; binding afresh");
                None
            }
        }
    }
}

/// `socket` as a non-blocking listener, if it is a TCP socket listening on
/// `listen` (any port when `listen` asks for port 0).
fn usable_listener(
    socket: OwnedFd,
    listen: SocketAddr,
) -> Result<std::net::TcpListener, &'static str> {
    let socket = socket2::Socket::from(socket);
    if !matches!(socket.r#type(), Ok(socket2::Type::STREAM)) {
        return Err("not a stream socket");
    }
    if !socket.is_listener().unwrap_or(false) {
        return Err("not listening");
    }
    let local = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .ok_or("not an internet socket")?;
    let fits = local.ip() == listen.ip() && (listen.port() == 0 || local.port() == listen.port());
    if !fits {
        return Err("bound to another address");
    }
    socket
        .set_nonblocking(true)
        .map_err(|_| "cannot be made non-blocking")?;
    Ok(socket.into())
}

/// A duplicate of `listener`'s socket to hand over later, named by its key
/// and configured address.
pub(crate) fn keep_for_handover<L: AsFd>(
    key: &str,
    listen: SocketAddr,
    listener: &L,
) -> Option<ListeningSocket> {
    match listener.as_fd().try_clone_to_owned() {
        Ok(socket) => Some(ListeningSocket {
            key: key.to_string(),
            listen,
            socket,
        }),
        Err(err) => {
            tracing::warn!(key, error = %err, "cannot keep a socket for a hot restart");
            None
        }
    }
}

impl ListeningSocket {
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listening() -> (std::net::TcpListener, SocketAddr) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        (listener, addr)
    }

    #[test]
    fn a_listening_socket_for_the_same_address_is_taken() {
        let (listener, addr) = listening();
        let kept = keep_for_handover("gateway.listen", addr, &listener).unwrap();
        drop(listener);
        let mut inherited = Inherited::new(vec![kept]);
        let taken = inherited.take("gateway.listen", addr).unwrap();
        assert_eq!(taken.local_addr().unwrap(), addr);
        // Still the same socket: a client connects without anyone binding.
        std::net::TcpStream::connect(addr).unwrap();
        assert!(
            inherited.take("gateway.listen", addr).is_none(),
            "used once"
        );
    }

    #[test]
    fn a_changed_address_or_key_binds_afresh() {
        let (listener, addr) = listening();
        let other: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut inherited =
            Inherited::new(vec![
                keep_for_handover("gateway.listen", addr, &listener).unwrap()
            ]);
        assert!(inherited.take("admin.listen", addr).is_none());
        assert!(inherited.take("gateway.listen", other).is_none());
    }

    #[test]
    fn a_socket_that_does_not_listen_is_refused() {
        let (listener, addr) = listening();
        let client = std::net::TcpStream::connect(addr).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let local = accepted.local_addr().unwrap();
        let mut inherited =
            Inherited::new(vec![
                keep_for_handover("gateway.listen", local, &accepted).unwrap()
            ]);
        assert!(inherited.take("gateway.listen", local).is_none());
        drop(client);
    }
}
