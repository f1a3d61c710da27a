//! `portcullis cert create`: a private CA and a server certificate signed by it,
//! in PEM, ready for `[gateway] tls` (it replaces the openssl steps operators
//! follow today), and client certificates for links that ask for one (etcd's
//! `--client-cert-auth`).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

#[derive(Debug, Clone)]
pub struct CreatedCerts {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    /// The server certificate followed by the CA certificate.
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// `client-NAME.crt` and `client-NAME.key` for each `--client NAME`.
    pub clients: Vec<(PathBuf, PathBuf)>,
}

/// 825 days is the longest validity Apple platforms accept for a TLS server
/// certificate; the CA gets the same so neither outlives the other.
const VALIDITY_DAYS: i64 = 825;
/// Certificates start slightly in the past so a member whose clock runs a
/// little behind the machine that ran `cert create` still accepts them.
const BACKDATE: time::Duration = time::Duration::hours(1);

/// Writes `ca.crt`, `ca.key`, `gateway.crt` (server certificate then CA, a full
/// chain) and `gateway.key` into `out_dir`, creating it if needed. Refuses to
/// overwrite any existing file.
pub fn create_certs(hosts: &[String], out_dir: &Path) -> anyhow::Result<CreatedCerts> {
    create_certs_with_clients(hosts, &[], out_dir)
}

/// [`create_certs`], plus a client certificate (TLS client authentication,
/// e.g. a member logging in to etcd) for each name in `clients`, signed by
/// the same CA: `client-NAME.crt` (certificate then CA) and `client-NAME.key`.
pub fn create_certs_with_clients(
    hosts: &[String],
    clients: &[String],
    out_dir: &Path,
) -> anyhow::Result<CreatedCerts> {
    if hosts.is_empty() {
        bail!("give at least one --host");
    }
    for client in clients {
        if client.is_empty()
            || !client
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            bail!("--client {client:?}: use letters, digits, '.', '_' or '-'");
        }
    }
    let created = CreatedCerts {
        ca_cert: out_dir.join("ca.crt"),
        ca_key: out_dir.join("ca.key"),
        server_cert: out_dir.join("gateway.crt"),
        server_key: out_dir.join("gateway.key"),
        clients: clients
            .iter()
            .map(|c| {
                (
                    out_dir.join(format!("client-{c}.crt")),
                    out_dir.join(format!("client-{c}.key")),
                )
            })
            .collect(),
    };
    let mut paths = vec![
        &created.ca_cert,
        &created.ca_key,
        &created.server_cert,
        &created.server_key,
    ];
    paths.extend(created.clients.iter().flat_map(|(c, k)| [c, k]));
    if let Some(file) = paths.iter().find(|f| f.exists()) {
        bail!(
            "{} already exists; remove it or choose another --out",
            file.display()
        );
    }
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;

    let sans = hosts
        .iter()
        .map(|host| san(host))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let not_before = time::OffsetDateTime::now_utc() - BACKDATE;
    let not_after = not_before + time::Duration::days(VALIDITY_DAYS);
    let ca_key = KeyPair::generate().context("cannot generate the CA key")?;
    let ca_params = ca_params(not_before, not_after);
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .context("cannot sign the CA certificate")?;
    let issuer = Issuer::new(ca_params, &ca_key);
    let validity = (not_before, not_after);
    let (server_cert, server_key) = leaf(&issuer, &hosts[0], sans, Leaf::Server, validity)?;

    let mut files = vec![
        (created.ca_cert.clone(), ca_cert.pem(), 0o644),
        (created.ca_key.clone(), ca_key.serialize_pem(), 0o600),
        (
            created.server_cert.clone(),
            format!("{server_cert}{}", ca_cert.pem()),
            0o644,
        ),
        (created.server_key.clone(), server_key, 0o600),
    ];
    for (name, (cert_path, key_path)) in clients.iter().zip(&created.clients) {
        let (cert, key) = leaf(&issuer, name, Vec::new(), Leaf::Client, validity)?;
        files.push((cert_path.clone(), format!("{cert}{}", ca_cert.pem()), 0o644));
        files.push((key_path.clone(), key, 0o600));
    }
    write_all_or_none(&files)?;
    Ok(created)
}

/// What a leaf certificate is for.
#[derive(Clone, Copy)]
enum Leaf {
    Server,
    Client,
}

