//! Property tests for `parse_request`: generated valid requests (random
//! methods, targets, field names and values, no body, Content-Length or
//! chunked) are accepted with exactly the parts generated, and any single
//! PRODUCT.md §9 violation put into them gets that violation named.

use super::*;
use crate::h1gate::Body;
use http::header::HeaderName;
use proptest::prelude::*;

/// How the generated request frames its body.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Framed {
    Nothing,
    Length(u64),
    Chunked,
}

/// A valid request head, as parts.
#[derive(Debug, Clone)]
struct Generated {
    method: String,
    target: String,
    http10: bool,
    /// Always there for HTTP/1.1.
    host: Option<String>,
    /// Field lines other than Host and framing, in order.
    fields: Vec<(String, String)>,
    body: Framed,
    /// Where among `fields` the framing line goes.
    framing_at: prop::sample::Index,
}

impl Generated {
    /// Every field line in order, as (name, value).
    fn field_lines(&self) -> Vec<(String, String)> {
        let mut lines: Vec<(String, String)> = self
            .host
            .iter()
            .map(|host| ("Host".to_string(), host.clone()))
            .collect();
        lines.extend(self.fields.iter().cloned());
        let framing = match self.body {
            Framed::Nothing => None,
            Framed::Length(n) => Some(("Content-Length".to_string(), n.to_string())),
            Framed::Chunked => Some(("Transfer-Encoding".to_string(), "chunked".to_string())),
        };
        if let Some(line) = framing {
            let at = self.framing_at.index(lines.len() + 1);
            lines.insert(at, line);
        }
        lines
    }

    fn head(&self) -> Head {
        let version = if self.http10 { "HTTP/1.0" } else { "HTTP/1.1" };
        let mut lines = vec![format!("{} {} {version}", self.method, self.target).into_bytes()];
        for (name, value) in self.field_lines() {
            lines.push(format!("{name}: {value}").into_bytes());
        }
        Head::new(lines)
    }

    /// The header map `parse_request` should build.
    fn expected_headers(&self) -> HeaderMap {
        self.field_lines()
            .into_iter()
            .map(|(name, value)| {
                (
                    HeaderName::from_bytes(name.as_bytes()).expect("generated name"),
                    HeaderValue::from_str(&value).expect("generated value"),
                )
            })
            .collect()
    }
}

/// A head as lines, each with its own line end, so one can be broken.
#[derive(Debug, Clone)]
struct Head {
    leading: Vec<u8>,
    lines: Vec<Vec<u8>>,
    /// One per line, then the blank line's.
    endings: Vec<&'static [u8]>,
}

impl Head {
    fn new(lines: Vec<Vec<u8>>) -> Head {
        let endings = vec![&b"\r\n"[..]; lines.len() + 1];
        Head {
            leading: Vec::new(),
            lines,
            endings,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = self.leading.clone();
        for (line, ending) in self.lines.iter().zip(&self.endings) {
            out.extend_from_slice(line);
            out.extend_from_slice(ending);
        }
        out.extend_from_slice(self.endings[self.lines.len()]);
        out
    }

    fn push_field(&mut self, line: &str) {
        self.lines.push(line.as_bytes().to_vec());
        self.endings.push(b"\r\n");
    }

    /// Index of a field line (adding one when there is none).
    fn some_field(&mut self, pick: prop::sample::Index) -> usize {
        if self.lines.len() == 1 {
            self.push_field("X-Added: yes");
        }
        1 + pick.index(self.lines.len() - 1)
    }
}

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}"
}

