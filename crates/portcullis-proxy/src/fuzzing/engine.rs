//! Fuzz targets for the own engine's head parsers (`engine::head`): never
//! more lenient than httparse in its default (strict) configuration or than
//! hyper, the same verdict whatever the reads, and no panic.

use bytes::BytesMut;
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, EXPECT};
use http::{HeaderMap, Method, StatusCode, Uri, Version};

use super::cuts_from;
use super::hyper_peer::{hyper_client, hyper_server, ClientBody};
use crate::engine::head::{
    parse_request, parse_response, RequestHeadError, ResponseFraming, MAX_HEADERS,
};
use crate::h1gate::{Body, Framing, MAX_HEAD};

// ---------------------------------------------------------- engine_request_head

/// What `parse_request` made of a head, in a form that can be compared.
#[derive(Debug, PartialEq)]
struct RequestSeen {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    framing: Framing,
    expects_continue: bool,
}

/// A verdict of either parser, comparable across ways of feeding it.
#[derive(Debug, PartialEq)]
enum Verdict<T> {
    /// More bytes are needed.
    More,
    /// A head, and how many input bytes followed it.
    Head(T, usize),
    Refused,
}

/// `parse_request` on any bytes: never panics; the same verdict (and head)
/// whole and fed at cuts drawn from the input, as the engine feeds it on
/// partial reads; 431 (`TooLarge`) only for a head over 64 KiB or over 100
/// fields; an unfinished head only while it is within 64 KiB. A head it
/// accepts is accepted whole, with the same method, target, version and
/// field lines, by httparse's default (strict) parser and by hyper's HTTP/1
/// server (configured as the listener configures it), and hyper frames its
/// body the same way (no body, a length, or chunked).
pub fn engine_request_head(data: &[u8]) {
    let shown = || String::from_utf8_lossy(data).into_owned();
    let mut buf = BytesMut::from(data);
    let verdict = parse_request(&mut buf);
    let rest = buf.len();
    let whole = match &verdict {
        Ok(None) => Verdict::More,
        Ok(Some(head)) => Verdict::Head(request_seen(head), rest),
        Err(_) => Verdict::Refused,
    };
    let cuts = cuts_from(data);
    assert_eq!(
        request_in_pieces(data, &cuts),
        whole,
        "feeding {:?} at {cuts:?} changed the verdict",
        shown()
    );
    match &whole {
        Verdict::Head(seen, rest) => {
            let head = &data[..data.len() - rest];
            check_request_httparse(head, seen);
            check_request_hyper(head, seen);
        }
        Verdict::More => assert!(
            data.len() <= MAX_HEAD,
            "{} bytes without a complete head and no refusal",
            data.len()
        ),
        Verdict::Refused => assert!(
            !matches!(verdict, Err(RequestHeadError::TooLarge))
                || data.len() > MAX_HEAD
                || field_lines(data) > MAX_HEADERS,
            "431 for {:?}: neither over 64 KiB nor over 100 fields",
            shown()
        ),
    }
}

fn request_seen(head: &crate::engine::head::RequestHead) -> RequestSeen {
    RequestSeen {
        method: head.parts.method.clone(),
        uri: head.parts.target.to_uri(),
        version: head.parts.version,
        headers: head.parts.headers.to_map(0),
        framing: head.framing,
        expects_continue: head.expects_continue,
    }
}

/// `parse_request` as the engine calls it on partial reads: the buffer grows
/// by the bytes up to each cut, and it is asked again until it decides.
fn request_in_pieces(data: &[u8], cuts: &[usize]) -> Verdict<RequestSeen> {
    let mut buf = BytesMut::new();
    let mut fed = 0;
    for &cut in cuts.iter().chain(std::iter::once(&data.len())) {
        let cut = cut.clamp(fed, data.len());
        buf.extend_from_slice(&data[fed..cut]);
        fed = cut;
        match parse_request(&mut buf) {
            Ok(None) => continue,
            Ok(Some(head)) => {
                return Verdict::Head(request_seen(&head), buf.len() + data.len() - fed)
            }
            Err(_) => return Verdict::Refused,
        }
    }
    Verdict::More
}

