//! Member-wide settings of the client edge that the request path reads on
//! every request and a reload may replace (PRODUCT.md §9, §10).

use std::net::IpAddr;

use http::HeaderValue;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::Gateway;
use crate::http::{client_address, headers, strict, RequestFields};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EdgeSettings {
    /// `[gateway] public_url` without its trailing slash, when it was
    /// configured: rewritten `Location` headers point there, whatever Host
    /// the client sent.
    pub public_base: Option<String>,
    /// Slowest request body accepted, bytes/s averaged over 10 s; 0 is off.
    pub min_body_rate: u64,
    /// `[gateway] trusted_proxies` (`http::client_address`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Gateway {
    pub fn set_edge(&self, settings: EdgeSettings) {
        let trusts = !settings.trusted_proxies.is_empty();
        self.edge.store(Arc::new(settings));
        self.trusts_proxies.store(trusts, Ordering::Release);
    }

    /// The client's address for the policies and X-Real-IP: the peer, or
    /// behind trusted proxies what their X-Forwarded-For entries say
    /// (`http::client_address`). Without trusted proxies, which is most
    /// gateways, this is one atomic load, inlined (callgrind: the call alone
    /// cost about 20 instructions a request).
    #[inline]
    pub fn client_ip(&self, peer: IpAddr, fields: &RequestFields) -> IpAddr {
        if self.trusts_proxies.load(Ordering::Acquire) {
            self.client_ip_behind_proxies(peer, fields)
        } else {
            peer
        }
    }

    #[cold]
    fn client_ip_behind_proxies(&self, peer: IpAddr, fields: &RequestFields) -> IpAddr {
        let joined = headers::client_forwarded_for(fields.values(&headers::X_FORWARDED_FOR));
        self.resolve_client(peer, joined.as_ref())
    }

    /// X-Real-IP when the client is not the peer, from the client's
    /// X-Forwarded-For fields already joined
    /// (`headers::remove_client_forwarding`); None without trusted proxies.
    #[inline]
    pub(crate) fn real_ip_header(
        &self,
        peer: IpAddr,
        forwarded_for: Option<&HeaderValue>,
    ) -> Option<HeaderValue> {
        if self.trusts_proxies.load(Ordering::Acquire) {
            self.real_ip_behind_proxies(peer, forwarded_for)
        } else {
            None
        }
    }

    #[cold]
    fn real_ip_behind_proxies(
        &self,
        peer: IpAddr,
        forwarded_for: Option<&HeaderValue>,
    ) -> Option<HeaderValue> {
        let client = self.resolve_client(peer, forwarded_for);
        if client == peer {
            return None;
        }
        HeaderValue::from_str(&client.to_string()).ok()
    }

    fn resolve_client(&self, peer: IpAddr, forwarded_for: Option<&HeaderValue>) -> IpAddr {
        let edge = self.edge.load();
        client_address::resolve(
            peer,
            forwarded_for.map(HeaderValue::as_bytes),
            &edge.trusted_proxies,
        )
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
