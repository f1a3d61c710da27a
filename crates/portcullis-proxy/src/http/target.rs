//! The request target as the pipeline reads it: a path and a query. hyper's
//! server gives a `Uri`; the own engine keeps an origin-form target (`/path`
//! and `?query`, nearly every request) as the head's bytes, split where the
//! query starts. A `Uri` parse walked every byte once more through a class
//! table and cost about 350 instructions per request (callgrind, issue 13);
//! the check here is the same rule, and other forms still go through
//! `Uri`.

use bytes::Bytes;
use bytestring::ByteString;
use http::uri::Authority;
use http::Uri;

/// No `?` in an origin-form target.
const NO_QUERY: u32 = u32::MAX;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestTarget {
    /// `text` up to `query` is the path, after it the query (`NO_QUERY`:
    /// none). A fragment, if one was sent, is cut off as `Uri` cuts it.
    /// `ruled`: the path holds a byte the §9 path rule looks at.
    Origin {
        text: ByteString,
        query: u32,
        ruled: bool,
    },
    /// Any other form (absolute, asterisk), or hyper's.
    Uri(Box<Uri>),
}

/// The target is not one `http::Uri` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid request target")]
pub struct InvalidTarget;

/// What a byte of an origin-form target is, by `http::Uri`'s rules
/// (`uri/path.rs`: its path and query sets).
const PLAIN: u8 = 0;
const QUERY: u8 = 1;
const FRAGMENT: u8 = 2;
/// Valid in a path, not in a query.
const PATH_ONLY: u8 = 3;
/// Valid in a query, not in a path.
const QUERY_ONLY: u8 = 4;
const INVALID: u8 = 5;
/// Plain, and one of the bytes the §9 path rule (`strict::check_path`)
/// looks for: `.`, `%`, `\`.
const RULED: u8 = 6;

const CLASSES: [u8; 256] = {
    let mut classes = [INVALID; 256];
    let mut b = 0x21;
    while b <= 0x7e {
        classes[b] = match b as u8 {
            b'?' => QUERY,
            b'#' => FRAGMENT,
            b'"' => PATH_ONLY,
            b'`' => QUERY_ONLY,
            b'<' | b'>' => INVALID,
            b'.' | b'%' | b'\\' => RULED,
            _ => PLAIN,
        };
        b += 1;
    }
    classes
};

impl RequestTarget {
    pub fn from_uri(uri: Uri) -> RequestTarget {
        RequestTarget::Uri(Box::new(uri))
    }

    /// The target of a request line: `Uri`'s verdict and reading, with
    /// an origin-form target kept as its bytes. Bytes outside visible ASCII
    /// (which the engine's scan never lets through) are refused here too.
    pub fn parse(target: Bytes) -> Result<RequestTarget, InvalidTarget> {
        if target.first() != Some(&b'/') {
            return Uri::from_maybe_shared(target)
                .map(RequestTarget::from_uri)
                .map_err(|_| InvalidTarget);
        }
        // Nearly every byte is plain: a tight loop finds the first that
        // is not, and only the rest is read byte by byte.
        let plain = target
            .iter()
            .position(|&b| CLASSES[b as usize] != PLAIN)
            .unwrap_or(target.len());
        let (mut query, mut end, mut ruled) = (NO_QUERY, target.len(), false);
        for (at, &b) in target.iter().enumerate().skip(plain) {
            match CLASSES[b as usize] {
                PLAIN => {}
                RULED => ruled |= query == NO_QUERY,
                QUERY if query == NO_QUERY => query = at as u32,
                // A second `?` is part of the query.
                QUERY => {}
                FRAGMENT => {
                    end = at;
                    break;
                }
                PATH_ONLY if query == NO_QUERY => {}
                QUERY_ONLY if query != NO_QUERY => {}
                _ => return Err(InvalidTarget),
            }
        }
        let mut target = target;
        target.truncate(end);
        let text = ByteString::try_from(target).map_err(|_| InvalidTarget)?;
        Ok(RequestTarget::Origin { text, query, ruled })
    }

    pub fn path(&self) -> &str {
        match self {
            RequestTarget::Origin { text, query, .. } => match *query {
                NO_QUERY => text,
                at => &text[..at as usize],
            },
            RequestTarget::Uri(uri) => uri.path(),
        }
    }