/// Field lines before the first empty line (leading empty lines skipped, as
/// httparse skips them), counted by their line ends.
fn field_lines(data: &[u8]) -> usize {
    let mut rest = data;
    while let Some(after) = rest
        .strip_prefix(b"\r\n")
        .or_else(|| rest.strip_prefix(b"\n"))
    {
        rest = after;
    }
    let end = rest
        .windows(2)
        .position(|w| w == b"\n\n" || w == b"\n\r")
        .map_or(rest.len(), |i| i + 1);
    // The request line's end is not a field's.
    rest[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        .saturating_sub(1)
}

/// Field lines as the `http` crate holds them, without the
/// `Expect: 100-continue` the engine answers itself; and whether there was one.
/// The fields as the engine keeps them (`Expect` included: it still goes to
/// the backend), and whether they ask for `100 Continue`.
fn without_continue(fields: impl Iterator<Item = (HeaderName, HeaderValue)>) -> (HeaderMap, bool) {
    let mut headers = HeaderMap::new();
    let mut expects_continue = false;
    for (name, value) in fields {
        expects_continue |=
            name == EXPECT && value.as_bytes().eq_ignore_ascii_case(b"100-continue");
        headers.append(name, value);
    }
    (headers, expects_continue)
}

/// httparse fields as `http` names and values; a field `http` cannot hold is
/// a difference in itself.
fn http_fields(fields: &[httparse::Header<'_>], shown: &str) -> Vec<(HeaderName, HeaderValue)> {
    fields
        .iter()
        .map(|field| {
            let name = HeaderName::from_bytes(field.name.as_bytes());
            let value = HeaderValue::from_bytes(field.value);
            match (name, value) {
                (Ok(name), Ok(value)) => (name, value),
                _ => panic!("the engine accepted {shown:?}, whose field {field:?} http refuses"),
            }
        })
        .collect()
}

fn check_request_httparse(head: &[u8], seen: &RequestSeen) {
    let shown = String::from_utf8_lossy(head).into_owned();
    let mut slots = vec![httparse::EMPTY_HEADER; MAX_HEADERS + 1];
    let mut request = httparse::Request::new(&mut slots);
    let status = httparse::ParserConfig::default().parse_request(&mut request, head);
    assert!(
        matches!(status, Ok(httparse::Status::Complete(n)) if n == head.len()),
        "the engine accepted {shown:?}, strict httparse: {status:?}"
    );
    assert_eq!(
        request.method,
        Some(seen.method.as_str()),
        "method of {shown:?}"
    );
    let uri = request.path.and_then(|path| Uri::try_from(path).ok());
    assert_eq!(uri.as_ref(), Some(&seen.uri), "target of {shown:?}");
    let version = match request.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    assert_eq!(version, seen.version, "version of {shown:?}");
    let (headers, expects_continue) =
        without_continue(http_fields(request.headers, &shown).into_iter());
    assert_eq!(headers, seen.headers, "field lines of {shown:?}");
    assert_eq!(
        expects_continue, seen.expects_continue,
        "Expect of {shown:?}"
    );
}

fn check_request_hyper(head: &[u8], seen: &RequestSeen) {
    let shown = String::from_utf8_lossy(head).into_owned();
    let hyper = match hyper_server(head) {
        Ok(hyper) => hyper,
        Err(refusal) => panic!("the engine accepted {shown:?}, hyper's server refused: {refusal}"),
    };
    assert_eq!(hyper.method, seen.method, "hyper: method of {shown:?}");
    assert_eq!(hyper.uri, seen.uri, "hyper: target of {shown:?}");
    assert_eq!(hyper.version, seen.version, "hyper: version of {shown:?}");
    let (headers, expects_continue) = without_continue(
        hyper
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), value.clone())),
    );
    assert_eq!(headers, seen.headers, "hyper: field lines of {shown:?}");
    assert_eq!(
        expects_continue, seen.expects_continue,
        "hyper: Expect of {shown:?}"
    );
    let ours = match seen.framing.body {
        Body::Empty => Some(0),
        Body::Length(n) => Some(n),
        Body::Chunked => None,
    };
    assert_eq!(hyper.body_length, ours, "hyper: body framing of {shown:?}");
}

