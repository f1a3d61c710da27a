use super::*;

/// Feeds `stream` cut at `cuts` (sorted offsets) and returns the verdict, the
/// heads seen and the final phase.
pub(super) fn verdict_split(stream: &[u8], cuts: &[usize]) -> (Result<(), Violation>, u64, Phase) {
    let mut gate = Gate::new();
    let mut start = 0;
    let mut result = Ok(());
    for &cut in cuts.iter().chain(std::iter::once(&stream.len())) {
        let cut = cut.clamp(start, stream.len());
        result = gate.feed(&stream[start..cut]);
        start = cut;
        if result.is_err() {
            break;
        }
    }
    (result, gate.heads(), gate.phase())
}

fn verdict(stream: &[u8]) -> (Result<(), Violation>, u64, Phase) {
    verdict_split(stream, &[])
}

/// The gate's verdict is the same whole, at every single cut, and byte by byte.
fn assert_split_invariant(stream: &[u8]) -> (Result<(), Violation>, u64, Phase) {
    let whole = verdict(stream);
    for k in 0..=stream.len() {
        assert_eq!(
            verdict_split(stream, &[k]),
            whole,
            "cut at {k} of {:?}",
            show(stream)
        );
    }
    let every: Vec<usize> = (1..stream.len()).collect();
    assert_eq!(
        verdict_split(stream, &every),
        whole,
        "byte by byte {:?}",
        show(stream)
    );
    whole
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `head` (one request head) is refused with `want` by `check_head` and by the
/// gate, however it is split.
fn refused_head(head: &[u8], want: Violation) {
    assert_eq!(check_head(head), Err(want), "check_head {:?}", show(head));
    let (got, _, phase) = assert_split_invariant(head);
    assert_eq!(got, Err(want), "gate {:?}", show(head));
    assert_eq!(phase, Phase::Failed(want));
}

/// A head built from field lines (each without CRLF).
fn head_with(request_line: &str, fields: &[&[u8]]) -> Vec<u8> {
    let mut head = request_line.as_bytes().to_vec();
    head.extend_from_slice(b"\r\n");
    for field in fields {
        head.extend_from_slice(field);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
}

fn get_with(fields: &[&[u8]]) -> Vec<u8> {
    head_with("GET / HTTP/1.1", fields)
}

/// A stream is refused with `want`, however it is split.
fn refused_stream(stream: &[u8], want: Violation) {
    let (got, _, _) = assert_split_invariant(stream);
    assert_eq!(got, Err(want), "{:?}", show(stream));
}

const CHUNKED: &[u8] = b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";

fn chunked_body(body: &[u8]) -> Vec<u8> {
    let mut s = CHUNKED.to_vec();
    s.extend_from_slice(body);
    s
}

// ---- happy paths ----

#[test]
fn pipelined_requests_with_every_framing() {
    let mut stream = Vec::new();
    stream.extend_from_slice(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    stream.extend_from_slice(b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
    stream.extend_from_slice(&chunked_body(
        b"5;name=value\r\nhello\r\nA;a;b=\"c d\"\r\n0123456789\r\n0\r\nX-Sum: 1\r\nX-Other:\r\n\r\n",
    ));
    stream.extend_from_slice(b"\r\nGET /c HTTP/1.0\r\n\r\n");
    stream.extend_from_slice(b"GET /d HTTP/1.1\r\nhost: x\r\nContent-Length: 0\r\n\r\n");
    let (result, heads, phase) = assert_split_invariant(&stream);
    assert_eq!(result, Ok(()));
    assert_eq!(heads, 5);
    assert_eq!(phase, Phase::Idle);
}

#[test]
fn phases_follow_the_stream() {
    let mut gate = Gate::new();
    assert_eq!(gate.phase(), Phase::Idle);
    assert_eq!(gate.feed(b"POST / HTTP/1.1\r\nHost: x\r\n"), Ok(()));
    assert_eq!(gate.phase(), Phase::Head);
    assert_eq!(gate.feed(b"Content-Length: 4\r\n\r\nab"), Ok(()));
    assert_eq!(gate.phase(), Phase::Body);
    assert_eq!(gate.feed(b"cd"), Ok(()));
    assert_eq!(gate.phase(), Phase::Idle);
    assert_eq!(gate.heads(), 1);
}

#[test]
fn check_head_reports_framing() {
    let framing = |h: &[u8]| check_head(h).map(|f| (f.body, f.switch, f.http10));
    assert_eq!(
        framing(&get_with(&[b"Host: x"])),
        Ok((Body::Empty, None, false))
    );
    assert_eq!(
        framing(&get_with(&[b"Host: x", b"Content-Length: 42"])),
        Ok((Body::Length(42), None, false))
    );
    assert_eq!(
        framing(&get_with(&[
            b"Host: x",
            b"Transfer-Encoding: gzip",
            b"transfer-encoding: CHUNKED"
        ])),
        Ok((Body::Chunked, None, false))
    );
    assert_eq!(
        framing(b"GET / HTTP/1.0\r\n\r\n"),
        Ok((Body::Empty, None, true))
    );
    assert_eq!(
        framing(&get_with(&[
            b"Host: x",
            b"Upgrade: websocket",
            b"Connection: keep-alive, Upgrade"
        ])),
        Ok((Body::Empty, Some(Switch::Upgrade), false))
    );
    assert_eq!(
        framing(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
        Ok((Body::Empty, Some(Switch::Connect), false))
    );
    // Upgrade without `Connection: upgrade` is not a switch.
    assert_eq!(
        framing(&get_with(&[
            b"Host: x",
            b"Upgrade: h2c",
            b"Connection: keep-alive"
        ])),
        Ok((Body::Empty, None, false))
    );
    assert_eq!(
        framing(b"\r\n\r\nGET / HTTP/1.0\r\n\r\n"),
        Ok((Body::Empty, None, true))
    );
}

#[test]
fn accepted_field_shapes() {
    for field in [
        &b"X-Empty:"[..],
        b"X-Spaces:   a  b  ",
        b"X-Tab:\tvalue\t",
        b"X-Obs-Text: caf\xc3\xa9",
        b"X-Quote: \"a, b\" ; q=1",
        b"!#$%&'*+-.^_`|~09azAZ: token chars",
        b"Content-Length: 000",
    ] {
        let head = get_with(&[b"Host: x", field]);
        assert!(check_head(&head).is_ok(), "{:?}", show(&head));
        assert_eq!(assert_split_invariant(&head).0, Ok(()));
    }
}

#[test]
fn up_to_two_empty_lines_before_a_request() {
    let one = b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let two = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(assert_split_invariant(one), (Ok(()), 1, Phase::Idle));
    assert_eq!(assert_split_invariant(two), (Ok(()), 2, Phase::Idle));
}

#[test]
fn sixteen_hex_digits_are_a_valid_size() {
    let mut gate = Gate::new();
    assert_eq!(
        gate.feed(&chunked_body(
            b"000000000000000A\r\n0123456789\r\n0\r\n\r\n"
        )),
        Ok(())
    );
    assert_eq!(gate.phase(), Phase::Idle);
    let mut gate = Gate::new();
    assert_eq!(gate.feed(&chunked_body(b"FFFFFFFFFFFFFFFF\r\nabc")), Ok(()));
    assert_eq!(gate.phase(), Phase::Body);
}

#[test]
fn upgrade_after_body_stops_checking() {
    let mut stream =
        b"POST /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\
        Content-Length: 3\r\n\r\nabc"
            .to_vec();
    let mut gate = Gate::new();
    gate.feed(&stream).expect("valid");
    assert_eq!(gate.switched(), Some(Switch::Upgrade));
    stream.extend_from_slice(b"\n\r\x00anything at all");
    let (result, heads, phase) = assert_split_invariant(&stream);
    assert_eq!(
        (result, heads, phase),
        (Ok(()), 1, Phase::Switched(Switch::Upgrade))
    );
}

#[test]
fn connect_switches_after_head() {
    let stream = b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n\x16\x03\x01\n\n";
    let (result, _, phase) = assert_split_invariant(stream);
    assert_eq!((result, phase), (Ok(()), Phase::Switched(Switch::Connect)));
}

#[test]
fn resume_only_before_any_switched_byte() {
    let head = b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n";
    let mut gate = Gate::new();
    gate.feed(head).expect("valid");
    assert!(gate.resume());
    assert_eq!(gate.phase(), Phase::Idle);
    assert_eq!(
        gate.feed(b"GET / HTTP/1.1\nHost: x\r\n\r\n"),
        Err(Violation::BareLf)
    );

    let mut gate = Gate::new();
    gate.feed(head).expect("valid");
    gate.feed(b"x").expect("switched");
    assert!(!gate.resume());
    assert!(!Gate::new().resume());
}

#[test]
fn gate_stays_failed() {
    let mut gate = Gate::new();
    assert_eq!(
        gate.feed(b"GET / HTTP/1.1\r\nHost : x\r\n\r\n"),
        Err(Violation::WhitespaceBeforeColon)
    );
    assert_eq!(
        gate.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        Err(Violation::WhitespaceBeforeColon)
    );
    assert_eq!(gate.feed(b""), Err(Violation::WhitespaceBeforeColon));
    assert_eq!(gate.violation(), Some(Violation::WhitespaceBeforeColon));
}

#[test]
fn clean_len_stops_at_the_offending_unit() {
    let good = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut read = good.to_vec();
    read.extend_from_slice(b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n");
    let refusal = Gate::new().feed_counted(&read).expect_err("duplicate host");
    assert_eq!(
        refusal,
        Refusal {
            violation: Violation::DuplicateHost,
            clean_len: good.len()
        }
    );

    // A head begun in an earlier feed: nothing of this feed is clean.
    let mut gate = Gate::new();
    gate.feed(b"GET / HTTP/1.1\r\n").expect("partial");
    let refusal = gate
        .feed_counted(b"Host: x\r\n X\r\n\r\n")
        .expect_err("fold");
    assert_eq!(refusal.clean_len, 0);

    // Chunk data is clean up to the bad size line.
    let mut gate = Gate::new();
    gate.feed(CHUNKED).expect("head");
    let refusal = gate.feed_counted(b"2\r\nab\r\n-1\r\n").expect_err("sign");
    assert_eq!(
        refusal,
        Refusal {
            violation: Violation::InvalidChunkSize,
            clean_len: 7
        }
    );

    // Data without its CRLF: the data is clean, the next byte is not.
    let mut gate = Gate::new();
    gate.feed(CHUNKED).expect("head");
    let refusal = gate.feed_counted(b"2\r\nabc").expect_err("unterminated");
    assert_eq!(refusal.clean_len, 5);
}

// ---- request heads ----

#[test]
fn bare_lf_is_refused() {
    refused_head(b"GET / HTTP/1.1\nHost: x\r\n\r\n", Violation::BareLf);
    refused_head(b"GET / HTTP/1.1\r\nHost: x\n\r\n", Violation::BareLf);
    refused_head(b"GET / HTTP/1.1\r\nHost: x\r\n\n", Violation::BareLf);
    refused_head(
        b"GET / HTTP/1.1\r\nHost: x\r\nX: a\nb\r\n\r\n",
        Violation::BareLf,
    );
    refused_head(b"\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", Violation::BareLf);
}

#[test]
fn bare_cr_is_refused() {
    refused_head(b"GET / HTTP/1.1\rHost: x\r\n\r\n", Violation::BareCr);
    refused_head(b"GET / HTTP/1.1\r\nHost: x\ry\r\n\r\n", Violation::BareCr);
    refused_head(b"GET / HTTP/1.1\r\nHost: x\r\n\r\r\n", Violation::BareCr);
    refused_head(b"GET /\r HTTP/1.1\r\nHost: x\r\n\r\n", Violation::BareCr);
    refused_head(b"\r\rGET / HTTP/1.1\r\nHost: x\r\n\r\n", Violation::BareCr);
}

#[test]
fn obs_fold_is_refused() {
    refused_head(
        &get_with(&[b"Host: x", b"X: a", b" continued"]),
        Violation::ObsFold,
    );
    refused_head(
        &get_with(&[b"Host: x", b"X: a", b"\tcontinued"]),
        Violation::ObsFold,
    );
    refused_head(&get_with(&[b" Host: x"]), Violation::ObsFold);
    refused_head(&get_with(&[b"Host: x", b"\t"]), Violation::ObsFold);
}

#[test]
fn whitespace_before_colon_is_refused() {
    refused_head(&get_with(&[b"Host : x"]), Violation::WhitespaceBeforeColon);
    refused_head(
        &get_with(&[b"Host: x", b"Content-Length\t: 1"]),
        Violation::WhitespaceBeforeColon,
    );
    refused_head(
        &get_with(&[b"Host: x", b"Transfer-Encoding \t : chunked"]),
        Violation::WhitespaceBeforeColon,
    );
}

#[test]
fn bad_field_names_are_refused() {
    for field in [
        &b": empty name"[..],
        b"Ho(st: x",
        b"Ho\x00st: x",
        b"H\x01: x",
        b"H\xc3\xb6st: x",
        b"NoColonAtAll",
        b"Two words: x",
        b"X\x7f: x",
    ] {
        refused_head(&get_with(&[b"Host: x", field]), Violation::InvalidFieldName);
    }
}

#[test]
fn ctl_in_field_values_is_refused() {
    for field in [
        &b"X: a\x00b"[..],
        b"X: \x01",
        b"X: a\x7f",
        b"X: \x1b[31m",
        b"Host: x\x00",
    ] {
        refused_head(
            &head_with("GET / HTTP/1.1", &[field]),
            Violation::InvalidFieldValue,
        );
    }
}

#[test]
fn malformed_request_lines_are_refused() {
    for line in [
        "GET  / HTTP/1.1",
        "GET /  HTTP/1.1",
        " GET / HTTP/1.1",
        "GET / HTTP/1.1 ",
        "GET\t/ HTTP/1.1",
        "G(T / HTTP/1.1",
        "GET / HTTP/1.2",
        "GET / HTTP/2.0",
        "GET / http/1.1",
        "GET /",
        "GET / HTTP/1.1 extra",
        "/ HTTP/1.1",
    ] {
        refused_head(
            &head_with(line, &[b"Host: x"]),
            Violation::InvalidRequestLine,
        );
    }
    refused_head(
        b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n",
        Violation::InvalidRequestLine,
    );
    refused_head(
        b"GET /a\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
        Violation::InvalidRequestLine,
    );
}

#[test]
fn length_with_transfer_encoding_is_refused() {
    let want = Violation::LengthWithTransferEncoding;
    refused_head(
        &get_with(&[
            b"Host: x",
            b"Content-Length: 5",
            b"Transfer-Encoding: chunked",
        ]),
        want,
    );
    refused_head(
        &get_with(&[
            b"Host: x",
            b"Transfer-Encoding: chunked",
            b"Content-Length: 5",
        ]),
        want,
    );
    refused_head(
        &get_with(&[
            b"Host: x",
            b"transfer-encoding: chunked",
            b"content-length: 0",
        ]),
        want,
    );
}

#[test]
fn bad_content_lengths_are_refused() {
    for value in [
        &b"+5"[..],
        b"-1",
        b"0x10",
        b"5, 5",
        b"5,6",
        b"",
        b"5 5",
        b"5a",
        b"1e3",
        b"99999999999999999999999",
    ] {
        let mut field = b"Content-Length: ".to_vec();
        field.extend_from_slice(value);
        refused_head(
            &get_with(&[b"Host: x", &field]),
            Violation::InvalidContentLength,
        );
    }
}

#[test]
fn two_content_lengths_are_refused() {
    let want = Violation::DuplicateContentLength;
    refused_head(
        &get_with(&[b"Host: x", b"Content-Length: 5", b"Content-Length: 5"]),
        want,
    );
    refused_head(
        &get_with(&[b"Host: x", b"Content-Length: 5", b"content-length: 6"]),
        want,
    );
    refused_head(
        &get_with(&[b"Content-Length: 0", b"Host: x", b"CONTENT-LENGTH: 0"]),
        want,
    );
}

#[test]
fn bad_transfer_encodings_are_refused() {
    let cases: [&[&str]; 11] = [
        &["Transfer-Encoding: gzip"],
        &["Transfer-Encoding: chunked, gzip"],
        &["Transfer-Encoding: chunked, chunked"],
        &["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"],
        &["Transfer-Encoding: chunked", "Transfer-Encoding: gzip"],
        &["Transfer-Encoding: chunked;x=1"],
        &["Transfer-Encoding: identity"],
        &["Transfer-Encoding: chunked,"],
        &["Transfer-Encoding: , chunked"],
        &["Transfer-Encoding:"],
        &["Transfer-Encoding: \"chunked\""],
    ];
    for fields in cases {
        let mut all: Vec<&[u8]> = vec![b"Host: x"];
        all.extend(fields.iter().map(|f| f.as_bytes()));
        refused_head(&get_with(&all), Violation::InvalidTransferEncoding);
    }
}

#[test]
fn transfer_encoding_in_http10_is_refused() {
    let want = Violation::TransferEncodingInHttp10;
    refused_head(
        &head_with("POST / HTTP/1.0", &[b"Transfer-Encoding: chunked"]),
        want,
    );
    refused_head(
        &head_with(
            "POST / HTTP/1.0",
            &[b"Host: x", b"transfer-encoding: gzip, chunked"],
        ),
        want,
    );
    refused_head(
        &head_with("GET / HTTP/1.0", &[b"Transfer-Encoding: gzip"]),
        want,
    );
}

#[test]
fn missing_host_is_refused_in_http11() {
    refused_head(&get_with(&[]), Violation::MissingHost);
    refused_head(&get_with(&[b"Hosts: x"]), Violation::MissingHost);
    refused_head(
        &head_with("POST / HTTP/1.1", &[b"X-Host: x", b"Content-Length: 0"]),
        Violation::MissingHost,
    );
}

#[test]
fn duplicate_host_is_refused() {
    refused_head(
        &get_with(&[b"Host: x", b"Host: x"]),
        Violation::DuplicateHost,
    );
    refused_head(
        &get_with(&[b"Host: x", b"host: y"]),
        Violation::DuplicateHost,
    );
    refused_head(
        &head_with("GET / HTTP/1.0", &[b"HOST: a", b"Host: b"]),
        Violation::DuplicateHost,
    );
}

#[test]
fn heads_over_64_kib_are_refused() {
    let big = vec![b'a'; MAX_HEAD];
    let mut field = b"X: ".to_vec();
    field.extend_from_slice(&big);
    let head = get_with(&[b"Host: x", &field]);
    assert_eq!(check_head(&head), Err(Violation::HeadTooLarge));
    for cuts in [&[][..], &[1, 20, 30_000], &[MAX_HEAD - 1, MAX_HEAD]] {
        assert_eq!(verdict_split(&head, cuts).0, Err(Violation::HeadTooLarge));
    }

    let many: Vec<Vec<u8>> = (0..5000)
        .map(|i| format!("X-{i}: 0123456789").into_bytes())
        .collect();
    let refs: Vec<&[u8]> = many.iter().map(Vec::as_slice).collect();
    assert_eq!(verdict(&get_with(&refs)).0, Err(Violation::HeadTooLarge));

    // A head that never ends is refused once it passes the limit.
    let mut gate = Gate::new();
    gate.feed(b"GET / HTTP/1.1\r\nX: ").expect("partial");
    let mut result = Ok(());
    for _ in 0..100 {
        result = gate.feed(&[b'a'; 1024]);
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result, Err(Violation::HeadTooLarge));
}

#[test]
fn a_head_of_exactly_64_kib_is_accepted() {
    let base = get_with(&[b"Host: x", b"X: "]);
    let pad = MAX_HEAD - base.len();
    let mut field = b"X: ".to_vec();
    field.extend(std::iter::repeat_n(b'a', pad));
    let head = get_with(&[b"Host: x", &field]);
    assert_eq!(head.len(), MAX_HEAD);
    assert!(check_head(&head).is_ok());
    assert_eq!(verdict(&head), (Ok(()), 1, Phase::Idle));
}

#[test]
fn too_many_empty_lines_are_refused() {
    let want = Violation::TooManyEmptyLines;
    refused_head(b"\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", want);
    refused_stream(
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
        want,
    );
    refused_stream(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\na\r\n\r\n\r\n",
        want,
    );
}

#[test]
fn check_head_wants_exactly_one_head() {
    assert_eq!(
        check_head(b"GET / HTTP/1.1\r\nHost: x\r\n"),
        Err(Violation::NotOneHead)
    );
    assert_eq!(
        check_head(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody"),
        Err(Violation::NotOneHead)
    );
    assert_eq!(
        check_head(b"GET / HTTP/1.1\r\nHost: x\r\n\r"),
        Err(Violation::NotOneHead)
    );
    assert_eq!(check_head(b""), Err(Violation::NotOneHead));
}

// ---- chunked bodies ----

#[test]
fn bad_chunk_sizes_are_refused() {
    for line in [
        &b"0x5\r\n"[..],
        b"-5\r\n",
        b"+5\r\n",
        b" 5\r\n",
        b"5 \r\n",
        b"5 ;ext\r\n",
        b"g\r\n",
        b"\r\n",
        b";ext\r\n",
        b"5\t\r\n",
    ] {
        refused_stream(&chunked_body(line), Violation::InvalidChunkSize);
    }
}

#[test]
fn overlong_chunk_sizes_are_refused() {
    refused_stream(
        &chunked_body(b"00000000000000005\r\n"),
        Violation::ChunkSizeTooLong,
    );
    refused_stream(
        &chunked_body(b"1ffffffffffffffff\r\n"),
        Violation::ChunkSizeTooLong,
    );
    refused_stream(
        &chunked_body(b"ffffffffffffffffffff\r\n"),
        Violation::ChunkSizeTooLong,
    );
}

#[test]
fn bare_lf_in_size_lines_is_refused() {
    refused_stream(&chunked_body(b"5\nhello\r\n0\r\n\r\n"), Violation::BareLf);
    refused_stream(&chunked_body(b"5;ext\nhello\r\n"), Violation::BareLf);
    refused_stream(&chunked_body(b"\n"), Violation::BareLf);
    refused_stream(&chunked_body(b"5\r\nhello\r\n0\n\r\n"), Violation::BareLf);
}

#[test]
fn bare_cr_in_size_lines_is_refused() {
    refused_stream(&chunked_body(b"5\rhello\r\n"), Violation::BareCr);
    refused_stream(&chunked_body(b"5;a\r\r\n"), Violation::BareCr);
    refused_stream(&chunked_body(b"0\r0\r\n"), Violation::BareCr);
}

#[test]
fn bad_chunk_extensions_are_refused() {
    let want = Violation::InvalidChunkExtension;
    refused_stream(&chunked_body(b"5;a\x00\r\n"), want);
    refused_stream(&chunked_body(b"5;\x01\r\n"), want);
    refused_stream(&chunked_body(b"5;a=\x7f\r\n"), want);
    let mut long = b"5;".to_vec();
    long.extend(std::iter::repeat_n(b'a', 5000));
    long.extend_from_slice(b"\r\n");
    refused_stream(&chunked_body(&long), want);
}

#[test]
fn chunk_data_without_crlf_is_refused() {
    let want = Violation::ChunkDataNotTerminated;
    refused_stream(&chunked_body(b"3\r\nabcd\r\n"), want);
    refused_stream(&chunked_body(b"3\r\nabc\n0\r\n\r\n"), want);
    refused_stream(&chunked_body(b"3\r\nabc0\r\n\r\n"), want);
    refused_stream(&chunked_body(b"3\r\nabc\rX"), want);
}

#[test]
fn trailers_follow_field_line_rules() {
    refused_stream(
        &chunked_body(b"0\r\nX : a\r\n\r\n"),
        Violation::WhitespaceBeforeColon,
    );
    refused_stream(
        &chunked_body(b"0\r\nX: a\r\n b\r\n\r\n"),
        Violation::ObsFold,
    );
    refused_stream(&chunked_body(b"0\r\nX: a\nb\r\n\r\n"), Violation::BareLf);
    refused_stream(
        &chunked_body(b"0\r\nX: \x00\r\n\r\n"),
        Violation::InvalidFieldValue,
    );
    refused_stream(
        &chunked_body(b"0\r\n: a\r\n\r\n"),
        Violation::InvalidFieldName,
    );
    refused_stream(&chunked_body(b"0\r\nX: a\rb\r\n\r\n"), Violation::BareCr);
}

#[test]
fn huge_trailers_are_refused() {
    let mut body = b"0\r\nX: ".to_vec();
    body.extend(std::iter::repeat_n(b'a', MAX_HEAD));
    body.extend_from_slice(b"\r\n\r\n");
    assert_eq!(
        verdict(&chunked_body(&body)).0,
        Err(Violation::TrailersTooLarge)
    );
}

#[test]
fn reasons_are_distinct_and_match_display() {
    let all = [
        Violation::BareLf,
        Violation::BareCr,
        Violation::TooManyEmptyLines,
        Violation::ObsFold,
        Violation::WhitespaceBeforeColon,
        Violation::InvalidFieldName,
        Violation::InvalidFieldValue,
        Violation::InvalidRequestLine,
        Violation::LengthWithTransferEncoding,
        Violation::InvalidContentLength,
        Violation::DuplicateContentLength,
        Violation::InvalidTransferEncoding,
        Violation::TransferEncodingInHttp10,
        Violation::MissingHost,
        Violation::DuplicateHost,
        Violation::HeadTooLarge,
        Violation::NotOneHead,
        Violation::InvalidChunkSize,
        Violation::ChunkSizeTooLong,
        Violation::InvalidChunkExtension,
        Violation::ChunkDataNotTerminated,
        Violation::TrailersTooLarge,
    ];
    let reasons: std::collections::HashSet<_> = all.iter().map(Violation::reason).collect();
    assert_eq!(reasons.len(), all.len());
    for v in all {
        assert_eq!(v.to_string(), v.reason());
    }
}
