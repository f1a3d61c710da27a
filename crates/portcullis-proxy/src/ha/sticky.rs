//! Sticky-session cookies. The value is a keyed MAC of the backend id under the
//! cluster's cookie key: every member computes the same value, a client cannot
//! forge one for a backend it was never sent to, and the value says nothing
//! about the backend's address (unlike Knox's unsalted SHA-256 of the url).

use http::header::{HeaderMap, HeaderValue, COOKIE};

pub use crate::cookie_key::{backend_tag, CookieKey};

/// Every value of cookie `name` in the request (RFC 6265 syntax). A client may
/// send several; a value counts only if its MAC matches a backend.
///
/// The header is split as bytes, not as text: browsers send UTF-8 cookie
/// values (`lang=français`) as they are, and one such cookie must not hide
/// the sticky one beside it. Only values that are ASCII are returned; a tag
/// always is.
pub fn request_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    cookies_named(
        headers.get_all(COOKIE).iter().map(HeaderValue::as_bytes),
        name,
    )
}

/// [`request_cookie`] over the Cookie fields' values.
pub fn cookies_named<'a>(values: impl Iterator<Item = &'a [u8]>, name: &str) -> Vec<&'a str> {
    values
        .flat_map(|v| v.split(|&b| b == b';'))
        .filter_map(|pair| {
            let at = pair.iter().position(|&b| b == b'=')?;
            let (key, value) = (pair[..at].trim_ascii(), &pair[at + 1..]);
            (key == name.as_bytes()).then_some(value)
        })
        .filter_map(|value| std::str::from_utf8(value).ok().filter(|v| v.is_ascii()))
        .map(|v| v.trim().trim_matches('"'))
        .collect()
}

/// `Set-Cookie` for a sticky cookie: scoped to the topology's path, HttpOnly,
/// SameSite=Lax, Secure on TLS connections. A session cookie: it lives as long
/// as the client's session, like Knox's and HAProxy's.
pub fn set_cookie(name: &str, value: &str, path: &str, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; HttpOnly; SameSite=Lax{secure}"
    ))
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_ascii_cookie_beside_the_sticky_one_does_not_hide_it() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_bytes("lang=fran\u{e7}ais; S=tag1; x=1".as_bytes()).unwrap(),
        );
        headers.append(COOKIE, HeaderValue::from_static("S=\"tag2\""));
        assert_eq!(request_cookie(&headers, "S"), vec!["tag1", "tag2"]);
        assert!(request_cookie(&headers, "lang").is_empty());
    }

    #[test]
    fn tags_are_keyed_stable_and_distinct() {
        let key = CookieKey::new([7; 32]);
        let other = CookieKey::new([8; 32]);
        assert_eq!(backend_tag(&key, "abc"), backend_tag(&key, "abc"));
        assert_ne!(backend_tag(&key, "abc"), backend_tag(&key, "abd"));
        assert_ne!(backend_tag(&key, "abc"), backend_tag(&other, "abc"));
        assert_ne!(
            key.tag("portcullis-sticky", "m"),
            key.tag("portcullis-member", "m")
        );
        let tag = backend_tag(&key, "abc");
        assert_eq!(tag.len(), 22);
        assert!(tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }

    #[test]
    fn finds_cookies_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(
            COOKIE,
            HeaderValue::from_static("a=1; KNOX_BACKEND-web=xyz; b=2"),
        );
        headers.append(COOKIE, HeaderValue::from_static("KNOX_BACKEND-web=\"q\""));
        assert_eq!(
            request_cookie(&headers, "KNOX_BACKEND-web"),
            vec!["xyz", "q"]
        );
        assert!(request_cookie(&headers, "KNOX_BACKEND").is_empty());
    }

    #[test]
    fn set_cookie_attributes() {
        let v = set_cookie("K-s", "tag", "/gateway/t", true).unwrap();
        assert_eq!(
            v,
            "K-s=tag; Path=/gateway/t; HttpOnly; SameSite=Lax; Secure"
        );
        let v = set_cookie("K-s", "tag", "/gateway/t", false).unwrap();
        assert!(!v.to_str().unwrap().contains("Secure"));
    }
}
