use super::*;

#[test]
fn host_fields_keep_the_first_host_as_a_map_lookup_does() {
    let mut h = HeaderMap::new();
    assert_eq!(HostFields::of(&h), HostFields::Missing);
    h.append(header::HOST, HeaderValue::from_static("a"));
    assert_eq!(
        HostFields::of(&h).into_first(),
        h.get(header::HOST).map(HostValue::from)
    );
    h.append(header::HOST, HeaderValue::from_static("b"));
    let several = HostFields::of(&h);
    let a = HostValue::from(&HeaderValue::from_static("a"));
    assert_eq!(several, HostFields::Several(a));
    assert_eq!(
        several.into_first(),
        h.get(header::HOST).map(HostValue::from)
    );
}

/// A scanned value answers as the `HeaderValue` of its bytes would, for
/// every byte value: bytes, text, and the map's value.
#[test]
fn a_scanned_host_answers_as_its_header_value() {
    for byte in 0u8..=255 {
        let bytes = vec![b'a', byte, b'b'];
        let scanned = HostValue::scanned(bytes::Bytes::from(bytes.clone()));
        assert_eq!(scanned.as_bytes(), &bytes[..]);
        let value = HeaderValue::from_bytes(&bytes).ok();
        assert_eq!(scanned.to_header_value(), value, "{byte:#x}");
        if let Some(value) = value {
            assert_eq!(scanned.to_str(), value.to_str().ok(), "{byte:#x}");
            assert_eq!(scanned, HostValue::from(&value));
        }
    }
}

#[test]
fn path_rule_refuses_every_escape() {
    for bad in [
        "/a/../b",
        "/..",
        "/.",
        "/%2e%2e/x",
        "/%2E./x",
        "/..%2fsecret",
        "/..%2Fsecret",
        "/%2e%2e%2fsecret",
        "/%252e%252e/secret",
        "/%252E%252E%252Fsecret",
        "/..%5csecret",
        "/..%5Csecret",
        "/..\\..\\secret",
        "/a\\b",
        "/..;/secret",
        "/..;a=b/secret",
        "/.;/x",
        "/%2e%2e;x/secret",
        "/..%3bx/secret",
        "/a%2fb",
        "/a%252fb",
        "/a%00b",
        "/a%2500b",
        "/%255c",
    ] {
        assert!(check_path(bad).is_err(), "{bad}");
    }
}

#[test]
fn path_rule_catches_every_dot_segment_of_the_old_rule() {
    // The rule before §9: a segment equal to `.` or `..` once `%2e` is
    // read as a dot. The new rule must refuse everything it refused.
    let reference = |rest: &str| {
        rest.split('/').any(|segment| {
            let lower = segment.to_ascii_lowercase().replace("%2e", ".");
            lower == "." || lower == ".."
        })
    };
    let pieces = [
        "", ".", "..", "...", "%2e", "%2E", "%2", "%", "2e", "a", "/", "%2e.", ".%2E", ";", "%25",
        "%3b",
    ];
    for a in pieces {
        for b in pieces {
            for c in pieces {
                let rest = format!("{a}{b}{c}");
                if reference(&rest) {
                    assert!(check_path(&rest).is_err(), "{rest:?}");
                }
            }
        }
    }
}

#[test]
fn path_rule_keeps_ordinary_paths() {
    for good in [
        "",
        "/",
        "/a/b/c",
        "/a/.b/c..",
        "/...",
        "/a;b=c/d",
        "/%41%42",
        "/a%20b",
        "/100%",
        "/%zz",
        "/%2",
        "/file.tar.gz",
        "/a/..b",
    ] {
        assert!(check_path(good).is_ok(), "{good}");
    }
}

