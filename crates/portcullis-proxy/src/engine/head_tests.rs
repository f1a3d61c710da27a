use super::*;
use crate::h1gate::Body;
use http::header::CONTENT_LENGTH;

fn request(bytes: &[u8]) -> Result<Option<RequestHead>, RequestHeadError> {
    parse_request(&mut BytesMut::from(bytes))
}

fn response(bytes: &[u8], method: Method) -> Result<Option<ResponseHead>, BadResponse> {
    parse_response(&mut BytesMut::from(bytes), &method)
}

#[test]
fn a_request_head_is_split_off_and_the_rest_stays() {
    let mut buf = BytesMut::from(
        &b"POST /a?b=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nX-A: 1\r\nx-a: 2\r\n\r\nabcGET"
            [..],
    );
    let head = parse_request(&mut buf).unwrap().unwrap();
    assert_eq!(&buf[..], b"abcGET");
    assert_eq!(head.parts.method, Method::POST);
    assert_eq!(head.parts.target.to_string(), "/a?b=1");
    assert_eq!(head.parts.version, Version::HTTP_11);
    assert_eq!(head.framing.body, Body::Length(3));
    let name = http::header::HeaderName::from_static("x-a");
    let values: Vec<_> = head.parts.headers.values(&name).collect();
    assert_eq!(values, [&b"1"[..], b"2"]);
    assert!(!head.expects_continue);
}

#[test]
fn a_partial_head_asks_for_more_and_an_endless_one_is_too_large() {
    assert!(request(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap().is_none());
    let mut long = b"GET / HTTP/1.1\r\nX-Long: ".to_vec();
    long.resize(MAX_HEAD + 10, b'a');
    assert_eq!(request(&long).unwrap_err(), RequestHeadError::TooLarge);
}

#[test]
fn too_many_fields_are_431() {
    let mut head = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..MAX_HEADERS {
        head.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    let err = request(&head).unwrap_err();
    assert_eq!(err.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
}

#[test]
fn strict_rules_name_the_violation() {
    let cases: [(&[u8], Violation); 6] = [
        (b"GET / HTTP/1.1\nHost: x\r\n\r\n", Violation::BareLf),
        (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", Violation::WhitespaceBeforeColon),
        (b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", Violation::ObsFold),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            Violation::LengthWithTransferEncoding,
        ),
        (b"GET / HTTP/1.1\r\n\r\n", Violation::MissingHost),
        (b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", Violation::DuplicateHost),
    ];
    for (bytes, want) in cases {
        assert_eq!(
            request(bytes).unwrap_err(),
            RequestHeadError::Violation(want),
            "{}",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn expect_continue_is_noted_and_still_forwarded() {
    let head =
        request(b"PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n")
            .unwrap()
            .unwrap();
    assert!(head.expects_continue);
    assert!(head.parts.headers.contains(&http::header::EXPECT));
}

#[test]
fn response_framing_follows_rfc_9112() {
    let get = || Method::GET;
    let cases: [(&[u8], Method, ResponseFraming); 6] = [
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
            get(),
            ResponseFraming::Length(5),
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
            Method::HEAD,
            ResponseFraming::Empty,
        ),
        (
            b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
            get(),
            ResponseFraming::Empty,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            get(),
            ResponseFraming::Chunked,
        ),
        (
            b"HTTP/1.1 200 OK\r\n\r\n",
            get(),
            ResponseFraming::UntilClose,
        ),
        (
            b"HTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\n",
            get(),
            ResponseFraming::Empty,
        ),
    ];
    for (bytes, method, want) in cases {
        let head = response(bytes, method).unwrap().unwrap();
        assert_eq!(head.framing, want, "{}", String::from_utf8_lossy(bytes));
    }
}

#[test]
fn length_next_to_chunked_is_removed() {
    let head = response(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        Method::GET,
    )
    .unwrap()
    .unwrap();
    let parts = head.to_parts(0).unwrap();
    assert!(!parts.headers.contains_key(CONTENT_LENGTH));
    assert_eq!(head.framing, ResponseFraming::Chunked);
}

#[test]
fn malformed_responses_are_refused() {
    let cases: [&[u8]; 7] = [
        b"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 099 Low\r\n\r\n",
        b"HTTP/1.1 600 High\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        b"HTTP/2 200 OK\r\n\r\n",
    ];
    for bytes in cases {
        assert!(
            response(bytes, Method::GET).is_err(),
            "{}",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn connection_close_and_http10_close() {
    let head = response(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        Method::GET,
    )
    .unwrap()
    .unwrap();
    assert!(head.closes);
    let head = response(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", Method::GET)
        .unwrap()
        .unwrap();
    assert!(head.closes);
    let head = response(
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
        Method::GET,
    )
    .unwrap()
    .unwrap();
    assert!(!head.closes);
}

/// The fields noted while parsing stand in for map lookups: a head without
/// one must read exactly as the lookup would.
#[test]
fn seen_fields_answer_as_the_lookups_would() {
    let cases: [(&[u8], SeenFields); 4] = [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", SeenFields::default()),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nconnection: close\r\n\r\n",
            SeenFields {
                connection: true,
                ..SeenFields::default()
            },
        ),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nUPGRADE: websocket\r\nConnection: upgrade\r\n\r\n",
            SeenFields {
                connection: true,
                upgrade: true,
                expect: false,
            },
        ),
        (
            b"PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
            SeenFields {
                expect: true,
                ..SeenFields::default()
            },
        ),
    ];
    for (bytes, expected) in cases {
        let head = request(bytes).unwrap().unwrap();
        assert_eq!(head.seen, expected, "{}", String::from_utf8_lossy(bytes));
        assert_eq!(head.expects_continue, expected.expect);
        let headers = &head.parts.headers;
        assert_eq!(
            closes_after_seen(head.parts.version, headers, head.seen.connection),
            closes_after(head.parts.version, &headers.to_map(0))
        );
    }
    for version in [Version::HTTP_10, Version::HTTP_11] {
        let empty = HeaderMap::new();
        assert_eq!(
            closes_after_seen(version, &RequestFields::Map(empty.clone()), false),
            closes_after(version, &empty)
        );
    }
}

/// A head read in pieces takes the thread's field list for each look and
/// gives it back when the head is not whole yet; a whole head keeps it.
#[test]
fn a_partial_head_gives_its_field_list_back() {
    use crate::http::request_fields::kept_field_lists;
    let whole = b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\r\n";
    let kept = kept_field_lists();
    for cut in 1..whole.len() {
        let mut buf = BytesMut::from(&whole[..cut]);
        assert!(matches!(parse_request(&mut buf), Ok(None)), "cut at {cut}");
        assert_eq!(kept_field_lists(), kept.max(1), "cut at {cut}");
    }
    let mut buf = BytesMut::from(&whole[..]);
    let head = parse_request(&mut buf).unwrap().unwrap();
    assert_eq!(kept_field_lists(), kept.max(1) - 1);
    head.parts.headers.recycle();
    assert_eq!(kept_field_lists(), kept.max(1));
}
