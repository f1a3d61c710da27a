//! Parses raw HTTP/1.1 bytes (what the backend received, what the client
//! received) into messages that can be compared: start line, header list in
//! wire order with names as sent, framing, decoded body, trailers. Lenient on
//! purpose: it must describe whatever an engine wrote, including mistakes,
//! rather than refuse it; anything it cannot read stays as leftover bytes.

use std::fmt;

/// How a message's body was delimited on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body by the rules (no CL/TE on a request, HEAD/1xx/204/304 answers).
    Empty,
    Length(usize),
    Chunked,
    /// A response body delimited by the connection closing.
    UntilClose,
    /// Bytes after a `101`: not HTTP any more.
    Tunnel,
    /// A response whose body never completed: the body is what arrived.
    Incomplete,
}

/// One request or response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Request: method, target, version. Response: version, status, reason.
    pub line: [String; 3],
    pub headers: Vec<(String, String)>,
    pub framing: Framing,
    /// The body with any chunked framing removed.
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
    /// Chunk extensions as `chunk index;extension`, in order.
    pub chunk_extensions: Vec<String>,
}

impl Message {
    pub fn status(&self) -> Option<u16> {
        self.line[1].parse().ok()
    }

    /// Values of header `name` (case-insensitive), in order.
    pub fn values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.values(name)
            .iter()
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", printable(self.line.join(" ").as_bytes(), 200))?;
        for (name, value) in &self.headers {
            writeln!(
                f,
                "  {}: {}",
                printable(name.as_bytes(), 60),
                printable(value.as_bytes(), 100)
            )?;
        }
        write!(
            f,
            "  [{:?}] body {} bytes: {}",
            self.framing,
            self.body.len(),
            printable(&self.body, 80)
        )?;
        for extension in &self.chunk_extensions {
            write!(
                f,
                "\n  chunk extension {}",
                printable(extension.as_bytes(), 60)
            )?;
        }
        for (name, value) in &self.trailers {
            write!(
                f,
                "\n  trailer {}: {}",
                printable(name.as_bytes(), 60),
                printable(value.as_bytes(), 60)
            )?;
        }
        Ok(())
    }
}