/// A fresh key and a certificate for it signed by `issuer`, both PEM.
fn leaf(
    issuer: &Issuer<'_, &KeyPair>,
    common_name: &str,
    sans: Vec<SanType>,
    purpose: Leaf,
    (not_before, not_after): (time::OffsetDateTime, time::OffsetDateTime),
) -> anyhow::Result<(String, String)> {
    let key = KeyPair::generate().context("cannot generate a key")?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name(common_name);
    params.subject_alt_names = sans;
    // The keys are ECDSA, which only signs: KeyEncipherment would be wrong here.
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![match purpose {
        Leaf::Server => ExtendedKeyUsagePurpose::ServerAuth,
        Leaf::Client => ExtendedKeyUsagePurpose::ClientAuth,
    }];
    // Lets OpenSSL-based clients (curl, Python) pick the issuer by key id.
    params.use_authority_key_identifier_extension = true;
    params.not_before = not_before;
    params.not_after = not_after;
    let cert = params
        .signed_by(&key, issuer)
        .with_context(|| format!("cannot sign the certificate for {common_name}"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Writes every file, or, if one fails, removes those already written: a
/// retry would otherwise stop at "already exists" on files from the failed
/// attempt.
fn write_all_or_none(files: &[(PathBuf, String, u32)]) -> anyhow::Result<()> {
    for (done, (path, pem, mode)) in files.iter().enumerate() {
        if let Err(e) = write_file(path, pem.as_bytes(), *mode) {
            for (path, _, _) in &files[..done] {
                let _ = std::fs::remove_file(path);
            }
            return Err(e);
        }
    }
    Ok(())
}

/// The private CA's certificate parameters.
fn ca_params(
    not_before: time::OffsetDateTime,
    not_after: time::OffsetDateTime,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = name("Portcullis local CA");
    // Path length 0: this CA signs gateway certificates only, never another CA,
    // so a leaked gateway key can never be used to mint certificates.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = not_before;
    params.not_after = not_after;
    params
}

/// A SAN for `host`: an IP address when it parses as one, else a DNS name
/// (a leading `*.` wildcard allowed), so typos fail here and not at handshake.
fn san(host: &str) -> anyhow::Result<SanType> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let name = host.strip_prefix("*.").unwrap_or(host);
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !valid {
        bail!("--host {host:?} is not a valid DNS name or IP address");
    }
    Ok(SanType::DnsName(host.to_string().try_into()?))
}

fn name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name.push(DnType::OrganizationName, "Portcullis");
    name
}

/// Creates the file with its final mode from the start, so a key is never
/// readable by others even for a moment, and refuses to overwrite.
fn write_file(path: &Path, data: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(data)
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn handshake(certs: &CreatedCerts, server_name: &str) -> Result<(), String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&certs.server_cert)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(chain.len(), 2, "server cert followed by the CA");
        let key = PrivateKeyDer::from_pem_file(&certs.server_key).unwrap();
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(&certs.ca_cert).unwrap())
            .unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let server_task = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            if let Ok(mut tls) = acceptor.accept(socket).await {
                let _ = tls.write_all(b"hi").await;
                let _ = tls.shutdown().await;
            }
        });
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from(server_name.to_string()).unwrap();
        let result = match connector.connect(name, socket).await {
            Ok(mut tls) => {
                let mut buf = Vec::new();
                tls.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
                assert_eq!(buf, b"hi");
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        };
        let _ = server_task.await;
        result
    }

    #[tokio::test]
    async fn certificates_complete_a_real_handshake_for_their_hosts_only() {
        let dir = tempfile::tempdir().unwrap();
        let certs = create_certs(&["localhost".into(), "127.0.0.1".into()], dir.path()).unwrap();
        handshake(&certs, "localhost")
            .await
            .expect("localhost is in the SANs");
        handshake(&certs, "127.0.0.1")
            .await
            .expect("the IP is in the SANs");
        let err = handshake(&certs, "other.example").await.unwrap_err();
        assert!(
            err.contains("NotValidForName") || err.contains("not valid"),
            "{err}"
        );
    }

    #[test]
    fn refuses_to_overwrite_and_to_run_without_hosts() {
        let dir = tempfile::tempdir().unwrap();
        assert!(create_certs(&[], dir.path()).is_err());
        for bad in ["", "bad host", "-x.example", "a..b"] {
            let err = create_certs(&[bad.to_string()], dir.path()).unwrap_err();
            assert!(err.to_string().contains("not a valid"), "{bad:?}: {err}");
        }
        let out = dir.path().join("nested/certs");
        let certs = create_certs(&["localhost".into(), "*.example.com".into()], &out).unwrap();
        let err = create_certs(&["localhost".into()], &out).unwrap_err();
        assert!(err.to_string().contains("ca.crt"), "{err}");
        assert!(err.to_string().contains("already exists"), "{err}");
        let chain = std::fs::read_to_string(&certs.server_cert).unwrap();
        let ca = std::fs::read_to_string(&certs.ca_cert).unwrap();
        assert!(chain.ends_with(&ca), "the chain ends with the CA");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&certs.ca_key), 0o600);
            assert_eq!(mode(&certs.server_key), 0o600);
        }
    }

    #[test]
    fn client_certificates_are_signed_by_the_same_ca_for_client_auth() {
        let dir = tempfile::tempdir().unwrap();
        let certs =
            create_certs_with_clients(&["127.0.0.1".into()], &["portcullis".into()], dir.path())
                .unwrap();
        let (cert, key) = &certs.clients[0];
        assert!(cert.ends_with("client-portcullis.crt"), "{cert:?}");
        assert!(PrivateKeyDer::from_pem_file(key).is_ok());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(&certs.ca_cert).unwrap())
            .unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let now = rustls::pki_types::UnixTime::now();
        verifier
            .verify_client_cert(&chain[0], &chain[1..], now)
            .expect("the CA vouches for the client");
        let server_chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(&certs.server_cert)
                .unwrap()
                .map(Result::unwrap)
                .collect();
        assert!(
            verifier
                .verify_client_cert(&server_chain[0], &server_chain[1..], now)
                .is_err(),
            "a server certificate is not for client auth"
        );
        let err =
            create_certs_with_clients(&["h".into()], &["a b".into()], dir.path()).unwrap_err();
        assert!(err.to_string().contains("--client"), "{err}");
    }
}
