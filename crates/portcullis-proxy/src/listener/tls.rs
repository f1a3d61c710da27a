//! TLS termination settings for a listener: certificate, ALPN, session
//! resumption and the cipher suite order. Figures are user-space
//! instructions under callgrind (`bench/perf/cg-tls.sh`, docs/benchmarks.md
//! "TLS costs (issue 13)").

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;
use rustls::{CipherSuite, ServerConfig};

/// Sessions kept in memory for TLS 1.2 clients that resume by session id
/// rather than by ticket. An entry holds one session's secrets and
/// parameters, so the bound keeps the cache to a few MiB however many clients
/// come and go; rustls's default of 256 is gone within a second at a few
/// hundred new clients a second.
const SESSION_CACHE_ENTRIES: usize = 4096;

/// Tickets sent after each TLS 1.3 handshake. A client resumes with one
/// ticket per new connection and gets a fresh one on each; rustls's default
/// of 2 encrypts and sends a second ticket that the common client (one
/// connection at a time, or none at all: wrk, h2load) never uses, about 25,000
/// instructions per handshake.
const TLS13_TICKETS: usize = 1;

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read {what} {path}: {reason}")]
    Read {
        what: &'static str,
        path: String,
        reason: String,
    },
    #[error("certificate {path} holds no certificate")]
    NoCertificate { path: String },
    #[error("certificate and key do not fit together: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("cannot set up TLS session tickets: {0}")]
    Tickets(rustls::Error),
}

/// A server config for `cert`/`key` PEM files, offering HTTP/2 and HTTP/1.1 by ALPN.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsSetupError> {
    Ok(swappable_server_config(cert, key)?.0)
}

/// [`server_config`], with the handle that replaces its certificate for the
/// handshakes that follow (a reload renewing it); connections already
/// established keep theirs.
pub fn swappable_server_config(
    cert: &Path,
    key: &Path,
) -> Result<(Arc<ServerConfig>, Arc<CertSwap>), TlsSetupError> {
    let certified = certified_key(cert, key)?;
    let swap = Arc::new(CertSwap(ArcSwap::new(certified)));
    Ok((config_resolving(swap.clone())?, swap))
}

/// The certificate a listener presents, replaceable while it serves. Read
/// once per full handshake (resumed ones present no certificate), never per
/// request.
#[derive(Debug)]
pub struct CertSwap(ArcSwap<CertifiedKey>);

impl CertSwap {
    /// Loads `cert`/`key` and presents them from the next handshake on; on
    /// error the current certificate stays.
    pub fn reload(&self, cert: &Path, key: &Path) -> Result<(), TlsSetupError> {
        self.0.store(certified_key(cert, key)?);
        Ok(())
    }
}