fn generated() -> impl Strategy<Value = Generated> {
    let method = prop_oneof![
        prop::sample::select(vec![
            "GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"
        ])
        .prop_map(str::to_string),
        token(),
    ];
    let target = prop_oneof![
        "/[A-Za-z0-9._~/-]{0,20}(\\?[A-Za-z0-9=&]{0,12})?",
        "http://[a-z]{1,10}\\.test(:[0-9]{1,4})?/[a-z0-9/]{0,12}",
    ];
    let field = (
        "[Xx]-[A-Za-z0-9-]{1,12}",
        "([!-~é]([\t -~é]{0,20}[!-~é])?)?",
    );
    let host = "[a-z]{1,10}(\\.[a-z]{2,5})?(:[0-9]{1,5})?";
    let body = prop_oneof![
        Just(Framed::Nothing),
        (0..=MAX_CONTENT_LENGTH).prop_map(Framed::Length),
        (0u64..100_000).prop_map(Framed::Length),
        Just(Framed::Chunked),
    ];
    (
        method,
        target,
        any::<bool>(),
        prop::option::of(host),
        prop::collection::vec(field, 0..8),
        body,
        any::<prop::sample::Index>(),
    )
        .prop_map(|(method, target, http10, host, fields, body, framing_at)| {
            // HTTP/1.1 needs Host; HTTP/1.0 may not say chunked.
            let host = match (http10, host) {
                (false, None) => Some("example.test".to_string()),
                (_, host) => host,
            };
            let body = if http10 && body == Framed::Chunked {
                Framed::Nothing
            } else {
                body
            };
            Generated {
                method,
                target,
                http10,
                host,
                fields,
                body,
                framing_at,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn generated_requests_are_accepted_as_generated(
        request in generated(),
        after in prop::collection::vec(any::<u8>(), 0..16),
    ) {
        let mut bytes = request.head().bytes();
        bytes.extend_from_slice(&after);
        let mut buf = BytesMut::from(&bytes[..]);
        let head = parse_request(&mut buf);
        let head = match head {
            Ok(Some(head)) => head,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(&bytes)),
        };
        prop_assert_eq!(&buf[..], &after[..], "bytes after the head stay");
        prop_assert_eq!(head.parts.method.as_str(), request.method.as_str());
        prop_assert_eq!(head.parts.target.to_string(), request.target.clone());
        let version = if request.http10 { Version::HTTP_10 } else { Version::HTTP_11 };
        prop_assert_eq!(head.parts.version, version);
        prop_assert_eq!(&head.parts.headers.to_map(0), &request.expected_headers());
        let body = match request.body {
            Framed::Nothing => Body::Empty,
            Framed::Length(n) => Body::Length(n),
            Framed::Chunked => Body::Chunked,
        };
        prop_assert_eq!(head.framing.body, body);
        prop_assert_eq!(head.framing.http10, request.http10);
        prop_assert!(!head.expects_continue);
    }

    #[test]
    fn one_violation_is_refused_and_named(
        request in generated(),
        broken in breakage(),
        pick in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
    ) {
        let (head, want) = broken.apply(&request, pick, at);
        let bytes = head.bytes();
        let verdict = parse_request(&mut BytesMut::from(&bytes[..]));
        prop_assert_eq!(
            verdict.map(|_| ()),
            Err(RequestHeadError::Violation(want)),
            "{:?} in {:?}",
            broken,
            String::from_utf8_lossy(&bytes)
        );
    }
}

/// One §9 violation to put into a valid head.
#[derive(Debug, Clone)]
enum Breakage {
    /// A line (or the blank line) ends in LF alone.
    BareLf,
    /// A CR inside a field value.
    BareCr,
    /// A line that starts with whitespace after a field line.
    ObsFold(&'static str),
    /// Whitespace between a field name and its colon.
    SpaceBeforeColon(&'static str),
    LengthAndChunked,
    DuplicateLength,
    DuplicateHost,
    MissingHost,
    /// Transfer-Encoding whose last coding is not chunked.
    NotChunkedLast(&'static str),
    BadLength(&'static str),
    /// A control character, NUL or DEL inside a field value.
    ControlInValue(u8),
    ControlInName(u8),
    ThreeEmptyLines,
    BadRequestLine(&'static str),
}

fn breakage() -> impl Strategy<Value = Breakage> {
    use Breakage::*;
    prop_oneof![
        Just(BareLf),
        Just(BareCr),
        prop::sample::select(vec![" folded", "\tfolded", " "]).prop_map(ObsFold),
        prop::sample::select(vec![" ", "\t", "  "]).prop_map(SpaceBeforeColon),
        Just(LengthAndChunked),
        Just(DuplicateLength),
        Just(DuplicateHost),
        Just(MissingHost),
        prop::sample::select(vec![
            "chunked, gzip",
            "gzip",
            "identity",
            "xchunked",
            "chunked, chunked"
        ])
        .prop_map(NotChunkedLast),
        prop::sample::select(vec![
            "+5",
            "-5",
            "0x5",
            "5, 5",
            "1 0",
            "",
            "18446744073709551616",
            "9223372036854775808"
        ])
        .prop_map(BadLength),
        prop::sample::select(vec![0u8, 1, 0x0b, 0x1f, 0x7f]).prop_map(ControlInValue),
        prop::sample::select(vec![0u8, 1, b' ', b'"', b'(', b'@', 0x7f, 0xc3])
            .prop_map(ControlInName),
        Just(ThreeEmptyLines),
        prop::sample::select(vec![
            "double-space",
            "HTTP/1.2",
            "HTTP/2.0",
            "http/1.1",
            "no-version"
        ])
        .prop_map(BadRequestLine),
    ]
}

impl Breakage {
    /// The broken head and the violation `parse_request` must name.
    fn apply(
        &self,
        request: &Generated,
        pick: prop::sample::Index,
        at: prop::sample::Index,
    ) -> (Head, Violation) {
        use Breakage::*;
        let mut request = request.clone();
        let mut head = request.head();
        let want = match self {
            BareLf => {
                let line = pick.index(head.endings.len());
                head.endings[line] = b"\n";
                Violation::BareLf
            }
            BareCr => {
                let line = head.some_field(pick);
                let len = head.lines[line].len();
                head.lines[line].insert(len - at.index(2), b'\r');
                Violation::BareCr
            }
            ObsFold(fold) => {
                let line = head.some_field(pick);
                head.lines.insert(line + 1, fold.as_bytes().to_vec());
                head.endings.push(b"\r\n");
                Violation::ObsFold
            }
            SpaceBeforeColon(space) => {
                let line = head.some_field(pick);
                let colon = colon_of(&head.lines[line]);
                head.lines[line].splice(colon..colon, space.bytes());
                Violation::WhitespaceBeforeColon
            }
            ControlInValue(byte) => {
                let line = head.some_field(pick);
                let colon = colon_of(&head.lines[line]);
                let len = head.lines[line].len();
                let inside = colon + 1 + at.index(len - colon);
                head.lines[line].insert(inside, *byte);
                Violation::InvalidFieldValue
            }
            ControlInName(byte) => {
                let line = head.some_field(pick);
                let colon = colon_of(&head.lines[line]);
                let inside = at.index(colon);
                head.lines[line].insert(inside, *byte);
                // At the start of the line a space is obs-fold.
                if *byte == b' ' && inside == 0 {
                    Violation::ObsFold
                } else {
                    Violation::InvalidFieldName
                }
            }
            ThreeEmptyLines => {
                head.leading = b"\r\n\r\n\r\n".to_vec();
                Violation::TooManyEmptyLines
            }
            other => return other.apply_framing(&mut request, at),
        };
        (head, want)
    }

    /// The breakages that change Host or the framing lines.
    fn apply_framing(&self, request: &mut Generated, at: prop::sample::Index) -> (Head, Violation) {
        use Breakage::*;
        let mut extra: Vec<String> = Vec::new();
        let want = match self {
            LengthAndChunked => {
                request.http10 = false;
                request.host.get_or_insert_with(|| "x.test".to_string());
                match request.body {
                    Framed::Chunked => extra.push("Content-Length: 5".to_string()),
                    _ => {
                        request.body = Framed::Length(5);
                        extra.push("Transfer-Encoding: chunked".to_string());
                    }
                }
                Violation::LengthWithTransferEncoding
            }
            DuplicateLength => {
                let n = match request.body {
                    Framed::Length(n) => n,
                    _ => 3,
                };
                request.body = Framed::Length(n);
                extra.push(format!("Content-Length: {n}"));
                Violation::DuplicateContentLength
            }
            DuplicateHost => {
                request.host.get_or_insert_with(|| "x.test".to_string());
                extra.push("hOsT: other.test".to_string());
                Violation::DuplicateHost
            }
            MissingHost => {
                request.http10 = false;
                request.host = None;
                Violation::MissingHost
            }
            NotChunkedLast(codings) => {
                request.http10 = false;
                request.host.get_or_insert_with(|| "x.test".to_string());
                request.body = Framed::Nothing;
                extra.push(format!("Transfer-Encoding: {codings}"));
                Violation::InvalidTransferEncoding
            }
            BadLength(value) => {
                request.body = Framed::Nothing;
                extra.push(format!("Content-Length: {value}"));
                Violation::InvalidContentLength
            }
            BadRequestLine(how) => {
                let mut head = request.head();
                head.lines[0] = broken_request_line(request, how);
                return (head, Violation::InvalidRequestLine);
            }
            _ => unreachable!("apply handles {self:?}"),
        };
        let mut head = request.head();
        for line in extra {
            let line = line.into_bytes();
            let place = 1 + at.index(head.lines.len());
            head.lines.insert(place, line);
            head.endings.push(b"\r\n");
        }
        (head, want)
    }
}

fn colon_of(line: &[u8]) -> usize {
    line.iter()
        .position(|&b| b == b':')
        .expect("a field line has a colon")
}

fn broken_request_line(request: &Generated, how: &str) -> Vec<u8> {
    let version = if request.http10 {
        "HTTP/1.0"
    } else {
        "HTTP/1.1"
    };
    let (method, target) = (&request.method, &request.target);
    match how {
        "double-space" => format!("{method}  {target} {version}"),
        "no-version" => format!("{method} {target}"),
        version => format!("{method} {target} {version}"),
    }
    .into_bytes()
}

// Examples the fuzz targets found (fuzz/regressions/engine_*): fixed here.

#[test]
fn a_content_length_past_i64_is_refused() {
    let head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551615\r\n\r\n";
    assert_eq!(
        parse_request(&mut BytesMut::from(&head[..])).map(|_| ()),
        Err(RequestHeadError::Violation(Violation::InvalidContentLength))
    );
    let largest =
        format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_CONTENT_LENGTH}\r\n\r\n");
    let head = parse_request(&mut BytesMut::from(largest.as_bytes())).expect("largest length");
    assert_eq!(
        head.map(|h| h.framing.body),
        Some(Body::Length(MAX_CONTENT_LENGTH))
    );
}

#[test]
fn response_transfer_codings_hyper_reads_otherwise_are_refused() {
    let refused: [&[u8]; 5] = [
        b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked,\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding:\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: \xff, chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
    ];
    for bytes in refused {
        assert!(
            parse_response(&mut BytesMut::from(bytes), &Method::GET).is_err(),
            "{}",
            String::from_utf8_lossy(bytes)
        );
    }
    let accepted: [&[u8]; 2] = [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip ,\tChunked\r\n\r\n",
    ];
    for bytes in accepted {
        let head = parse_response(&mut BytesMut::from(bytes), &Method::GET);
        assert_eq!(
            head.map(|h| h.map(|h| h.framing)),
            Ok(Some(ResponseFraming::Chunked)),
            "{}",
            String::from_utf8_lossy(bytes)
        );
    }
}

/// Every LF of `head` follows a CR: the full scan the field-position check
/// (`check_line_endings`) stands in for.
fn every_lf_after_cr(head: &[u8]) -> bool {
    head.iter()
        .enumerate()
        .all(|(at, &b)| b != b'\n' || (at > 0 && head[at - 1] == b'\r'))
}

/// Response heads with CR, LF, spaces and tabs sprinkled in.
fn line_ending_heads() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop::sample::select(vec![
        &b"HTTP/1.1 200 OK"[..],
        b"HTTP/1.0 204 No Content",
        b"\r\n",
        b"\n",
        b"\r",
        b" ",
        b"\t",
        b"X-A: 1",
        b"Content-Length: 0",
        b"x:",
        b"Server: n ",
        b"\r\n\r\n",
        b"\n\n",
    ]);
    prop::collection::vec(piece, 1..14).prop_map(|pieces| {
        let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
        for piece in pieces {
            head.extend_from_slice(piece);
        }
        head
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn the_line_ending_check_agrees_with_a_full_scan(head in line_ending_heads()) {
        let mut buf = BytesMut::from(&head[..]);
        let parsed = parse_response(&mut buf, &Method::GET);
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut fields);
        if let Ok(httparse::Status::Complete(len)) = response.parse(&head) {
            let bad_lf = matches!(parsed, Err(BadResponse("bare LF")));
            prop_assert_eq!(bad_lf, !every_lf_after_cr(&head[..len]), "{:?}", String::from_utf8_lossy(&head));
        }
    }
}
