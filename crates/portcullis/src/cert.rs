//! `portcullis cert create`: a private CA and a server certificate signed by it,
//! in PEM, ready for `[gateway] tls` (it replaces the openssl steps operators
//! follow today).

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
}

const VALIDITY_DAYS: i64 = 825;

pub fn create_certs(hosts: &[String], out_dir: &Path) -> anyhow::Result<CreatedCerts> {
    if hosts.is_empty() {
        bail!("give at least one --host");
    }
    let created = CreatedCerts {
        ca_cert: out_dir.join("ca.crt"),
        ca_key: out_dir.join("ca.key"),
        server_cert: out_dir.join("gateway.crt"),
        server_key: out_dir.join("gateway.key"),
    };
    for file in [
        &created.ca_cert,
        &created.ca_key,
        &created.server_cert,
        &created.server_key,
    ] {
        if file.exists() {
            bail!(
                "{} already exists; remove it or choose another --out",
                file.display()
            );
        }
    }
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;

    let now = time_now();
    let ca_key = KeyPair::generate().context("cannot generate the CA key")?;
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = name("Portcullis local CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = now;
    ca_params.not_after = now + time::Duration::days(VALIDITY_DAYS);
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .context("cannot sign the CA certificate")?;

    let server_key = KeyPair::generate().context("cannot generate the server key")?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name(&hosts[0]);
    params.subject_alt_names = hosts
        .iter()
        .map(|host| match host.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => host
                .clone()
                .try_into()
                .map(SanType::DnsName)
                .with_context(|| format!("--host {host:?} is not a valid DNS name or IP address")),
        })
        .collect::<anyhow::Result<_>>()?;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = now;
    params.not_after = now + time::Duration::days(VALIDITY_DAYS);
    let issuer = Issuer::new(ca_params, &ca_key);
    let server_cert = params
        .signed_by(&server_key, &issuer)
        .context("cannot sign the server certificate")?;

    write_file(&created.ca_cert, ca_cert.pem().as_bytes(), 0o644)?;
    write_file(&created.ca_key, ca_key.serialize_pem().as_bytes(), 0o600)?;
    let chain = format!("{}{}", server_cert.pem(), ca_cert.pem());
    write_file(&created.server_cert, chain.as_bytes(), 0o644)?;
    write_file(
        &created.server_key,
        server_key.serialize_pem().as_bytes(),
        0o600,
    )?;
    Ok(created)
}

fn name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name.push(DnType::OrganizationName, "Portcullis");
    name
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
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
        create_certs(&["localhost".into()], dir.path()).unwrap();
        let err = create_certs(&["localhost".into()], dir.path()).unwrap_err();
        assert!(err.to_string().contains("ca.crt"), "{err}");
    }
}