// --------------------------------------------------------- engine_response_head

/// What `parse_response` made of a head.
#[derive(Debug, PartialEq)]
struct ResponseSeen {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
    framing: ResponseFraming,
    closes: bool,
}

/// The method the response answers, from the input's first line: `HEAD`
/// for HEAD, anything else GET; the response bytes follow that line.
fn method_and_response(data: &[u8]) -> (Method, &[u8]) {
    let (line, response) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let method = if line == b"HEAD" {
        Method::HEAD
    } else {
        Method::GET
    };
    (method, response)
}

/// `parse_response` on any bytes (line 1 names the request's method, see
/// `method_and_response`): never panics; the same verdict whole and at cuts
/// drawn from the input. A head it accepts is accepted whole, with the same
/// status, version and field lines (less a Content-Length it removed next
/// to chunked), by httparse's default parser and by hyper's HTTP/1 client,
/// which frames the body the same way (no body, a length, chunked, or until
/// the backend closes) and, for a 1xx, reports it as informational and
/// reads the final response after it. It may be stricter than hyper (bare
/// LF, differing lengths, Transfer-Encoding not ending in chunked), never
/// more lenient.
pub fn engine_response_head(data: &[u8]) {
    let (method, response) = method_and_response(data);
    let shown = || String::from_utf8_lossy(response).into_owned();
    let mut buf = BytesMut::from(response);
    let whole = match parse_response(&mut buf, &method) {
        Ok(None) => Verdict::More,
        Ok(Some(head)) => Verdict::Head(response_seen(&head), buf.len()),
        Err(_) => Verdict::Refused,
    };
    let cuts = cuts_from(response);
    assert_eq!(
        response_in_pieces(response, &cuts, &method),
        whole,
        "feeding {:?} at {cuts:?} changed the verdict",
        shown()
    );
    match &whole {
        Verdict::Head(seen, rest) => {
            let head = &response[..response.len() - rest];
            check_response_httparse(head, seen);
            check_response_hyper(head, &method, seen);
        }
        Verdict::More => assert!(response.len() <= MAX_HEAD, "an endless response head"),
        Verdict::Refused => {}
    }
}

fn response_seen(head: &crate::engine::head::ResponseHead) -> ResponseSeen {
    // Every field the strict parse accepts converts to a map entry.
    let parts = head
        .to_parts(0)
        .expect("an accepted head converts to a map");
    ResponseSeen {
        status: parts.status,
        version: parts.version,
        headers: parts.headers,
        framing: head.framing,
        closes: head.closes,
    }
}

fn response_in_pieces(data: &[u8], cuts: &[usize], method: &Method) -> Verdict<ResponseSeen> {
    let mut buf = BytesMut::new();
    let mut fed = 0;
    for &cut in cuts.iter().chain(std::iter::once(&data.len())) {
        let cut = cut.clamp(fed, data.len());
        buf.extend_from_slice(&data[fed..cut]);
        fed = cut;
        match parse_response(&mut buf, method) {
            Ok(None) => continue,
            Ok(Some(head)) => {
                return Verdict::Head(response_seen(&head), buf.len() + data.len() - fed)
            }
            Err(_) => return Verdict::Refused,
        }
    }
    Verdict::More
}

/// The field lines a parser saw, as the engine should hand them on: less
/// Content-Length when the body is chunked.
fn as_relayed(mut headers: HeaderMap, framing: ResponseFraming) -> HeaderMap {
    if framing == ResponseFraming::Chunked {
        headers.remove(CONTENT_LENGTH);
    }
    // Repeated lengths (the engine refuses differing ones) go on as one
    // field holding the number.
    if headers.get_all(CONTENT_LENGTH).iter().count() > 1 {
        let length = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(length) = length {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
        }
    }
    headers
}

