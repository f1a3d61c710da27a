//! The rate-limit phase (PRODUCT.md §11, docs/policies.md): after the auth
//! phase, so the principal is known, and before forwarding; for a service
//! with `[service.rate_limit]` only. Takes a token from the bucket of the
//! request's key, or answers 429 with `Retry-After` and the draft
//! `RateLimit-Policy`/`RateLimit` fields.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::atomic::Ordering;

use portcullis_config::{RateLimitKey, RateLimitPolicy};
use portcullis_policy::rate_limit::{Decision, RateLimiter};

use super::RequestContext;
use crate::error::ProxyError;
use crate::http::ClientHead;
use crate::routing::ServiceRuntime;

/// Services without a limit pay the one branch here.
pub(super) fn admit(
    service: &ServiceRuntime,
    client_ip: IpAddr,
    head: &ClientHead,
    ctx: &RequestContext,
) -> Result<(), ProxyError> {
    let (Some(limiter), Some(policy)) = (&service.rate_limit, &service.config.rate_limit) else {
        return Ok(());
    };
    take_token(limiter, policy, service, client_ip, head, ctx)
}

fn take_token(
    limiter: &RateLimiter,
    policy: &RateLimitPolicy,
    service: &ServiceRuntime,
    client_ip: IpAddr,
    head: &ClientHead,
    ctx: &RequestContext,
) -> Result<(), ProxyError> {
    let key = key_value(
        &policy.key,
        client_ip,
        head,
        ctx.principal.as_ref().map(|p| p.name.as_str()),
    );
    match limiter.check(&key) {
        Decision::Admitted => Ok(()),
        Decision::Limited { retry_after_secs } => {
            service.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
            let (quota, window_secs) = limiter.quota();
            Err(ProxyError::RateLimited {
                topology: service.topology.clone(),
                service: service.config.name.clone(),
                retry_after_secs,
                quota,
                window_secs,
            })
        }
    }
}

/// The value the request is counted under. The client address is the
/// connection's peer, or behind `[gateway] trusted_proxies` the address
/// they vouch for (`Gateway::client_ip`): an `X-Forwarded-For` a client
/// wrote itself proves nothing. Requests without the keyed header share
/// the bucket of the empty value.
fn key_value<'a>(
    key: &RateLimitKey,
    client_ip: IpAddr,
    head: &'a ClientHead,
    principal: Option<&'a str>,
) -> Cow<'a, str> {
    match key {
        // Validation requires [service.auth] for these, so a request that
        // got here was signed in and has a principal.
        RateLimitKey::Principal | RateLimitKey::ApiKey => Cow::Borrowed(principal.unwrap_or("")),
        RateLimitKey::ClientIp => Cow::Owned(client_ip.to_string()),
        RateLimitKey::Header(name) => head
            .headers
            .get_any_case(name)
            .map(String::from_utf8_lossy)
            .unwrap_or(Cow::Borrowed("")),
    }
}
