//! What one engine did with one case, the differences between two engines
//! that are allowed (one table, [`ALLOWED`], each entry with its reason), and
//! the comparison that reports everything else side by side.

use std::net::SocketAddr;

use super::wire::{printable, Framing, Message};

/// Everything observable about one case on one engine.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Responses the client received, interim ones included, in order.
    pub responses: Vec<Message>,
    /// A response after the last complete one whose head arrived but not
    /// all of its body.
    pub incomplete: Option<Message>,
    /// Bytes after the last complete response that are not even a head.
    pub leftover: Vec<u8>,
    /// The gateway closed the client connection.
    pub closed: bool,
    /// Complete requests the backend read, in order.
    pub backend: Vec<Message>,
    /// Bytes the backend received after switching to a tunnel.
    pub backend_tunnel: Vec<u8>,
    /// Requests the backend saw begin but never complete.
    pub backend_partial: usize,
    /// Requests whose framing the backend could not follow (a bad chunk, an
    /// unreadable Content-Length): never normalised away.
    pub backend_broken: usize,
    /// Which backend connection carried each request in `backend`.
    pub backend_connections: Vec<usize>,
}

impl Outcome {
    /// Status codes of the responses, interim ones included.
    pub fn statuses(&self) -> Vec<u16> {
        self.responses
            .iter()
            .map(|r| r.status().unwrap_or(0))
            .collect()
    }
}

/// Facts about the run that the normalisation needs.
#[derive(Clone, Copy, Debug)]
pub struct Context {
    pub gateway: SocketAddr,
    pub backend: SocketAddr,
    /// A request with `Expect: 100-continue` was sent whole, body included,
    /// without waiting for the 100.
    pub client_expects_continue: bool,
}

/// One allowed difference: what may differ, why that is fine, and the
/// normalisation applied to both outcomes before they are compared.
pub struct Allowed {
    pub what: &'static str,
    pub why: &'static str,
    apply: fn(&mut Outcome, &Context),
}

/// Every difference between the engines that is not a failure. Anything not
/// normalised away here is reported.
pub const ALLOWED: &[Allowed] = &[
    Allowed {
        what: "gateway and backend addresses",
        why: "each engine runs in its own member in front of its own backend, so ports differ; \
              they are replaced by {gateway}, {gateway-port} and {backend} (an address that leaks \
              still shows as one)",
        apply: mask_addresses,
    },
    Allowed {
        what: "header name case",
        why: "field names are case-insensitive (RFC 9110 §5.1); hyper writes them lowercase, an \
              engine relaying the client's bytes keeps the client's spelling",
        apply: lowercase_names,
    },
    Allowed {
        what: "whitespace around field values",
        why: "optional whitespace before and after a field value is not part of it (RFC 9110 \
              §5.5); hyper writes `name: value`, an engine relaying the client's bytes keeps \
              the client's spacing",
        apply: trim_values,
    },
    Allowed {
        what: "order of fields with different names",
        why: "only the order of fields with the same name carries meaning (RFC 9110 §5.3); fields \
              are sorted by name, keeping the order within one name",
        apply: sort_fields,
    },
    Allowed {
        what: "Date values",
        why: "the clock moves between the two runs; whether a Date is present is still compared",
        apply: mask_dates,
    },
    Allowed {
        what: "reason phrase",
        why: "a client ignores it (RFC 9112 §4); hyper writes the canonical phrase, an engine \
              relaying the backend's head keeps the backend's",
        apply: drop_reasons,
    },
    Allowed {
        what: "Content-Length or chunked",
        why: "a body relayed with Content-Length by one engine and chunked by the other is the \
              same body, whatever its chunk boundaries, and a request with Content-Length: 0 \
              has no body like one without (RFC 9112 §6); a message carrying both, or a broken \
              one, is not unified (chunk extensions are still compared)",
        apply: unify_framing,
    },
    Allowed {
        what: "request trailers",
        why: "issue 13 lets an engine drop chunked trailers or forward a filtered subset; \
              hyper drops them",
        apply: drop_request_trailers,
    },
    Allowed {
        what: "100 Continue to a client that sent its body without waiting",
        why: "a server may omit the 100 once the content has started to arrive (RFC 9110 \
              §10.1.1), and whether it has when the gateway decides is timing; a 100 for a \
              body that never comes is still compared",
        apply: drop_continue,
    },
    Allowed {
        what: "backend connection per request",
        why: "which pooled connection carries a request is the pool's choice; the requests and \
              their order are compared",
        apply: forget_connections,
    },
    Allowed {
        what: "incomplete requests at the backend",
        why: "a refused chunked body may have had its head streamed ahead or not, depending on \
              timing (as in edges::smuggling); complete requests are compared",
        apply: forget_partials,
    },
];