fn check_response_httparse(head: &[u8], seen: &ResponseSeen) {
    let shown = String::from_utf8_lossy(head).into_owned();
    let mut slots = vec![httparse::EMPTY_HEADER; MAX_HEADERS + 1];
    let mut response = httparse::Response::new(&mut slots);
    let status = httparse::ParserConfig::default().parse_response(&mut response, head);
    assert!(
        matches!(status, Ok(httparse::Status::Complete(n)) if n == head.len()),
        "the engine accepted {shown:?}, strict httparse: {status:?}"
    );
    assert_eq!(
        response.code,
        Some(seen.status.as_u16()),
        "status of {shown:?}"
    );
    let version = match response.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    assert_eq!(version, seen.version, "version of {shown:?}");
    let headers: HeaderMap = http_fields(response.headers, &shown).into_iter().collect();
    assert_eq!(
        as_relayed(headers, seen.framing),
        seen.headers,
        "field lines of {shown:?}"
    );
}

/// What hyper's client should report for the body: a length it knows, or,
/// for a body with no known end, what it reads from [`BODY_PROBE`].
fn expected_client_body(framing: ResponseFraming) -> ClientBody {
    match framing {
        ResponseFraming::Empty => ClientBody::Exact(0),
        ResponseFraming::Length(n) => ClientBody::Exact(n),
        ResponseFraming::Chunked => ClientBody::Open(Ok(bytes::Bytes::new())),
        ResponseFraming::UntilClose => ClientBody::Open(Ok(bytes::Bytes::from_static(BODY_PROBE))),
    }
}

/// Sent after a head: an empty chunked body, or five bytes of a body that
/// runs until the backend closes. Which of the two hyper reads shows how it
/// framed the body.
const BODY_PROBE: &[u8] = b"0\r\n\r\n";

/// Sent after a 1xx head: hyper's client passes 1xx responses to the
/// informational callback and waits for the final one.
const FINAL_AFTER_1XX: &[u8] = b"HTTP/1.1 204 No Content\r\n\r\n";

fn check_response_hyper(head: &[u8], method: &Method, seen: &ResponseSeen) {
    let shown = String::from_utf8_lossy(head).into_owned();
    let informational =
        seen.status.is_informational() && seen.status != StatusCode::SWITCHING_PROTOCOLS;
    let mut input = head.to_vec();
    input.extend_from_slice(if informational {
        FINAL_AFTER_1XX
    } else {
        BODY_PROBE
    });
    let hyper = match hyper_client(method, &input) {
        Ok(hyper) => hyper,
        Err(refusal) => panic!("the engine accepted {shown:?}, hyper's client refused: {refusal}"),
    };
    if informational {
        // Identical repeated lengths go on as one field in a 1xx as in any
        // head (the engine refuses differing ones).
        let informational: Vec<(StatusCode, HeaderMap)> = hyper
            .informational
            .iter()
            .map(|(status, headers)| (*status, as_relayed(headers.clone(), ResponseFraming::Empty)))
            .collect();
        assert_eq!(
            informational,
            [(seen.status, seen.headers.clone())],
            "hyper: the 1xx {shown:?}"
        );
        assert_eq!(
            hyper.status,
            StatusCode::NO_CONTENT,
            "hyper: after the 1xx {shown:?}"
        );
        return;
    }
    assert!(
        hyper.informational.is_empty(),
        "hyper: {shown:?} informational"
    );
    assert_eq!(hyper.status, seen.status, "hyper: status of {shown:?}");
    assert_eq!(hyper.version, seen.version, "hyper: version of {shown:?}");
    assert_eq!(
        as_relayed(hyper.headers, seen.framing),
        seen.headers,
        "hyper: field lines of {shown:?}"
    );
    assert_eq!(
        hyper.body,
        expected_client_body(seen.framing),
        "hyper: body framing of {shown:?}"
    );
}
