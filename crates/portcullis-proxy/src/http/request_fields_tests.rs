use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::*;

/// The raw fields of a head with `fields` (`name: value` lines), as the
/// engine's scan leaves them: names lowercased in place, values trimmed.
/// (The engine's own tests parse real heads into this form.)
fn raw(fields: &[&str]) -> RequestFields {
    let mut head = b"GET / HTTP/1.1\r\n".to_vec();
    let mut spans = Vec::new();
    for field in fields {
        let (name, value) = field.split_once(':').expect("a field");
        let name_start = head.len() as u32;
        head.extend(name.bytes().map(|b| b.to_ascii_lowercase()));
        let name_end = head.len() as u32;
        head.extend_from_slice(b": ");
        let value_start = head.len() as u32;
        head.extend_from_slice(value.trim().as_bytes());
        spans.push(RawField::new(
            (name_start, name_end),
            (value_start, head.len() as u32),
        ));
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    RequestFields::Raw(RawFields::new(Bytes::from(head), spans))
}

/// The same fields as a map, as hyper's server gives them.
fn map(fields: &[&str]) -> RequestFields {
    let mut map = HeaderMap::new();
    for field in fields {
        let (name, value) = field.split_once(':').expect("a field");
        map.append(
            HeaderName::from_bytes(name.as_bytes()).expect("a name"),
            HeaderValue::from_str(value.trim()).expect("a value"),
        );
    }
    RequestFields::Map(map)
}

/// Both forms of `fields`, after `edit`, as maps (which compare values by
/// name, in order).
fn both_after(fields: &[&str], edit: impl Fn(&mut RequestFields)) -> (HeaderMap, HeaderMap) {
    let (mut raw, mut map) = (raw(fields), map(fields));
    edit(&mut raw);
    edit(&mut map);
    (raw.to_map(0), map.to_map(0))
}

const HEADS: &[&[&str]] = &[
    &["Host: a"],
    &["Host: a", "Connection: keep-alive"],
    &["Host: a", "Connection: close", "Keep-Alive: 5", "Close: x"],
    &[
        "Host: a",
        "Connection: X-Secret, keep-alive",
        "X-Secret: 1",
        "x-secret: 2",
    ],
    &[
        "Host: a",
        "Connection: Upgrade",
        "Upgrade: websocket",
        "TE: trailers",
    ],
    &[
        "Host: a",
        "Proxy-Authorization: b",
        "Transfer-Encoding: chunked",
    ],
    &[
        "Host: a",
        "X-Forwarded-For: 1.2.3.4",
        "X-Forwarded-For: , 5.6.7.8",
        "Forwarded: for=x",
    ],
    &[
        "Host: a",
        "X-Real-IP: 9.9.9.9",
        "X-Original-URL: /admin",
        "Accept: */*",
    ],
    &["Host: a", "X-Forwarded-For: caf\u{e9}"],
    &["Host: a", "Cookie: a=1", "Accept: x", "Cookie: b=2"],
];

#[test]
fn raw_fields_read_as_the_map_does() {
    for fields in HEADS {
        let (raw, map) = (raw(fields), map(fields));
        assert_eq!(raw.to_map(0), map.to_map(0), "{fields:?}");
        for name in [
            header::HOST,
            header::COOKIE,
            header::CONNECTION,
            header::ACCEPT,
        ] {
            let raw_values: Vec<_> = raw.values(&name).collect();
            let map_values: Vec<_> = map.values(&name).collect();
            assert_eq!(raw_values, map_values, "{name} of {fields:?}");
            assert_eq!(raw.get(&name), map.get(&name), "{name} of {fields:?}");
            assert_eq!(raw.contains(&name), map.contains(&name));
        }
        assert_eq!(raw.get_any_case("X-Secret"), map.get_any_case("X-Secret"));
        assert_eq!(raw.is_upgrade_request(), map.is_upgrade_request());
    }
}

#[test]
fn raw_fields_keep_the_order_received() {
    let raw = raw(&["Host: a", "B: 1", "A: 2", "b: 3"]);
    let order: Vec<_> = raw.iter().collect();
    assert_eq!(
        order,
        [
            (&b"host"[..], &b"a"[..]),
            (b"b", b"1"),
            (b"a", b"2"),
            (b"b", b"3")
        ]
    );
}

#[test]
fn hop_by_hop_fields_go_as_from_the_map() {
    for fields in HEADS {
        for keep_upgrade in [false, true] {
            let (raw, map) = both_after(fields, |f| f.strip_hop_by_hop(keep_upgrade));
            assert_eq!(raw, map, "{fields:?}, keep_upgrade {keep_upgrade}");
        }
    }
    // And something goes: the test would pass on a no-op otherwise.
    let (raw, _) = both_after(HEADS[3], |f| f.strip_hop_by_hop(false));
    assert!(!raw.contains_key("x-secret") && !raw.contains_key(header::CONNECTION));
}

#[test]
fn client_forwarding_goes_as_from_the_map() {
    for fields in HEADS {
        let (mut raw, mut map) = (raw(fields), map(fields));
        let raw_prior = raw.remove_client_forwarding();
        let map_prior = map.remove_client_forwarding();
        assert_eq!(raw_prior, map_prior, "{fields:?}");
        assert_eq!(raw.to_map(0), map.to_map(0), "{fields:?}");
    }
    let mut raw = raw(HEADS[6]);
    let prior = raw.remove_client_forwarding();
    assert_eq!(prior, Some(HeaderValue::from_static("1.2.3.4, , 5.6.7.8")));
    assert!(!raw.any_name(|name| name == b"forwarded"));
}

#[test]
fn insert_replaces_every_field_of_the_name_and_remove_drops_them() {
    for fields in HEADS {
        let (raw, map) = both_after(fields, |f| {
            f.insert(header::COOKIE, HeaderValue::from_static("c=3"));
            f.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic x"));
            f.remove(&header::ACCEPT);
        });
        assert_eq!(raw, map, "{fields:?}");
        assert_eq!(raw.get_all(header::COOKIE).iter().count(), 1);
        assert!(!raw.contains_key(header::ACCEPT));
    }
    // A field inserted and then removed is gone from a raw head too.
    let mut raw = raw(HEADS[0]);
    raw.insert(header::AUTHORIZATION, HeaderValue::from_static("a"));
    raw.remove(&header::AUTHORIZATION);
    assert_eq!(raw.iter().count(), 1);
}

#[test]
fn a_raw_head_becomes_a_map_with_its_edits() {
    let mut fields = raw(&["Host: a", "Authorization: Bearer t", "Keep-Alive: 1"]);
    fields.strip_hop_by_hop(false);
    fields.insert(header::HOST, HeaderValue::from_static("b"));
    let kept = kept_field_lists();
    let map = fields.map_mut(0).clone();
    // The raw list went back to the thread's spares.
    assert_eq!(kept_field_lists(), kept + 1);
    assert!(matches!(fields, RequestFields::Map(_)));
    assert_eq!(map.len(), 2);
    assert_eq!(map.get(header::HOST), Some(&HeaderValue::from_static("b")));
    assert_eq!(map["authorization"], "Bearer t");
}

#[test]
fn visible_str_is_what_to_str_accepts() {
    for value in [&b"abc"[..], b"a\tb", b"caf\xc3\xa9", b"a\x7fb", b"", b" x "] {
        let expected = HeaderValue::from_bytes(value)
            .ok()
            .and_then(|v| v.to_str().ok().map(str::to_owned));
        assert_eq!(visible_str(value).map(str::to_owned), expected, "{value:?}");
    }
}

#[test]
fn a_field_list_comes_back_empty_with_its_room() {
    FIELDS.with_borrow_mut(Vec::clear);
    let mut fields = take_fields();
    let room = fields.capacity();
    assert!(room >= 16);
    fields.push(RawField::new((0, 4), (6, 7)));
    give_back_fields(fields);
    let again = take_fields();
    assert!(again.is_empty());
    assert_eq!(again.capacity(), room);
    // Lent out: the next taker gets a new one; a huge one is not kept.
    assert_eq!(FIELDS.with_borrow(Vec::len), 0);
    give_back_fields(Vec::with_capacity(KEEP_FIELDS_UP_TO * 2));
    assert_eq!(FIELDS.with_borrow(Vec::len), 0);
}