fn messages(outcome: &mut Outcome) -> impl Iterator<Item = &mut Message> {
    outcome
        .responses
        .iter_mut()
        .chain(outcome.incomplete.iter_mut())
        .chain(outcome.backend.iter_mut())
}

fn mask_addresses(outcome: &mut Outcome, context: &Context) {
    let gateway = context.gateway.to_string();
    let backend = context.backend.to_string();
    let gateway_port = context.gateway.port().to_string();
    let mask = |text: &mut String| {
        *text = text
            .replace(&gateway, "{gateway}")
            .replace(&backend, "{backend}");
    };
    for message in messages(outcome) {
        message.line.iter_mut().for_each(mask);
        for (_, value) in message
            .headers
            .iter_mut()
            .chain(message.trailers.iter_mut())
        {
            mask(value);
            if value.trim_matches([' ', '\t']) == gateway_port {
                *value = "{gateway-port}".into();
            }
        }
    }
}

fn lowercase_names(outcome: &mut Outcome, _: &Context) {
    for message in messages(outcome) {
        for (name, _) in message
            .headers
            .iter_mut()
            .chain(message.trailers.iter_mut())
        {
            *name = name.to_ascii_lowercase();
        }
    }
}

fn trim_values(outcome: &mut Outcome, _: &Context) {
    for message in messages(outcome) {
        for (_, value) in message
            .headers
            .iter_mut()
            .chain(message.trailers.iter_mut())
        {
            *value = value.trim_matches([' ', '\t']).to_string();
        }
    }
}

fn sort_fields(outcome: &mut Outcome, _: &Context) {
    for message in messages(outcome) {
        // A stable sort keeps same-named fields in their wire order.
        message.headers.sort_by(|a, b| a.0.cmp(&b.0));
        message.trailers.sort_by(|a, b| a.0.cmp(&b.0));
    }
}

fn mask_dates(outcome: &mut Outcome, _: &Context) {
    for message in outcome
        .responses
        .iter_mut()
        .chain(outcome.incomplete.iter_mut())
    {
        for (name, value) in message.headers.iter_mut() {
            if name.eq_ignore_ascii_case("date") {
                *value = "{date}".into();
            }
        }
    }
}

fn drop_reasons(outcome: &mut Outcome, _: &Context) {
    for message in outcome
        .responses
        .iter_mut()
        .chain(outcome.incomplete.iter_mut())
    {
        message.line[2].clear();
    }
}

/// The framing headers of a message when they are unambiguous: only
/// Content-Length fields that all agree with the body, or only one
/// `Transfer-Encoding: chunked`.
fn plainly_framed(message: &Message) -> bool {
    let lengths = message.values("content-length");
    let codings = message.values("transfer-encoding");
    match (&message.framing, lengths.is_empty(), codings.is_empty()) {
        (Framing::Length(n), false, true) => lengths.iter().all(|v| v.trim() == n.to_string()),
        (Framing::Chunked, true, false) => {
            codings.len() == 1 && codings[0].trim().eq_ignore_ascii_case("chunked")
        }
        _ => false,
    }
}

fn unify_framing(outcome: &mut Outcome, _: &Context) {
    let unify = |message: &mut Message| {
        message.headers.retain(|(name, _)| {
            !name.eq_ignore_ascii_case("content-length")
                && !name.eq_ignore_ascii_case("transfer-encoding")
        });
        message.framing = Framing::Length(message.body.len());
    };
    for message in outcome.responses.iter_mut() {
        if plainly_framed(message) {
            unify(message);
        }
    }
    for message in outcome.backend.iter_mut() {
        let no_framing_headers = message.values("content-length").is_empty()
            && message.values("transfer-encoding").is_empty();
        if plainly_framed(message) || (message.framing == Framing::Empty && no_framing_headers) {
            unify(message);
        }
    }
}