impl ResolvesServerCert for CertSwap {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// The chain and key in `cert`/`key`, checked to belong together.
fn certified_key(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsSetupError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| TlsSetupError::Read {
            what: "certificate",
            path: cert.display().to_string(),
            reason: e.to_string(),
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsSetupError::Read {
            what: "certificate",
            path: cert.display().to_string(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsSetupError::NoCertificate {
            path: cert.display().to_string(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsSetupError::Read {
        what: "private key",
        path: key.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok(Arc::new(CertifiedKey::from_der(certs, key, &provider())?))
}

/// The server config for an already loaded certificate chain and key.
#[cfg(test)]
fn config_for(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let certified = Arc::new(CertifiedKey::from_der(certs, key, &provider())?);
    config_resolving(Arc::new(CertSwap(ArcSwap::new(certified))))
}

/// The server config presenting what `certificate` holds at each handshake.
fn config_resolving(certificate: Arc<CertSwap>) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(certificate);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // Our order, not the client's: OpenSSL-based clients list AES-256 first,
    // which costs SHA-384 in every handshake and 14 AES rounds per block
    // instead of 10; AES-128-GCM cut a full handshake by 5% and a small
    // HTTP/1.1 request by about 340 instructions. A client without AES
    // hardware that prefers ChaCha20 gets AES-128 too (ring's software AES is
    // constant-time, only slower).
    config.ignore_client_order = true;
    // Resumption: stateless tickets for TLS 1.3 and ticket-capable TLS 1.2
    // clients, keys in memory only and rotated by rustls every 6 hours
    // (members are independent, so no key is shared or stored), and the
    // session-id cache for the remaining TLS 1.2 clients. A resumed TLS 1.3
    // handshake skips the certificate and its signature (about 9% of a full
    // handshake; rustls always does the key exchange again).
    config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(TlsSetupError::Tickets)?;
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES);
    config.send_tls13_tickets = TLS13_TICKETS;
    Ok(Arc::new(config))
}

/// The backends' provider (ring) with the AEAD suites reordered so AES-128-GCM
/// comes first in each TLS version; ChaCha20 and the rest keep their order.
fn provider() -> CryptoProvider {
    let mut provider = (*crate::client::provider()).clone();
    provider
        .cipher_suites
        .sort_by_key(|suite| match suite.suite() {
            CipherSuite::TLS13_AES_128_GCM_SHA256
            | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            | CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 0,
            _ => 1,
        });
    provider
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::{ClientSessionMemoryCache, ClientSessionStore};
    use rustls::pki_types::{PrivatePkcs8KeyDer, ServerName};
    use rustls::{ClientConfig, ClientConnection, HandshakeKind, NamedGroup, ServerConnection};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A self-signed certificate for localhost: the server's config, and a
    /// root store that trusts it.
    fn server_and_roots() -> (Arc<ServerConfig>, rustls::RootCertStore) {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let cert = certified.cert.der().clone();
        let key = PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.clone()).unwrap();
        (config_for(vec![cert], key.into()).unwrap(), roots)
    }

    /// A ring client of `versions` that remembers sessions in `store`.
    fn client(
        roots: rustls::RootCertStore,
        versions: &[&'static rustls::SupportedProtocolVersion],
        store: Arc<dyn ClientSessionStore>,
    ) -> Arc<ClientConfig> {
        let mut config = ClientConfig::builder_with_provider(crate::client::provider())
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.resumption = rustls::client::Resumption::store(store);
        Arc::new(config)
    }

    /// One connection, handshake and every post-handshake message (the
    /// tickets) delivered, through memory instead of sockets.
    fn connect(client: &Arc<ClientConfig>, server: &Arc<ServerConfig>) -> ClientConnection {
        let name = ServerName::try_from("localhost").unwrap();
        let mut client = ClientConnection::new(client.clone(), name).unwrap();
        let mut server = ServerConnection::new(server.clone()).unwrap();
        loop {
            let mut to_server = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut to_server).unwrap();
            }
            let mut rest = &to_server[..];
            while !rest.is_empty() {
                server.read_tls(&mut rest).unwrap();
                server.process_new_packets().unwrap();
            }
            let mut to_client = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut to_client).unwrap();
            }
            let mut rest = &to_client[..];
            while !rest.is_empty() {
                client.read_tls(&mut rest).unwrap();
                client.process_new_packets().unwrap();
            }
            if to_server.is_empty() && to_client.is_empty() {
                break;
            }
        }
        assert!(!client.is_handshaking());
        client
    }

    #[test]
    fn a_second_tls13_connection_with_the_same_client_config_resumes() {
        let (server, roots) = server_and_roots();
        let store = Arc::new(ClientSessionMemoryCache::new(8));
        let client = client(roots, &[&rustls::version::TLS13], store);
        let first = connect(&client, &server);
        assert_eq!(first.handshake_kind(), Some(HandshakeKind::Full));
        for _ in 0..3 {
            let again = connect(&client, &server);
            assert_eq!(again.handshake_kind(), Some(HandshakeKind::Resumed));
        }
    }

    #[test]
    fn a_second_tls12_connection_resumes_too() {
        let (server, roots) = server_and_roots();
        let store = Arc::new(ClientSessionMemoryCache::new(8));
        let client = client(roots, &[&rustls::version::TLS12], store);
        assert_eq!(
            connect(&client, &server).handshake_kind(),
            Some(HandshakeKind::Full)
        );
        assert_eq!(
            connect(&client, &server).handshake_kind(),
            Some(HandshakeKind::Resumed)
        );
    }

    #[test]
    fn a_client_that_resumes_by_session_id_resumes_from_the_cache() {
        let (server, roots) = server_and_roots();
        let store = Arc::new(ClientSessionMemoryCache::new(8));
        let mut client = (*client(roots, &[&rustls::version::TLS12], store.clone())).clone();
        // No session ticket extension: the server must remember the session.
        client.resumption = rustls::client::Resumption::store(store)
            .tls12_resumption(rustls::client::Tls12Resumption::SessionIdOnly);
        let client = Arc::new(client);
        connect(&client, &server);
        assert_eq!(
            connect(&client, &server).handshake_kind(),
            Some(HandshakeKind::Resumed)
        );
    }

    #[test]
    fn aes_128_gcm_wins_over_a_clients_aes_256_preference() {
        let (server, roots) = server_and_roots();
        let store = Arc::new(ClientSessionMemoryCache::new(8));
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            let client = client(roots.clone(), &[version], store.clone());
            // ring's own order, which the client sends, puts AES-256 first.
            assert!(format!("{:?}", client.crypto_provider().cipher_suites[0]).contains("256"));
            let connection = connect(&client, &server);
            let suite = format!("{:?}", connection.negotiated_cipher_suite().unwrap());
            assert!(suite.contains("AES_128_GCM"), "{suite}");
        }
    }

