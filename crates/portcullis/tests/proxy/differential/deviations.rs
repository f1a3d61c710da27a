//! Where the own engine deliberately answers differently from hyper, and
//! why: each entry names the cases it covers and checks that the own
//! engine's outcome is the one PRODUCT.md §3/§9 (or RFC 9110/9112) asks for.
//! For these cases the two engines are not compared; the check runs instead.
//! Everything else must still compare equal.

use super::compare::Outcome;

pub struct Deviation {
    /// The cases this entry covers.
    pub covers: fn(&str) -> bool,
    pub what: &'static str,
    pub why: &'static str,
    /// The own engine's outcome must pass this.
    pub check: fn(&Outcome) -> Result<(), String>,
}

pub fn find(case: &str) -> Option<&'static Deviation> {
    DEVIATIONS.iter().find(|d| (d.covers)(case))
}

fn one_status(outcome: &Outcome, status: u16) -> Result<(), String> {
    match outcome.statuses().as_slice() {
        [s] if *s == status => Ok(()),
        other => Err(format!("expected one {status}, got {other:?}")),
    }
}

fn kept_open_and_answered_all(outcome: &Outcome) -> Result<(), String> {
    if outcome.closed || outcome.responses.is_empty() {
        return Err("the connection should stay open after complete answers".into());
    }
    if outcome.statuses().iter().any(|s| *s != 200) {
        return Err(format!(
            "every answer should be 200: {:?}",
            outcome.statuses()
        ));
    }
    match outcome
        .responses
        .iter()
        .find(|r| !r.values("connection").is_empty())
    {
        Some(r) => Err(format!(
            "no Connection field expected: {:?}",
            r.values("connection")
        )),
        None => Ok(()),
    }
}