fn drop_request_trailers(outcome: &mut Outcome, _: &Context) {
    for message in outcome.backend.iter_mut() {
        message.trailers.clear();
    }
}

fn drop_continue(outcome: &mut Outcome, context: &Context) {
    if context.client_expects_continue {
        outcome.responses.retain(|r| r.status() != Some(100));
    }
}

fn forget_connections(outcome: &mut Outcome, _: &Context) {
    outcome.backend_connections.clear();
}

fn forget_partials(outcome: &mut Outcome, _: &Context) {
    outcome.backend_partial = 0;
}

/// `outcome` with every allowed difference normalised away.
pub fn normalise(outcome: &Outcome, context: &Context) -> Outcome {
    let mut normal = outcome.clone();
    for allowed in ALLOWED {
        (allowed.apply)(&mut normal, context);
    }
    normal
}

/// One outcome as lines of text, for a side-by-side report.
fn lines(outcome: &Outcome) -> Vec<String> {
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let mut out = vec![format!(
        "client: {} responses, closed {}",
        outcome.responses.len(),
        yes_no(outcome.closed)
    )];
    for response in &outcome.responses {
        out.extend(response.to_string().lines().map(|l| format!("< {l}")));
    }
    if let Some(incomplete) = &outcome.incomplete {
        out.extend(incomplete.to_string().lines().map(|l| format!("< {l}")));
    }
    if !outcome.leftover.is_empty() {
        out.push(format!("< leftover {}", printable(&outcome.leftover, 80)));
    }
    out.push(format!(
        "backend: {} requests, {} partial, {} broken",
        outcome.backend.len(),
        outcome.backend_partial,
        outcome.backend_broken
    ));
    for request in &outcome.backend {
        out.extend(request.to_string().lines().map(|l| format!("> {l}")));
    }
    if !outcome.backend_tunnel.is_empty() {
        out.push(format!(
            "> tunnel {}",
            printable(&outcome.backend_tunnel, 80)
        ));
    }
    out
}

const COLUMN: usize = 72;

fn column(text: &str) -> String {
    let cut: String = text.chars().take(COLUMN).collect();
    format!("{cut:<COLUMN$}")
}

