//! One backend url of a service and its live state. A leaf of the crate: it
//! knows nothing of routing tables or of how backends are chosen, so both
//! `routing` and `ha` build on it without depending on each other.

mod state;

pub use state::{
    BackendSnapshot, BackendState, CheckRecord, Clients, Health, InFlight, OutcomeCounts,
    TryOutcome, MAX_EJECTION,
};

use http::uri::{Authority, PathAndQuery, Scheme};
use http::HeaderValue;
use sha2::{Digest, Sha256};

use crate::cookie_key::{backend_tag, CookieKey};

/// One backend url of a service.
pub struct Backend {
    pub id: String,
    pub url: url::Url,
    pub scheme: Scheme,
    pub authority: Authority,
    /// Path of the url without its trailing slash ("" for the root).
    pub base_path: String,
    pub backup: bool,
    /// `Host` sent to this backend (its authority, without a default port).
    pub host_header: HeaderValue,
    /// Sticky cookie value for this backend (a MAC of its id).
    pub sticky_tag: String,
    /// Health, ejection, admin state and counters; kept across reloads while
    /// the url stays the same.
    pub state: BackendState,
}

/// Short stable id of (topology, service, url), used in the API, metrics and logs.
pub fn backend_id(topology: &str, service: &str, url: &url::Url) -> String {
    let mut hasher = Sha256::new();
    for part in [topology, service, url.as_str()] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(&hasher.finalize()[..6])
}

impl Backend {
    /// `None` when the url has no host or port a request could be sent to.
    pub fn new(
        topology: &str,
        service: &str,
        url: &url::Url,
        backup: bool,
        key: &CookieKey,
    ) -> Option<Backend> {
        let scheme = Scheme::try_from(url.scheme()).ok()?;
        let host = url.host_str()?;
        let port = url.port_or_known_default()?;
        let authority = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let id = backend_id(topology, service, url);
        let base_path = url.path().trim_end_matches('/');
        // A try's target joins this to the client's (checked) path and
        // query without parsing them again: every piece must be valid alone.
        if !base_path.is_empty() && PathAndQuery::try_from(base_path).is_err() {
            return None;
        }
        let host_header = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        Some(Backend {
            host_header: HeaderValue::from_str(&host_header).ok()?,
            sticky_tag: backend_tag(key, &id),
            state: BackendState::new(),
            id,
            url: url.clone(),
            scheme,
            authority: Authority::try_from(authority).ok()?,
            base_path: base_path.to_string(),
            backup,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_ids_are_stable_and_distinct() {
        let u1 = url::Url::parse("http://h1:80/a").unwrap();
        let u10 = url::Url::parse("http://h10:80/a").unwrap();
        assert_eq!(backend_id("t", "s", &u1), backend_id("t", "s", &u1));
        assert_ne!(backend_id("t", "s", &u1), backend_id("t", "s", &u10));
        assert_ne!(backend_id("t", "s", &u1), backend_id("t", "s2", &u1));
        assert_eq!(backend_id("t", "s", &u1).len(), 12);
    }

    #[test]
    fn a_backend_knows_where_and_how_to_send() {
        let key = CookieKey::new([1; 32]);
        let url = url::Url::parse("https://[::1]:8443/base/").unwrap();
        let backend = Backend::new("t", "s", &url, true, &key).unwrap();
        assert_eq!(backend.authority.as_str(), "[::1]:8443");
        assert_eq!(backend.host_header, "[::1]:8443");
        assert_eq!(backend.base_path, "/base");
        assert_eq!(backend.sticky_tag, backend_tag(&key, &backend.id));
        assert!(backend.backup);
        let default_port = url::Url::parse("http://h/").unwrap();
        let backend = Backend::new("t", "s", &default_port, false, &key).unwrap();
        assert_eq!(backend.authority.as_str(), "h:80");
        assert_eq!(backend.host_header, "h");
        assert_eq!(backend.base_path, "");
    }
}
