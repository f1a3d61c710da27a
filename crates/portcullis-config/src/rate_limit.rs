//! Validation of `[service.rate_limit]` (PRODUCT.md §11): how many requests
//! per window, with what burst, counted per which key.

use std::time::Duration;

use crate::model::{AuthPolicy, RateLimitKey, RateLimitPolicy};
use crate::raw::FileRateLimit;
use crate::validator::Validator;

/// Bounds that keep the arithmetic of the buckets and the draft headers
/// sane: a window is announced in whole seconds (`RateLimit-Policy: w=`),
/// and a day is the longest window anyone throttles per.
const MAX_REQUESTS: i64 = 1_000_000_000;
const MIN_WINDOW: Duration = Duration::from_secs(1);
const MAX_WINDOW: Duration = Duration::from_secs(86_400);

pub(crate) fn rate_limit(
    v: &mut Validator<'_>,
    at: &str,
    raw: FileRateLimit,
    auth: Option<&AuthPolicy>,
) -> RateLimitPolicy {
    let at = format!("{at}.rate_limit");
    let requests = v.int(
        &format!("{at}.requests"),
        Some(raw.requests),
        1,
        1,
        MAX_REQUESTS,
    );
    let per = v.duration(
        &format!("{at}.per"),
        raw.per.as_ref(),
        RateLimitPolicy::DEFAULT_WINDOW,
        MIN_WINDOW,
        MAX_WINDOW,
    );
    if per.subsec_nanos() != 0 {
        v.error(
            &format!("{at}.per"),
            "expected whole seconds, such as \"1s\" or \"1m\"",
        );
    }
    let burst = v.int(&format!("{at}.burst"), raw.burst, 0, 0, MAX_REQUESTS);
    let key = key(v, &format!("{at}.key"), &raw.key, auth);
    RateLimitPolicy {
        requests: requests.unsigned_abs(),
        per: Duration::from_secs(per.as_secs().max(1)),
        key,
        burst: burst.unsigned_abs(),
    }
}

fn key(v: &mut Validator<'_>, path: &str, raw: &str, auth: Option<&AuthPolicy>) -> RateLimitKey {
    let key = match raw {
        "principal" => RateLimitKey::Principal,
        "api_key" => RateLimitKey::ApiKey,
        "client_ip" => RateLimitKey::ClientIp,
        other => match other.strip_prefix("header:") {
            Some(name) => match http::HeaderName::from_bytes(name.as_bytes()) {
                Ok(header) => RateLimitKey::Header(header.as_str().to_string()),
                Err(_) => {
                    v.error(
                        path,
                        format!("expected \"header:NAME\" with an HTTP header name, found {raw:?}"),
                    );
                    RateLimitKey::ClientIp
                }
            },
            None => {
                v.error(
                    path,
                    format!("expected \"principal\", \"client_ip\", \"api_key\" or \"header:NAME\", found {raw:?}"),
                );
                RateLimitKey::ClientIp
            }
        },
    };
    if matches!(key, RateLimitKey::Principal | RateLimitKey::ApiKey) && auth.is_none() {
        v.error(
            path,
            format!("key = {raw:?} counts per signed-in caller, but the service has no [service.auth]; add one or use \"client_ip\""),
        );
    } else if key == RateLimitKey::ApiKey
        && auth.is_some_and(|a| !a.methods.contains(&crate::AuthMethod::ApiKey))
    {
        v.error(
            path,
            "key = \"api_key\" counts per API key, but [service.auth] methods does not list \"api_key\"; add it or use \"principal\"",
        );
    }
    key
}

#[cfg(test)]
#[path = "rate_limit_tests.rs"]
mod tests;
