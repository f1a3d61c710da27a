//! Validation of `[service.auth]` (PRODUCT.md §11): the methods built so far
//! (JWT, API keys), the key set's location, and identity assertion.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use crate::model::{ApiKeyPolicy, AuthMethod, AuthPolicy, JwksSource, JwtPolicy};
use crate::raw::{FileApiKey, FileAuth, FileAuthMethod, FileJwt};
use crate::validator::Validator;

/// Fields a client must never set for the backend through the identity
/// header: the gateway's own edits (Host, credentials, framing) would be
/// undone by it.
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "host",
    "cookie",
    "connection",
    "content-length",
    "transfer-encoding",
    "te",
    "upgrade",
    "x-forwarded-for",
    "x-real-ip",
];

pub(crate) fn auth(v: &mut Validator<'_>, at: &str, raw: FileAuth) -> AuthPolicy {
    let at = format!("{at}.auth");
    let methods = methods(v, &at, &raw.methods);
    let wants_jwt = methods.contains(&AuthMethod::Jwt);
    let jwt = match (raw.jwt, wants_jwt) {
        (Some(jwt), true) => Some(jwt_policy(v, &format!("{at}.jwt"), jwt)),
        (Some(_), false) => {
            v.error(
                &format!("{at}.jwt"),
                "a jwt table is given but methods does not list \"jwt\"; add it or remove the table",
            );
            None
        }
        (None, true) => {
            v.error(
                &format!("{at}.methods"),
                "methods lists \"jwt\" but [service.auth] has no jwt = { jwks, issuer, audiences }",
            );
            None
        }
        (None, false) => None,
    };
    let api_key = api_key_policy(v, &at, raw.api_key, methods.contains(&AuthMethod::ApiKey));
    let basic = match (raw.basic, methods.contains(&AuthMethod::Basic)) {
        (Some(basic), true) => crate::basic::basic_policy(v, &format!("{at}.basic"), basic),
        (Some(_), false) => {
            v.error(
                &format!("{at}.basic"),
                "a basic table is given but methods does not list \"basic\"; add it or remove the table",
            );
            None
        }
        (None, true) => {
            v.error(
                &format!("{at}.methods"),
                "methods lists \"basic\" but [service.auth] has no basic = { ldap = ... } or { htpasswd = ... }",
            );
            None
        }
        (None, false) => None,
    };
    let identity_header = identity_header(v, &at, raw.identity_header);
    AuthPolicy {
        methods,
        jwt,
        api_key,
        basic,
        identity_header,
        knox_doas: raw.knox_doas.unwrap_or(false),
    }
}

fn methods(v: &mut Validator<'_>, at: &str, raw: &[FileAuthMethod]) -> Vec<AuthMethod> {
    if raw.is_empty() {
        v.error(
            &format!("{at}.methods"),
            "expected at least one method, such as [\"jwt\"]; omit [service.auth] for no authentication",
        );
    }
    let mut methods = Vec::new();
    for (j, method) in raw.iter().enumerate() {
        let path = format!("{at}.methods[{j}]");
        let method = match method {
            FileAuthMethod::Jwt => AuthMethod::Jwt,
            FileAuthMethod::ApiKey => AuthMethod::ApiKey,
            FileAuthMethod::Basic => AuthMethod::Basic,
        };
        if methods.contains(&method) {
            v.error(&path, format!("{:?} is listed twice", method.as_str()));
            continue;
        }
        methods.push(method);
    }
    methods
}

/// `api_key` may be left out when `methods` lists it (the default header
/// is used); given without being listed, it is a mistake worth naming.
fn api_key_policy(
    v: &mut Validator<'_>,
    at: &str,
    raw: Option<FileApiKey>,
    listed: bool,
) -> Option<ApiKeyPolicy> {
    let path = format!("{at}.api_key");
    if !listed {
        if raw.is_some() {
            v.error(
                &path,
                "an api_key table is given but methods does not list \"api_key\"; add it or remove the table",
            );
        }
        return None;
    }
    let header = match raw.and_then(|raw| raw.header) {
        None => ApiKeyPolicy::DEFAULT_HEADER.to_string(),
        Some(name) => header_name(v, &format!("{path}.header"), &name, "\"X-API-Key\"")
            .unwrap_or_else(|| ApiKeyPolicy::DEFAULT_HEADER.to_string()),
    };
    Some(ApiKeyPolicy { header })
}