pub const DEVIATIONS: &[Deviation] = &[
    Deviation {
        covers: |c| c.starts_with("response-broken-bare-lf"),
        what: "bare LF in a backend's response head is a 502",
        why: "§9: a malformed response head is a 502; hyper reads a bare LF as a line end \
              and relays the response, a reading another parser may not share",
        check: |o| one_status(o, 502),
    },
    Deviation {
        covers: |c| {
            c.starts_with("response-broken-cl-") && c.ends_with("-head") && !c.contains("-te")
                || c.starts_with("response-framed-cl-same-list")
        },
        what: "a malformed, signed, listed or differing Content-Length is a 502, also on HEAD",
        why: "§9 and RFC 9112 §6.3: hyper relays a bad length on a HEAD answer (or closes \
              without an answer) and relays `5, 5` unparsed; the own engine refuses any length \
              it cannot read as one number",
        check: |o| one_status(o, 502),
    },
    Deviation {
        covers: |c| c == "response-framed-cl-same-twice-head",
        what: "identical repeated Content-Length fields go on as one",
        why: "RFC 9112 §6.3 allows reading identical repeats as one value; hyper closes the \
              connection without an answer for a HEAD, the own engine relays one field",
        check: |o| {
            one_status(o, 200)?;
            let values: Vec<&str> = o.responses[0]
                .values("content-length")
                .iter()
                .map(|v| v.trim())
                .collect();
            match values.as_slice() {
                ["5"] => Ok(()),
                other => Err(format!("expected one content-length: 5, got {other:?}")),
            }
        },
    },
    Deviation {
        covers: |c| c.starts_with("response-framed-204-"),
        what: "no Content-Length in a 204",
        why: "RFC 9110 §8.6: a server must not send Content-Length in a 204; hyper keeps the \
              backend's on a HEAD answer",
        check: |o| {
            one_status(o, 204)?;
            match o.responses[0].values("content-length").is_empty() {
                true => Ok(()),
                false => Err("content-length in a 204".into()),
            }
        },
    },
    Deviation {
        covers: |c| c == "response-framed-te-gzip-only-close-get",
        what: "Transfer-Encoding that does not end in chunked is a 502",
        why: "hyper drops the gzip coding from the head and relays the coded bytes as if they \
              were the representation; the own engine refuses what it cannot relay faithfully",
        check: |o| one_status(o, 502),
    },
    Deviation {
        covers: |c| {
            c == "response-broken-bad-chunk-size-get"
                || c == "response-broken-short-cl-nothing-close-get"
        },
        what:
            "a response body that breaks its framing before its first byte: head sent, then closed",
        why: "§9 asks for a closed connection, never a complete-looking response; hyper holds the \
              head until body bytes come and so sends nothing, the own engine sends the head at \
              once (streaming) and then closes mid-body",
        check: |o| match (
            o.responses.is_empty(),
            o.incomplete.is_some() || o.leftover.is_empty(),
            o.closed,
        ) {
            (true, true, true) => Ok(()),
            _ => Err(format!(
                "expected no complete response and a close: {:?}",
                o.statuses()
            )),
        },
    },
    Deviation {
        covers: |c| {
            (c.starts_with("response-framed-http10-")
                || c.starts_with("response-framed-close-delimited-http10"))
                && ["-get", "-head", "-post"].iter().any(|m| c.ends_with(m))
        },
        what: "an HTTP/1.1 client gets HTTP/1.1 whatever version the backend spoke",
        why: "hyper copies an HTTP/1.0 backend's version into the client's status line and ends \
              the client connection with a close-delimited body; the own engine answers in the \
              client's version and frames the body itself, so keep-alive survives",
        check: kept_open_and_answered_all,
    },
    Deviation {
        covers: |c| {
            c.starts_with("split-")
                || c.starts_with("pipelined-split")
                || c == "pipelined-chunked-split"
        },
        what: "a head that arrives in pieces keeps the connection open",
        why: "hyper's path (its parking loop) answers such requests with Connection: close; \
              nothing in the request asks for that",
        check: kept_open_and_answered_all,
    },
    Deviation {
        covers: |c| {
            (c.starts_with("get-chunked-") || c.starts_with("head-chunked-"))
                && !c.ends_with("-empty")
        },
        what: "a GET or HEAD with a chunked body is forwarded with its body",
        why: "hyper's client silently drops the body of a GET or HEAD sent with chunked \
              framing, so the backend sees a different message; the own engine forwards what \
              the client sent (RFC 9110 §9.3.1 allows a body, without defined semantics)",
        check: |o| match o.backend.first() {
            Some(request) if !request.body.is_empty() => Ok(()),
            _ => Err("the backend should get the body".into()),
        },
    },
    Deviation {
        covers: |c| {
            [
                "headers-100",
                "headers-101",
                "headers-200",
                "attack-oversize-many-headers",
            ]
            .contains(&c)
        },
        what: "over 100 header fields: 431 with a JSON body",
        why: "§3: errors the gateway returns have a JSON body; hyper's 431 has none",
        check: |o| json_refusal(o, 431),
    },
    Deviation {
        covers: |c| c == "edge-target-no-leading-slash",
        what: "a request target that is not origin-form, absolute-form or `*`: 400 naming the rule",
        why: "§3: errors the gateway returns have a JSON body; hyper refuses this line itself, \
              with an empty body",
        check: |o| json_refusal(o, 400),
    },
    Deviation {
        covers: |c| {
            interim_case(
                c,
                &[
                    "103-then-200",
                    "100-103-200",
                    "103-hop-by-hop",
                    "103-content-length",
                ],
            )
        },
        what: "a 103 Early Hints is relayed to an HTTP/1.1 client before the final response",
        why: "§9 and RFC 9110 §15.2: a proxy forwards 1xx responses (hop-by-hop fields and any \
              Content-Length removed); hyper's client drops them. A backend's 100 is not relayed: \
              the engine answers Expect itself",
        check: |o| relayed(o, &[103, 200]),
    },
    Deviation {
        covers: |c| interim_case(c, &["two-103"]),
        what: "two 103s are relayed in order",
        why: "§9: every 1xx but 100 and 101 goes on to an HTTP/1.1 client; hyper drops them",
        check: |o| relayed(o, &[103, 103, 200]),
    },
    Deviation {
        covers: |c| interim_case(c, &["102-processing"]),
        what: "a 102 Processing is relayed",
        why: "§9: every 1xx but 100 and 101 goes on to an HTTP/1.1 client; hyper drops them",
        check: |o| relayed(o, &[102, 200]),
    },
    Deviation {
        covers: |c| interim_case(c, &["199-unknown"]),
        what: "an unknown 1xx is relayed",
        why: "RFC 9110 §15.2: a proxy forwards 1xx codes it does not know too; hyper drops them",
        check: |o| relayed(o, &[199, 200]),
    },
    Deviation {
        covers: |c| interim_case(c, &["103-then-404"]),
        what: "a 103 is relayed whatever the final status",
        why: "§9: hints come before any final response, an error too; hyper drops them",
        check: |o| relayed(o, &[103, 404]),
    },
    Deviation {
        covers: |c| interim_case(c, &["many-103-32"]),
        what: "32 interim responses, the most a try may send, are all relayed",
        why: "the own engine bounds interim responses per try at 32 (and 64 KiB); up to the \
              bound each goes on to the client; hyper drops them",
        check: |o| {
            let mut expected = vec![103; 32];
            expected.push(200);
            relayed(o, &expected)
        },
    },
    Deviation {
        covers: |c| interim_case(c, &["many-103-33", "many-100-40"]),
        what: "more than 32 interim responses make the try a 502",
        why: "a backend must not hold a request open or fill memory with 1xx answers (100s \
              count too, though they are not relayed); hyper reads any number of them",
        check: interim_refused,
    },
    Deviation {
        covers: |c| c.starts_with("response-interim-1xx-broken-"),
        what: "a malformed interim head is a 502",
        why: "§9: a malformed response head is a 502 or a closed connection, interim or not; \
              hyper's client reads some of these (a bare LF) and skips the head",
        check: |o| one_status(o, 502),
    },
];

