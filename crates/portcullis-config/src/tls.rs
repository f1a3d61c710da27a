//! Reading a service's `tls_ca`. Validation (`portcullis check`, the admin
//! API's PUT, a member about to apply) and the data plane building its TLS
//! client call the same function, so a CA that one accepts the other cannot
//! refuse.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

#[derive(Debug, thiserror::Error)]
pub enum TlsCaError {
    #[error("cannot read the CA file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{what} holds no usable PEM certificate")]
    NoCertificate { what: String },
}

/// The PEM text of `tls_ca`: inline PEM as written, otherwise the file it
/// names, relative to `base_dir` (the member's config directory).
pub fn read_tls_ca(tls_ca: &str, base_dir: &Path) -> Result<Vec<u8>, TlsCaError> {
    if is_inline_pem(tls_ca) {
        return Ok(tls_ca.as_bytes().to_vec());
    }
    let path = base_dir.join(tls_ca);
    std::fs::read(&path).map_err(|source| TlsCaError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// The trust anchors in `pem`; certificates rustls cannot use are skipped, as
/// in a system bundle, but at least one must be usable.
pub fn tls_ca_roots(tls_ca: &str, pem: &[u8]) -> Result<RootCertStore, TlsCaError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect::<Vec<CertificateDer<'static>>>();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        let what = if is_inline_pem(tls_ca) {
            "the inline PEM".to_string()
        } else {
            tls_ca.to_string()
        };
        return Err(TlsCaError::NoCertificate { what });
    }
    Ok(roots)
}

/// [`read_tls_ca`] then [`tls_ca_roots`].
pub fn load_tls_ca(tls_ca: &str, base_dir: &Path) -> Result<RootCertStore, TlsCaError> {
    tls_ca_roots(tls_ca, &read_tls_ca(tls_ca, base_dir)?)
}

fn is_inline_pem(tls_ca: &str) -> bool {
    tls_ca.trim_start().starts_with("-----BEGIN")
}
