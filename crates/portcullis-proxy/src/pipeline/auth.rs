//! The auth phase (PRODUCT.md §11, docs/policies.md): after routing and
//! before forwarding, for a service with `[service.auth]` or
//! `[service.authorize]` only. Authentication refuses with 401 and a
//! `WWW-Authenticate` challenge (503 when the credentials cannot be checked:
//! the directory is down), or edits the request for the backends: the
//! client's `Authorization` out, the principal in the identity header (every
//! client copy replaced) and, for Knox backends, in `?doAs=`. Authorization
//! then refuses with 403 a caller its rules do not admit.

use http::header::HeaderValue;
use http::uri::PathAndQuery;
use http::Uri;
use std::net::IpAddr;
use std::sync::Arc;

use portcullis_policy::{
    AuthResult, Authenticated, Authenticator, Authorization, Credentials, Principal, Refusal,
};

use crate::error::ProxyError;
use crate::http::{ClientHead, RequestTarget};
use crate::routing::ServiceRuntime;

/// Authenticates (with `[service.auth]`) and authorizes (with
/// `[service.authorize]`) the request. Each request is counted once: `ok`
/// only once it is admitted, `denied` when authorization refuses it. The
/// principal comes back for the access log and the rate limit.
/// `authorization` is what [`admit_now`] took out of the head.
pub(super) async fn admit(
    service: &ServiceRuntime,
    client_ip: IpAddr,
    head: &mut ClientHead,
    authorization: Authorization,
) -> Admission {
    let signed_in = match &service.auth {
        Some(auth) => {
            let credentials = Credentials {
                authorization: &authorization,
                headers: head.headers.map_mut(super::ADDED_HEADERS),
            };
            Some((auth, auth.authenticate(&credentials).await))
        }
        None => None,
    };
    judge(service, client_ip, head, signed_in)
}

/// What [`admit_now`] made of a request.
pub(super) enum AdmitNow {
    Judged(Admission),
    /// A method must wait (a key set refresh, a directory): [`admit`]
    /// judges the request, with the `Authorization` already taken out.
    MustWait(Authorization),
}

/// [`admit`] without waiting, which is how nearly every request goes (a
/// remembered token, a key, a cached login). With `[service.auth]`, the
/// client's `Authorization` leaves the head here, whatever the outcome:
/// a refused request is not forwarded, an admitted one must not carry it.
pub(super) fn admit_now(
    service: &ServiceRuntime,
    client_ip: IpAddr,
    head: &mut ClientHead,
    started: tokio::time::Instant,
) -> AdmitNow {
    let Some(auth) = &service.auth else {
        return AdmitNow::Judged(judge(service, client_ip, head, None));
    };
    // The methods read a map: raw fields become one here, for services
    // with `[service.auth]` only.
    let headers = head.headers.map_mut(super::ADDED_HEADERS);
    let authorization = Authorization::take(headers);
    let credentials = Credentials {
        authorization: &authorization,
        headers,
    };
    match auth.authenticate_now(&credentials, started) {
        Some(outcome) => AdmitNow::Judged(judge(service, client_ip, head, Some((auth, outcome)))),
        None => AdmitNow::MustWait(authorization),
    }
}

pub(super) type Admission = Result<Option<Arc<Principal>>, ProxyError>;

/// `client_ip` is the client's address (`Gateway::client_ip`), which
/// `cidrs` must contain.
fn judge(
    service: &ServiceRuntime,
    client_ip: IpAddr,
    head: &mut ClientHead,
    signed_in: Option<(&Authenticator, Result<Authenticated, Refusal>)>,
) -> Admission {
    let signed_in = match signed_in {
        Some((auth, outcome)) => Some(assert_identity(auth, service, head, outcome)?),
        None => None,
    };
    let method = signed_in.as_ref().map(|s| s.method);
    if let Some(policy) = &service.config.authorize {
        let principal = signed_in.as_ref().map(|s| &*s.principal);
        if !portcullis_policy::admits(policy, principal, client_ip) {
            service.stats.auth.count(method, AuthResult::Denied);
            return Err(ProxyError::Forbidden {
                topology: service.topology.clone(),
                service: service.config.name.clone(),
            });
        }
    }
    if method.is_some() {
        service.stats.auth.count(method, AuthResult::Ok);
    }
    Ok(signed_in.map(|s| s.principal))
}

/// Asserts the signed-in caller's identity to the backends, or turns the
/// refusal into the answer.
fn assert_identity(
    auth: &Authenticator,
    service: &ServiceRuntime,
    head: &mut ClientHead,
    outcome: Result<Authenticated, Refusal>,
) -> Result<Authenticated, ProxyError> {
    let signed_in = outcome.map_err(|refusal| refuse(service, refusal))?;
    let invalid = |service| {
        refuse(
            service,
            Refusal {
                method: Some(signed_in.method),
                result: AuthResult::Invalid,
                challenge: HeaderValue::from_static(AuthResult::Invalid.challenge()),
            },
        )
    };
    // A name that cannot travel in a header (control characters) is not
    // one to assert; UTF-8 goes as its bytes. The connector writes the
    // header (`ForwardedFields::identity`).
    if signed_in.principal.header_value().is_none() {
        return Err(invalid(service));
    }
    if auth.knox_doas() {
        let uri = with_doas(&head.target.to_uri(), &signed_in.principal.name)
            .ok_or_else(|| invalid(service))?;
        head.target = RequestTarget::from_uri(uri);
    }
    // The key is the client's credential, as Authorization is (taken out
    // before the methods looked): the backend never sees it.
    if let Some(header) = auth.api_key_header() {
        head.headers.remove(header);
    }
    // Every copy the client sent goes: the backend must see only the
    // gateway's. Most requests carry none, and a pass over the names costs
    // less than a removal's hash of a configured name (callgrind).
    let identity = auth.identity_header();
    if head
        .headers
        .any_name(|name| name == identity.as_str().as_bytes())
    {
        head.headers.remove(identity);
    }
    Ok(signed_in)
}

fn refuse(service: &ServiceRuntime, refusal: Refusal) -> ProxyError {
    service.stats.auth.count(refusal.method, refusal.result);
    if refusal.result == AuthResult::Unavailable {
        return ProxyError::AuthUnavailable {
            topology: service.topology.clone(),
            service: service.config.name.clone(),
        };
    }
    ProxyError::Unauthorized {
        topology: service.topology.clone(),
        service: service.config.name.clone(),
        challenge: Box::new(refusal.challenge),
    }
}

/// `uri` with its query's `doAs` replaced by the principal; the path and
/// authority stay.
fn with_doas(uri: &Uri, principal: &str) -> Option<Uri> {
    let query = portcullis_policy::with_doas(uri.query(), principal);
    let path_and_query = PathAndQuery::try_from(format!("{}?{query}", uri.path())).ok()?;
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query);
    Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doas_keeps_the_path_and_authority() {
        let uri: Uri = "https://gw.example/gateway/t/webhdfs/v1/x?op=OPEN&doas=root"
            .parse()
            .unwrap();
        let edited = with_doas(&uri, "alice").unwrap();
        assert_eq!(
            edited.to_string(),
            "https://gw.example/gateway/t/webhdfs/v1/x?op=OPEN&doAs=alice"
        );
        let bare: Uri = "/gateway/t/s".parse().unwrap();
        assert_eq!(
            with_doas(&bare, "a b").unwrap().to_string(),
            "/gateway/t/s?doAs=a+b"
        );
    }
}