/// The statuses are `expected`, the connection stayed open, and no relayed
/// 1xx carries a hop-by-hop field or a Content-Length.
fn relayed(o: &Outcome, expected: &[u16]) -> Result<(), String> {
    if o.statuses() != expected || o.closed {
        return Err(format!(
            "expected {expected:?} on an open connection, got {:?} (closed: {})",
            o.statuses(),
            o.closed
        ));
    }
    let interim = o
        .responses
        .iter()
        .filter(|r| r.status().is_some_and(|s| s < 200));
    for response in interim {
        for name in ["connection", "keep-alive", "x-hop", "content-length"] {
            if !response.values(name).is_empty() {
                return Err(format!("{name} in a relayed {:?}", response.status()));
            }
        }
    }
    Ok(())
}

/// The try ended in a 502 after at most 32 relayed interim responses.
fn interim_refused(o: &Outcome) -> Result<(), String> {
    let statuses = o.statuses();
    let interim = statuses.iter().filter(|s| **s < 200).count();
    match statuses.last() {
        Some(502) if interim <= 32 && interim + 1 == statuses.len() => Ok(()),
        _ => Err(format!(
            "expected interim answers then a 502, got {statuses:?}"
        )),
    }
}

/// A case `response-interim-{name}-{asker}` for one of `names`, asked by
/// anything but an HTTP/1.0 client (which gets no 1xx from either engine).
fn interim_case(case: &str, names: &[&str]) -> bool {
    names.iter().any(|name| {
        case.strip_prefix("response-interim-")
            .and_then(|rest| rest.strip_prefix(name))
            .is_some_and(|asker| ["-get", "-post", "-head"].contains(&asker))
    })
}

fn json_refusal(o: &Outcome, status: u16) -> Result<(), String> {
    if o.statuses() != [status] || !o.closed {
        return Err(format!("expected {status} and a close: {:?}", o.statuses()));
    }
    match o.responses[0].body.starts_with(b"{\"error\":") {
        true => Ok(()),
        false => Err("expected a JSON error body".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_deviation_says_why_and_checks_something() {
        for deviation in DEVIATIONS {
            assert!(deviation.why.len() > 40, "{}", deviation.what);
            assert!(
                (deviation.check)(&Outcome::default()).is_err(),
                "{}: an empty outcome passes its check",
                deviation.what
            );
        }
    }
}