#[test]
fn host_rule_and_connect() {
    let mut h = HeaderMap::new();
    assert!(check_request_head(&Method::GET, Version::HTTP_11, &h, None).is_err());
    assert!(check_request_head(&Method::GET, Version::HTTP_10, &h, None).is_ok());
    h.append(header::HOST, HeaderValue::from_static("a"));
    assert!(check_request_head(&Method::GET, Version::HTTP_11, &h, None).is_ok());
    h.append(header::HOST, HeaderValue::from_static("a"));
    assert!(check_request_head(&Method::GET, Version::HTTP_11, &h, None).is_err());
    let one = HeaderMap::new();
    assert_eq!(
        check_request_head(&Method::CONNECT, Version::HTTP_2, &one, None)
            .unwrap_err()
            .status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[test]
fn only_valid_websocket_handshakes_upgrade() {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONNECTION,
        HeaderValue::from_static("keep-alive, Upgrade"),
    );
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
    h.insert(
        SEC_WEBSOCKET_KEY,
        HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
    );
    assert!(is_websocket_upgrade(&Method::GET, Version::HTTP_11, &h));
    assert!(!is_websocket_upgrade(&Method::POST, Version::HTTP_11, &h));
    let mut h2c = h.clone();
    h2c.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
    assert!(!is_websocket_upgrade(&Method::GET, Version::HTTP_11, &h2c));
    let mut bad_key = h.clone();
    bad_key.insert(SEC_WEBSOCKET_KEY, HeaderValue::from_static("short"));
    assert!(!is_websocket_upgrade(
        &Method::GET,
        Version::HTTP_11,
        &bad_key
    ));
    let mut two = h.clone();
    two.append(header::UPGRADE, HeaderValue::from_static("h2c"));
    assert!(!is_websocket_upgrade(&Method::GET, Version::HTTP_11, &two));
}

#[test]
fn responses_outside_the_rules() {
    assert!(check_response_status(StatusCode::OK, false).is_ok());
    assert!(check_response_status(StatusCode::SWITCHING_PROTOCOLS, true).is_ok());
    assert!(check_response_status(StatusCode::SWITCHING_PROTOCOLS, false).is_err());
    let odd = StatusCode::from_u16(600).unwrap();
    assert!(check_response_status(odd, false).is_err());
}

#[test]
fn cookies_are_joined() {
    let mut h = HeaderMap::new();
    h.append(header::COOKIE, HeaderValue::from_static("a=1"));
    h.append(header::COOKIE, HeaderValue::from_static("b=2"));
    join_cookies(&mut h);
    assert_eq!(h.get_all(header::COOKIE).iter().count(), 1);
    assert_eq!(h[header::COOKIE], "a=1; b=2");
}

#[test]
fn host_values_are_host_names_or_addresses_with_a_port() {
    for good in [
        "",
        "gw.test",
        "gw.test:8080",
        "GW-1.example.COM",
        "svc_a.internal",
        "~user.example",
        "127.0.0.1",
        "127.0.0.1:65535",
        "[::1]",
        "[2001:db8::1]:443",
        "1:0",
    ] {
        assert!(is_valid_host(good.as_bytes()), "{good}");
    }
    for bad in [
        "a b",
        "a,b",
        "gw.test, evil.example",
        "evil.example/path",
        "evil.example\\x",
        "x:1@y",
        "user@gw.test",
        "gw%2etest",
        "a;b=c",
        "h:",
        ":80",
        "gw.test:65536",
        "gw.test:123456",
        "gw.test:+80",
        "gw.test:80:80",
        "[::1",
        "[::1]x",
        "[v1.fe]",
        "[gw.test]",
        "::1",
        "é.example",
        "a\tb",
    ] {
        assert!(!is_valid_host(bad.as_bytes()), "{bad}");
    }
    assert!(!is_valid_host(&[b'a'; 254]));
    assert!(is_valid_host(&[b'a'; 253]));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]
    /// The one-pass Host check reads every value as the general shape does.
    #[test]
    fn the_host_fast_path_agrees_with_the_general_shape(
        value in "[a-z0-9.:_~\\[\\]@,%/ -]{0,12}|[0-9:]{0,8}|[a]{250,256}(:[0-9]{0,6})?"
    ) {
        let general = value.is_empty()
            || authority_shape(value.as_bytes(), |b| HOST_NAME_BYTE[b as usize]);
        proptest::prop_assert_eq!(is_valid_host(value.as_bytes()), general, "{:?}", value);
    }
}

#[test]
fn a_remembered_host_gives_every_value_its_own_verdict() {
    let long_valid = "a".repeat(REMEMBERED_HOST + 1);
    let values = [
        "gw.test",
        "gw.test",
        "a,b",
        "gw.test",
        "a,b",
        "",
        "",
        "h:",
        "[::1]",
        "[::1]x",
        &long_valid,
        "a b",
        &long_valid,
    ];
    for value in values {
        assert_eq!(
            is_valid_host_remembered(value.as_bytes()),
            is_valid_host(value.as_bytes()),
            "{value:?}"
        );
    }
    LAST_VALID_HOST.with(|last| assert_eq!(last.borrow().as_slice(), b"[::1]"));
}

#[test]
fn an_invalid_host_is_refused_in_every_version_and_a_bad_authority_too() {
    for version in [Version::HTTP_10, Version::HTTP_11, Version::HTTP_2] {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("a,b"));
        assert_eq!(
            check_request_head(&Method::GET, version, &h, None),
            Err(Refusal::BadRequest(BAD_HOST)),
            "{version:?}"
        );
    }
    let mut valid_host = HeaderMap::new();
    valid_host.insert(header::HOST, HeaderValue::from_static("gw.test"));
    let check =
        |authority| check_request_head(&Method::GET, Version::HTTP_11, &valid_host, authority);
    assert!(check(None).is_ok());
    assert!(check(Some("gw.test:443")).is_ok());
    for bad in ["", "user@gw.test", "a,b"] {
        assert_eq!(
            check(Some(bad)),
            Err(Refusal::BadRequest(BAD_AUTHORITY)),
            "{bad}"
        );
    }
}

#[test]
fn plain_authorities() {
    for good in [
        "gw.example",
        "gw.example:8443",
        "127.0.0.1:80",
        "[::1]:8443",
        "[::1]",
    ] {
        assert!(is_plain_authority(good), "{good}");
    }
    for bad in [
        "",
        "evil.example/path",
        "a b",
        "x:99999999",
        "::1",
        "a@b",
        "h:",
    ] {
        assert!(!is_plain_authority(bad), "{bad}");
    }
}
