//! Member-wide settings of the client edge that the request path reads on
//! every request and a reload may replace (PRODUCT.md §9, §10).

use std::sync::Arc;

use super::Gateway;
use crate::http::strict;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EdgeSettings {
    /// `[gateway] public_url` without its trailing slash, when it was
    /// configured: rewritten `Location` headers point there, whatever Host
    /// the client sent.
    pub public_base: Option<String>,
    /// Slowest request body accepted, bytes/s averaged over 10 s; 0 is off.
    pub min_body_rate: u64,
}

impl Gateway {
    pub fn set_edge(&self, settings: EdgeSettings) {
        self.edge.store(Arc::new(settings));
    }

    pub fn min_body_rate(&self) -> u64 {
        self.edge.load().min_body_rate
    }

    /// The scheme and authority a rewritten `Location` starts with: the
    /// configured public URL, else the client's Host when it is a plain
    /// host and port (never a value that could carry a path or a header).
    pub(crate) fn location_base(
        &self,
        host: Option<&strict::HostValue>,
        tls: bool,
    ) -> Option<String> {
        if let Some(base) = &self.edge.load().public_base {
            return Some(base.clone());
        }
        let host = host?.to_str().filter(|h| strict::is_plain_authority(h))?;
        let scheme = if tls { "https" } else { "http" };
        Some(format!("{scheme}://{host}"))
    }
}