/// Both outcomes side by side, `!` marking the lines that differ.
pub fn side_by_side(left: &Outcome, right: &Outcome) -> String {
    let (left, right) = (lines(left), lines(right));
    let rows = left.len().max(right.len());
    (0..rows)
        .map(|i| {
            let l = left.get(i).map(String::as_str).unwrap_or("");
            let r = right.get(i).map(String::as_str).unwrap_or("");
            let mark = if l == r { ' ' } else { '!' };
            format!("{mark} {} | {}", column(l), column(r))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The case, its request bytes and both normalised outcomes side by side.
fn render(name: &str, request: &[u8], hyper: &Outcome, own: &Outcome) -> String {
    format!(
        "case {name}\nrequest: {}\n  {:<COLUMN$} | portcullis\n{}",
        printable(request, 300),
        "hyper",
        side_by_side(hyper, own)
    )
}

/// The side-by-side report of one case, whether or not the engines agree
/// (for `DIFFERENTIAL_SHOW`).
pub fn report(
    name: &str,
    request: &[u8],
    hyper: (&Outcome, &Context),
    own: (&Outcome, &Context),
) -> String {
    render(
        name,
        request,
        &normalise(hyper.0, hyper.1),
        &normalise(own.0, own.1),
    )
}

/// `Err` with a report naming the case, its request bytes and both
/// normalised outcomes when they differ.
pub fn compare(
    name: &str,
    request: &[u8],
    hyper: (&Outcome, &Context),
    own: (&Outcome, &Context),
) -> Result<(), String> {
    let hyper = normalise(hyper.0, hyper.1);
    let own = normalise(own.0, own.1);
    if hyper == own {
        return Ok(());
    }
    Err(render(name, request, &hyper, &own))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(port: u16) -> Context {
        Context {
            gateway: SocketAddr::from(([127, 0, 0, 1], port)),
            backend: SocketAddr::from(([127, 0, 0, 1], port + 1)),
            client_expects_continue: false,
        }
    }

    fn message(
        line: [&str; 3],
        headers: &[(&str, &str)],
        framing: Framing,
        body: &[u8],
    ) -> Message {
        Message {
            line: line.map(String::from),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            framing,
            body: body.to_vec(),
            trailers: Vec::new(),
            chunk_extensions: Vec::new(),
        }
    }

    fn outcome(response: Message, request: Message) -> Outcome {
        Outcome {
            responses: vec![response],
            closed: false,
            backend: vec![request],
            ..Outcome::default()
        }
    }

    #[test]
    fn allowed_differences_compare_equal() {
        let hyper = outcome(
            message(
                ["HTTP/1.1", "200", "OK"],
                &[("date", "Mon"), ("content-length", "2"), ("x-a", "1")],
                Framing::Length(2),
                b"ok",
            ),
            message(
                ["GET", "/x", "HTTP/1.1"],
                &[("host", "127.0.0.1:1001")],
                Framing::Empty,
                b"",
            ),
        );
        let own = outcome(
            message(
                ["HTTP/1.1", "200", "Fine"],
                &[
                    ("X-A", " 1 "),
                    ("Transfer-Encoding", "chunked"),
                    ("Date", "Tue"),
                ],
                Framing::Chunked,
                b"ok",
            ),
            message(
                ["GET", "/x", "HTTP/1.1"],
                &[("Host", "127.0.0.1:2001"), ("Content-Length", "0")],
                Framing::Length(0),
                b"",
            ),
        );
        assert_eq!(
            compare(
                "same",
                b"GET /x",
                (&hyper, &context(1000)),
                (&own, &context(2000))
            ),
            Ok(())
        );
    }

    #[test]
    fn a_different_outcome_is_reported_with_the_case_and_both_sides() {
        let ok = message(["HTTP/1.1", "200", "OK"], &[], Framing::Length(2), b"ok");
        let request = message(["GET", "/x", "HTTP/1.1"], &[], Framing::Empty, b"");
        let hyper = outcome(ok.clone(), request.clone());
        let mut own = outcome(ok, request);
        own.closed = true;
        own.responses[0].line[1] = "502".into();
        let report = compare(
            "status-differs",
            b"GET /x HTTP/1.1\r\n",
            (&hyper, &context(1)),
            (&own, &context(1)),
        )
        .expect_err("a mismatch");
        assert!(report.contains("case status-differs"), "{report}");
        assert!(report.contains("GET /x HTTP/1.1\\r\\n"), "{report}");
        assert!(
            report
                .lines()
                .any(|l| l.starts_with('!') && l.contains("502")),
            "{report}"
        );
        assert!(
            report
                .lines()
                .any(|l| l.starts_with('!') && l.contains("closed yes")),
            "{report}"
        );
    }

    #[test]
    fn ambiguous_framing_and_body_changes_are_not_normalised_away() {
        let request = |headers: &[(&str, &str)], framing, body: &[u8]| {
            let ok = message(["HTTP/1.1", "200", "OK"], &[], Framing::Length(0), b"");
            outcome(
                ok,
                message(["POST", "/x", "HTTP/1.1"], headers, framing, body),
            )
        };
        let plain = request(&[("content-length", "3")], Framing::Length(3), b"abc");
        let both = request(
            &[("content-length", "3"), ("transfer-encoding", "chunked")],
            Framing::Chunked,
            b"abc",
        );
        let other_body = request(&[("content-length", "3")], Framing::Length(3), b"abd");
        let reordered_same_name = {
            let mut o = request(&[("x", "1"), ("x", "2")], Framing::Empty, b"");
            o.backend[0].headers.reverse();
            o
        };
        let same_name = request(&[("x", "1"), ("x", "2")], Framing::Empty, b"");
        let c = context(1);
        assert!(compare("cl+te", b"", (&plain, &c), (&both, &c)).is_err());
        assert!(compare("body", b"", (&plain, &c), (&other_body, &c)).is_err());
        assert!(compare("order", b"", (&same_name, &c), (&reordered_same_name, &c)).is_err());
        let mut broken = plain.clone();
        broken.backend_broken = 1;
        assert!(compare("broken", b"", (&plain, &c), (&broken, &c)).is_err());
    }

    #[test]
    fn every_allowed_difference_says_why() {
        for allowed in ALLOWED {
            assert!(allowed.why.len() > 20, "{}", allowed.what);
        }
    }
}
