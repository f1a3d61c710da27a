use super::*;
use crate::http::headers::strip_hop_by_hop;

/// A raw head over `fields` (name, value), as the engine's scan builds it:
/// names lowercased in place, values without surrounding whitespace, no
/// framing edits.
fn raw(fields: &[(&str, &str)]) -> RawResponseHead {
    let mut bytes = b"HTTP/1.1 200 OK\r\n".to_vec();
    let mut raw_fields = Vec::new();
    for (name, value) in fields {
        let name_start = bytes.len() as u32;
        bytes.extend_from_slice(name.to_ascii_lowercase().as_bytes());
        let name_span = (name_start, bytes.len() as u32);
        bytes.extend_from_slice(b": ");
        let value_start = bytes.len() as u32;
        bytes.extend_from_slice(value.trim().as_bytes());
        let value_span = (value_start, bytes.len() as u32);
        bytes.extend_from_slice(b"\r\n");
        let kind = FieldKind::of(name.to_ascii_lowercase().as_bytes());
        raw_fields.push(RawField::new(name_span, value_span, kind));
    }
    bytes.extend_from_slice(b"\r\n");
    RawResponseHead::new(
        StatusCode::OK,
        Version::HTTP_11,
        Bytes::from(bytes),
        raw_fields,
    )
}

/// The map today's code builds from the same fields: one `append` each.
fn map(fields: &[(&str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in fields {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    headers
}

/// Field lists that exercise every hop-by-hop rule.
const CASES: &[&[(&str, &str)]] = &[
    &[("Content-Type", "text/plain"), ("Content-Length", "5")],
    &[
        ("Connection", "keep-alive"),
        ("Keep-Alive", "timeout=5"),
        ("X-A", "1"),
    ],
    &[("Connection", "close"), ("Server", "nginx")],
    &[
        ("Connection", "X-Secret, keep-alive"),
        ("x-secret", "1"),
        ("X-SECRET", "2"),
        ("TE", "trailers"),
        ("Trailer", "x"),
        ("Upgrade", "h2c"),
        ("Proxy-Authenticate", "Basic"),
        ("Proxy-Foo", "x"),
        ("Transfer-Encoding", "chunked"),
        ("X-Kept", "yes"),
    ],
    &[
        ("Connection", "x-one , close"),
        ("Connection", "X-Two,,"),
        ("x-one", "1"),
        ("x-two", "2"),
        ("x-three", "3"),
    ],
    // Not visible ASCII: the value names nothing (`HeaderValue::to_str`).
    &[("Connection", "x-one, caf\u{e9}"), ("x-one", "1")],
    &[("Connection", "x one, x@two"), ("x-one", "1")],
    &[
        ("Set-Cookie", "a=1"),
        ("Location", "/x"),
        ("Set-Cookie", "b=2"),
    ],
];

#[test]
fn an_unedited_raw_head_converts_to_the_map_of_its_fields() {
    for fields in CASES {
        assert_eq!(
            raw(fields).to_header_map(0).unwrap(),
            map(fields),
            "{fields:?}"
        );
    }
}

#[test]
fn raw_and_map_strip_the_same_fields() {
    for fields in CASES {
        let mut headers = map(fields);
        strip_hop_by_hop(&mut headers, false);
        let mut head = raw(fields);
        head.strip_hop_by_hop();
        assert_eq!(head.to_header_map(0).unwrap(), headers, "{fields:?}");
        // Same names in the same order within each name.
        let kept: Vec<_> = head
            .kept()
            .map(|f| (f.name.to_vec(), f.value.to_vec()))
            .collect();
        let in_map: Vec<_> = fields
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase().into_bytes(), v.as_bytes().to_vec()))
            .filter(|(n, _)| headers.contains_key(HeaderName::from_bytes(n).unwrap()))
            .collect();
        assert_eq!(kept, in_map, "{fields:?}");
    }
}

#[test]
fn set_replaces_the_first_field_of_a_kind_and_drops_the_rest() {
    let fields = [
        ("Content-Length", "05"),
        ("Date", "x"),
        ("content-length", "5"),
    ];
    let mut head = raw(&fields);
    head.set(FieldKind::ContentLength, HeaderValue::from(5u64));
    let mut headers = map(&fields);
    headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(5u64));
    assert_eq!(head.to_header_map(0).unwrap(), headers);
    let values: Vec<_> = head.values(FieldKind::ContentLength).collect();
    assert_eq!(values, [b"5"]);
    head.drop_kind(FieldKind::ContentLength);
    assert!(!head.has(FieldKind::ContentLength));
    assert!(head.has(FieldKind::Date));
    // A kind with no field: nothing to set.
    head.set(FieldKind::Location, HeaderValue::from_static("/y"));
    assert!(!head.has(FieldKind::Location));
}

#[test]
fn kinds_are_found_in_any_case() {
    let cases = [
        ("CONTENT-length", FieldKind::ContentLength),
        ("Transfer-Encoding", FieldKind::TransferEncoding),
        ("connection", FieldKind::Connection),
        ("Keep-Alive", FieldKind::HopByHop),
        ("PROXY-x", FieldKind::HopByHop),
        ("proxy", FieldKind::Other),
        ("Location", FieldKind::Location),
        ("Content-Location", FieldKind::ContentLocation),
        ("DATE", FieldKind::Date),
        ("x-date", FieldKind::Other),
    ];
    for (name, kind) in cases {
        let lower = name.as_bytes().to_ascii_lowercase();
        assert_eq!(FieldKind::of(&lower), kind, "{name}");
    }
}

#[test]
fn into_response_puts_the_added_fields_after_the_raw_ones() {
    let head = raw(&[("Set-Cookie", "a=1"), ("X-A", "1")]);
    let mut response = Response::new(crate::body::empty());
    let added = response.headers_mut();
    added.append(http::header::SET_COOKIE, HeaderValue::from_static("s=2"));
    added.append(http::header::SET_COOKIE, HeaderValue::from_static("s=3"));
    added.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    let merged = ProxyResponse {
        response,
        raw_head: Some(Box::new(head)),
    }
    .into_response();
    let cookies: Vec<_> = merged.headers().get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1", "s=2", "s=3"]);
    assert_eq!(merged.headers()["x-a"], "1");
    assert_eq!(merged.headers()["connection"], "close");
    assert_eq!(merged.headers().len(), 5);
}

/// A written head's box and field list serve the next head on the thread:
/// no allocation for either (the engine's `write_head` recycles every raw
/// head it writes).
#[test]
fn a_recycled_head_lends_its_box_and_field_list_to_the_next() {
    // Tests share threads' pools only within one test: start from empty.
    while kept_heads() > 0 {
        drop(take_fields());
        drop(raw(&[]).boxed());
    }
    let first = raw(&[("Server", "x"), ("Content-Length", "1")]).boxed();
    let first_at = &*first as *const RawResponseHead;
    let capacity = first.fields.capacity();
    first.recycle();
    assert_eq!(kept_heads(), 1);
    let fields = take_fields();
    assert!(fields.is_empty());
    assert_eq!(fields.capacity(), capacity);
    let second = raw(&[("Date", "now")]).boxed();
    assert_eq!(&*second as *const RawResponseHead, first_at);
    assert_eq!(second.fields.len(), 1);
    assert_eq!(kept_heads(), 0);
}