    pub fn query(&self) -> Option<&str> {
        match self {
            RequestTarget::Origin { text, query, .. } => match *query {
                NO_QUERY => None,
                at => Some(&text[at as usize + 1..]),
            },
            RequestTarget::Uri(uri) => uri.query(),
        }
    }

    /// The path holds none of the bytes the §9 path rule looks for, so
    /// `strict::check_path` would pass it without a look (known for an
    /// origin-form target from its parse; a `Uri`'s path is not known).
    pub fn path_needs_no_rule(&self) -> bool {
        matches!(self, RequestTarget::Origin { ruled: false, .. })
    }

    /// The authority of an absolute-form target (or an HTTP/2 request's).
    pub fn authority(&self) -> Option<&Authority> {
        match self {
            RequestTarget::Origin { .. } => None,
            RequestTarget::Uri(uri) => uri.authority(),
        }
    }

    /// The target as a `Uri`.
    pub fn to_uri(&self) -> Uri {
        match self {
            RequestTarget::Origin { text, .. } => {
                // Valid by construction: the same rules `Uri` applies.
                Uri::from_maybe_shared(text.as_bytes().clone()).unwrap_or_default()
            }
            RequestTarget::Uri(uri) => (**uri).clone(),
        }
    }
}

impl std::fmt::Display for RequestTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestTarget::Origin { text, .. } => f.write_str(text),
            RequestTarget::Uri(uri) => uri.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every visible ASCII byte and a few others, in the path, in the
    /// query and around the `?` and `#`: the same verdict, path and query
    /// as `Uri`'s.
    #[test]
    fn origin_targets_read_as_uri_reads_them() {
        let mut targets: Vec<Vec<u8>> = vec![
            b"/".to_vec(),
            b"/a?".to_vec(),
            b"/a?b?c".to_vec(),
            b"/a#b?c".to_vec(),
            b"/a?b#c".to_vec(),
            b"/#".to_vec(),
            b"/a/b/../c?x=1&y=%20".to_vec(),
            b"*".to_vec(),
            b"http://h:8/p?q".to_vec(),
            b"h:8".to_vec(),
        ];
        for b in (0u8..=0xff).filter(|b| !b"?#".contains(b)) {
            targets.push(vec![b'/', b'a', b]);
            targets.push(vec![b'/', b'?', b]);
            targets.push(vec![b'/', b, b'?', b'q']);
        }
        let mut refused = 0;
        for target in targets {
            let ours = RequestTarget::parse(Bytes::from(target.clone()));
            let uri = Uri::from_maybe_shared(Bytes::from(target.clone()));
            let shown = String::from_utf8_lossy(&target);
            match (ours, uri) {
                (Ok(ours), Ok(uri)) => {
                    assert_eq!(ours.path(), uri.path(), "{shown}");
                    assert_eq!(ours.query(), uri.query(), "{shown}");
                    assert_eq!(ours.authority(), uri.authority(), "{shown}");
                    assert_eq!(ours.to_uri(), uri, "{shown}");
                    // Skipping the path rule is right exactly when the
                    // rule's first look would find nothing.
                    let ruled = uri.path().bytes().any(|b| matches!(b, b'.' | b'%' | b'\\'));
                    let origin = matches!(ours, RequestTarget::Origin { .. });
                    assert_eq!(ours.path_needs_no_rule(), origin && !ruled, "{shown}");
                }
                (Err(_), Err(_)) => refused += 1,
                // Bytes the engine's scan never lets through (obs-text,
                // controls) may be refused here where `Uri` takes them.
                (Err(_), Ok(_)) if target.iter().any(|b| !(0x21..=0x7e).contains(b)) => {}
                (ours, uri) => panic!("{shown}: ours {ours:?}, Uri's {uri:?}"),
            }
        }
        // `<`, `>`, a `"` in a query, a backtick in a path, controls.
        assert!(refused > 10, "{refused}");
    }

    #[test]
    fn an_origin_target_is_kept_whole() {
        let target = RequestTarget::parse(Bytes::from_static(b"/g/t/s?a=1#frag")).unwrap();
        assert!(matches!(target, RequestTarget::Origin { .. }));
        assert_eq!(target.to_string(), "/g/t/s?a=1");
        assert_eq!((target.path(), target.query()), ("/g/t/s", Some("a=1")));
    }
}