fn jwt_policy(v: &mut Validator<'_>, at: &str, raw: FileJwt) -> JwtPolicy {
    let jwks = jwks_source(v, &format!("{at}.jwks"), &raw.jwks);
    if raw.issuer.is_empty() {
        v.error(
            &format!("{at}.issuer"),
            "expected the issuer tokens carry in \"iss\"",
        );
    }
    if raw.audiences.is_empty() {
        v.error(
            &format!("{at}.audiences"),
            "expected at least one audience; a token's \"aud\" must hold one of them",
        );
    }
    for (j, audience) in raw.audiences.iter().enumerate() {
        if audience.is_empty() {
            v.error(
                &format!("{at}.audiences[{j}]"),
                "expected a non-empty audience",
            );
        }
    }
    let leeway = v.duration(
        &format!("{at}.leeway"),
        raw.leeway.as_ref(),
        AuthPolicy::DEFAULT_LEEWAY,
        Duration::ZERO,
        Duration::from_secs(600),
    );
    if leeway.subsec_nanos() != 0 {
        v.error(
            &format!("{at}.leeway"),
            "expected whole seconds, such as \"30s\"",
        );
    }
    JwtPolicy {
        jwks: jwks.unwrap_or(JwksSource::File(String::new())),
        issuer: raw.issuer,
        audiences: raw.audiences,
        leeway,
    }
}

/// `file:PATH`, `https://...`, or `http://` to a loopback host only: a key
/// set fetched in clear over a network could be replaced on the way, and
/// every token it "verifies" with it.
fn jwks_source(v: &mut Validator<'_>, path: &str, raw: &str) -> Option<JwksSource> {
    if let Some(file) = raw.strip_prefix("file:") {
        if file.is_empty() {
            v.error(path, "expected file:PATH with a path");
            return None;
        }
        return Some(JwksSource::File(file.to_string()));
    }
    let problem = match url::Url::parse(raw) {
        Err(e) => format!("expected \"file:PATH\" or an https:// URL, found {raw:?} ({e})"),
        Ok(url) => match url.scheme() {
            _ if url.host_str().is_none_or(str::is_empty) => "expected a URL with a host".to_string(),
            _ if !url.username().is_empty() || url.password().is_some() => {
                "a key set URL must not carry credentials".to_string()
            }
            "https" => return Some(JwksSource::Url(url)),
            "http" if is_loopback(&url) => return Some(JwksSource::Url(url)),
            "http" => "http:// is allowed for a loopback host only (127.0.0.1, [::1], localhost); use https://".to_string(),
            other => format!("expected \"file:PATH\" or an https:// URL, found scheme {other:?}"),
        },
    };
    v.error(path, problem);
    None
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

fn identity_header(v: &mut Validator<'_>, at: &str, raw: Option<String>) -> String {
    let Some(name) = raw else {
        return AuthPolicy::DEFAULT_IDENTITY_HEADER.to_string();
    };
    let path = format!("{at}.identity_header");
    header_name(v, &path, &name, "\"X-Forwarded-User\"")
        .unwrap_or_else(|| AuthPolicy::DEFAULT_IDENTITY_HEADER.to_string())
}

/// A header name the gateway may give a meaning of its own: valid, and not
/// one it sets or removes itself. Lower case.
fn header_name(v: &mut Validator<'_>, path: &str, name: &str, example: &str) -> Option<String> {
    match http::HeaderName::from_bytes(name.as_bytes()) {
        Err(_) => {
            v.error(
                path,
                format!("expected an HTTP header name, found {name:?}"),
            );
            None
        }
        Ok(header) if RESERVED_HEADERS.contains(&header.as_str()) => {
            v.error(
                path,
                format!("{name:?} is a header the gateway sets or removes itself; choose another, such as {example}"),
            );
            None
        }
        Ok(header) => Some(header.as_str().to_string()),
    }
}

/// The `file:` key sets a topology names must be readable and hold a usable
/// key, relative to `base_dir`, as the member applying it reads them.
pub(crate) fn auth_files(v: &mut Validator<'_>, i: usize, auth: &AuthPolicy, base_dir: &Path) {
    if let Some(basic) = &auth.basic {
        crate::basic::basic_files(v, &format!("service[{i}].auth.basic"), basic, base_dir);
    }
    let Some(JwtPolicy {
        jwks: JwksSource::File(file),
        ..
    }) = &auth.jwt
    else {
        return;
    };
    let loaded = crate::jwks::read_jwks_file(file, base_dir)
        .and_then(|bytes| crate::jwks::parse_jwks(&bytes));
    if let Err(err) = loaded {
        v.error(&format!("service[{i}].auth.jwt.jwks"), err.to_string());
    }
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