    #[test]
    fn one_ticket_is_sent_per_tls13_handshake() {
        let (server, roots) = server_and_roots();
        let store = Arc::new(CountingStore::default());
        let client = client(roots, &[&rustls::version::TLS13], store.clone());
        connect(&client, &server);
        assert_eq!(store.tickets.load(Ordering::SeqCst), TLS13_TICKETS);
        connect(&client, &server);
        assert_eq!(store.tickets.load(Ordering::SeqCst), 2 * TLS13_TICKETS);
    }

    /// A client session store that counts the TLS 1.3 tickets it is given.
    #[derive(Debug)]
    struct CountingStore {
        inner: ClientSessionMemoryCache,
        tickets: AtomicUsize,
    }

    impl Default for CountingStore {
        fn default() -> Self {
            Self {
                inner: ClientSessionMemoryCache::new(8),
                tickets: AtomicUsize::new(0),
            }
        }
    }

    impl ClientSessionStore for CountingStore {
        fn set_kx_hint(&self, name: ServerName<'static>, group: NamedGroup) {
            self.inner.set_kx_hint(name, group)
        }
        fn kx_hint(&self, name: &ServerName<'_>) -> Option<NamedGroup> {
            self.inner.kx_hint(name)
        }
        fn set_tls12_session(
            &self,
            name: ServerName<'static>,
            value: rustls::client::Tls12ClientSessionValue,
        ) {
            self.inner.set_tls12_session(name, value)
        }
        fn tls12_session(
            &self,
            name: &ServerName<'_>,
        ) -> Option<rustls::client::Tls12ClientSessionValue> {
            self.inner.tls12_session(name)
        }
        fn remove_tls12_session(&self, name: &ServerName<'static>) {
            self.inner.remove_tls12_session(name)
        }
        fn insert_tls13_ticket(
            &self,
            name: ServerName<'static>,
            value: rustls::client::Tls13ClientSessionValue,
        ) {
            self.tickets.fetch_add(1, Ordering::SeqCst);
            self.inner.insert_tls13_ticket(name, value)
        }
        fn take_tls13_ticket(
            &self,
            name: &ServerName<'static>,
        ) -> Option<rustls::client::Tls13ClientSessionValue> {
            self.inner.take_tls13_ticket(name)
        }
    }
}