/// Bytes as one line of text: escapes for CR, LF, controls and non-ASCII,
/// cut after `max` bytes with the full length noted.
pub fn printable(bytes: &[u8], max: usize) -> String {
    let mut out = String::new();
    for &b in bytes.iter().take(max) {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    if bytes.len() > max {
        out.push_str(&format!("...({} bytes)", bytes.len()));
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A head up to CRLF CRLF: the three parts of its first line, its header
/// fields, and its length.
struct Head {
    line: [String; 3],
    headers: Vec<(String, String)>,
    length: usize,
}

fn parse_head(bytes: &[u8]) -> Option<Head> {
    let end = find(bytes, b"\r\n\r\n")?;
    let text = String::from_utf8_lossy(&bytes[..end]);
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let mut parts = first.splitn(3, ' ');
    let line = [(); 3].map(|_| parts.next().unwrap_or_default().to_string());
    let headers = lines.map(split_field).collect();
    Some(Head {
        line,
        headers,
        length: end + 4,
    })
}

/// A field line split at its first colon, the value exactly as sent
/// (whitespace around it is one of the allowed differences); a line without
/// a colon is kept whole as a name with an empty value, so it still shows in
/// a comparison.
fn split_field(line: &str) -> (String, String) {
    match line.split_once(':') {
        Some((name, value)) => (name.to_string(), value.to_string()),
        None => (line.to_string(), String::new()),
    }
}

/// A decoded chunked body: the data, the trailers, and where it ended.
struct Chunked {
    body: Vec<u8>,
    trailers: Vec<(String, String)>,
    extensions: Vec<String>,
    length: usize,
}

/// Decodes chunks from `bytes`; `None` when they are incomplete or broken.
fn dechunk(bytes: &[u8]) -> Option<Chunked> {
    let mut body = Vec::new();
    let mut extensions = Vec::new();
    let mut at = 0;
    loop {
        let line_end = at + find(&bytes[at..], b"\r\n")?;
        let line = std::str::from_utf8(&bytes[at..line_end]).ok()?;
        let (size, extension) = line.split_once(';').unwrap_or((line, ""));
        let size = usize::from_str_radix(size.trim(), 16).ok()?;
        if !extension.is_empty() {
            extensions.push(format!("{};{extension}", extensions.len()));
        }
        at = line_end + 2;
        if size == 0 {
            break;
        }
        body.extend_from_slice(bytes.get(at..at.checked_add(size)?)?);
        at += size;
        if bytes.get(at..at + 2)? != b"\r\n" {
            return None;
        }
        at += 2;
    }
    let mut trailers = Vec::new();
    loop {
        let end = at + find(&bytes[at..], b"\r\n")?;
        if end == at {
            return Some(Chunked {
                body,
                trailers,
                extensions,
                length: end + 2,
            });
        }
        trailers.push(split_field(&String::from_utf8_lossy(&bytes[at..end])));
        at = end + 2;
    }
}

/// Where a body starts and how it is framed, by RFC 9112 §6.3.
enum BodyRule {
    None,
    Length(usize),
    Chunked,
    UntilClose,
    Tunnel,
}

fn body_rule(head: &Message, is_request: bool, no_body: bool) -> Option<BodyRule> {
    if no_body {
        return Some(BodyRule::None);
    }
    if !is_request && head.status() == Some(101) {
        return Some(BodyRule::Tunnel);
    }
    let te = head.values("transfer-encoding");
    if !te.is_empty() {
        let last = te.last()?.rsplit(',').next()?.trim().to_ascii_lowercase();
        return Some(if last == "chunked" {
            BodyRule::Chunked
        } else if is_request {
            BodyRule::None
        } else {
            BodyRule::UntilClose
        });
    }
    match head.values("content-length").first() {
        Some(value) => value.trim().parse().ok().map(BodyRule::Length),
        None if is_request => Some(BodyRule::None),
        None => Some(BodyRule::UntilClose),
    }
}

/// Reads one message from `bytes`: the message and its length on the wire,
/// or `None` when it is incomplete or cannot be framed. `closed`: nothing
/// will follow the bytes (ends a close-delimited body).
fn parse_message(
    bytes: &[u8],
    is_request: bool,
    head_request: bool,
    closed: bool,
) -> Option<(Message, usize)> {
    let head = parse_head(bytes)?;
    let mut message = Message {
        line: head.line,
        headers: head.headers,
        framing: Framing::Empty,
        body: Vec::new(),
        trailers: Vec::new(),
        chunk_extensions: Vec::new(),
    };
    let status = message.status().unwrap_or(0);
    let no_body = !is_request
        && (head_request
            || (100..200).contains(&status) && status != 101
            || status == 204
            || status == 304);
    let rest = &bytes[head.length..];
    let used = match body_rule(&message, is_request, no_body)? {
        BodyRule::None => 0,
        BodyRule::Length(length) => {
            message.framing = Framing::Length(length);
            message.body = rest.get(..length)?.to_vec();
            length
        }
        BodyRule::Chunked => {
            let chunked = dechunk(rest)?;
            message.framing = Framing::Chunked;
            message.body = chunked.body;
            message.trailers = chunked.trailers;
            message.chunk_extensions = chunked.extensions;
            chunked.length
        }
        BodyRule::UntilClose if !closed => return None,
        BodyRule::UntilClose => {
            message.framing = Framing::UntilClose;
            message.body = rest.to_vec();
            rest.len()
        }
        BodyRule::Tunnel => {
            message.framing = Framing::Tunnel;
            message.body = rest.to_vec();
            rest.len()
        }
    };
    Some((message, head.length + used))
}

/// Requests in `bytes`, in order, and the bytes left that are not a
/// complete request.
pub fn parse_requests(bytes: &[u8]) -> (Vec<Message>, Vec<u8>) {
    let mut messages = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        match parse_message(&bytes[at..], true, false, false) {
            Some((message, used)) => {
                let upgrade = message.has_token("connection", "upgrade");
                messages.push(message);
                at += used;
                // After an upgrade request the bytes may be a tunnel.
                if upgrade {
                    break;
                }
            }
            None => break,
        }
    }
    (messages, bytes[at..].to_vec())
}

/// Responses in `bytes`, in order, and the bytes left that are not a
/// complete response. `methods` are the requests' methods in order (a HEAD
/// answer has no body); interim 1xx answers do not use one up.
pub fn parse_responses(bytes: &[u8], methods: &[String], closed: bool) -> (Vec<Message>, Vec<u8>) {
    let mut messages = Vec::new();
    let mut at = 0;
    let mut finals = 0;
    while at < bytes.len() {
        let head_request = methods.get(finals).is_some_and(|m| m == "HEAD");
        let Some((message, used)) = parse_message(&bytes[at..], false, head_request, closed) else {
            break;
        };
        let status = message.status().unwrap_or(0);
        let tunnel = message.framing == Framing::Tunnel;
        if !(100..200).contains(&status) || status == 101 {
            finals += 1;
        }
        messages.push(message);
        at += used;
        if tunnel {
            break;
        }
    }
    (messages, bytes[at..].to_vec())
}

/// A response cut off after its head: the head and the bytes that followed
/// it, or `None` when not even the head is complete.
pub fn parse_incomplete(bytes: &[u8]) -> Option<Message> {
    let head = parse_head(bytes)?;
    Some(Message {
        line: head.line,
        headers: head.headers,
        framing: Framing::Incomplete,
        body: bytes[head.length..].to_vec(),
        trailers: Vec::new(),
        chunk_extensions: Vec::new(),
    })
}

/// True when `bytes` end exactly at the end of a response: nothing half-read.
pub fn ends_at_boundary(bytes: &[u8], methods: &[String]) -> bool {
    parse_responses(bytes, methods, false).1.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelined_requests_are_split_and_decoded() {
        let bytes = b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;e=1\r\nabc\r\n0\r\nT: v\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HT";
        let (requests, rest) = parse_requests(bytes);
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0].body, b"abc");
        assert_eq!(requests[0].trailers, vec![("T".into(), " v".into())]);
        assert_eq!(requests[0].chunk_extensions, vec!["0;e=1".to_string()]);
        assert_eq!(requests[1].line[1], "/b");
        assert_eq!(rest, b"GET /c HT");
    }

    #[test]
    fn responses_follow_the_request_methods_and_interim_answers() {
        let bytes = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let methods = vec!["HEAD".to_string(), "GET".to_string()];
        let (responses, rest) = parse_responses(bytes, &methods, false);
        assert!(rest.is_empty());
        assert_eq!(responses.len(), 3);
        assert_eq!(responses[1].framing, Framing::Empty);
        assert_eq!(responses[2].body, b"ok");
    }

    #[test]
    fn a_close_delimited_body_is_complete_only_once_closed() {
        let bytes = b"HTTP/1.1 200 OK\r\n\r\nuntil close";
        assert_eq!(parse_responses(bytes, &[], false).0.len(), 0);
        let (responses, _) = parse_responses(bytes, &[], true);
        assert_eq!(responses[0].body, b"until close");
        assert!(!ends_at_boundary(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nab",
            &[]
        ));
    }
}
