//! The differential test of the two HTTP/1.1 engines (issue 13): one corpus
//! of requests and backend answers, valid, odd and malicious, goes through a
//! member running `engine = "hyper"` and one running `engine = "portcullis"`,
//! each in front of its own scripted raw backend. For every case the backend
//! must have read the same requests and the client the same answers (or the
//! same refusal, and the same closed connection) from both, up to the
//! differences listed in [`compare::ALLOWED`].
//!
//! Every case gets a service of its own (`/gateway/t/sNN`) with its own
//! backend, so passive health, pooled connections and retries of one case
//! never touch another, and cases run in parallel.
//!
//! Run it with `cargo test -p portcullis --test proxy differential`; add a
//! case in `corpus/` (see docs/testing.md).

mod client;
mod compare;
mod corpus;
mod deviations;
mod wire;

use std::time::Instant;

use futures_util::stream::{self, StreamExt};
use portcullis_testkit::raw_backend::RawBackend;
use portcullis_testkit::TestMember;

use compare::{compare, report, Context, Outcome};
use corpus::{Case, Expect, SERVICE};
use wire::{parse_incomplete, parse_requests, parse_responses, printable, Framing, Message};

/// Cases in flight at once (each holds two client connections).
const PARALLEL: usize = 16;

/// Cases per pair of members: each case holds a listener and a pooled
/// connection per engine until its batch ends, so batches keep the test
/// under the usual limit of 1024 open files (it passes with 800).
const BATCH: usize = 100;

/// Short timeouts, so a gateway left waiting by a case gives up within the
/// client's patience (see `client`).
const SERVICE_TIMEOUTS: &str =
    "[service.timeouts]\nconnect = \"1s\"\nrequest = \"2s\"\nidle = \"1s\"\n";

/// One member with one raw backend per case of a batch; case `first` is
/// the first of the batch.
struct Engine {
    member: TestMember,
    first: usize,
    backends: Vec<RawBackend>,
}

/// The service of case `index`: as long as the `svc` the corpus writes, so
/// the cut points of split requests stay where they were.
fn service_name(index: usize) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let (high, low) = (index / DIGITS.len(), index % DIGITS.len());
    format!("s{}{}", DIGITS[high] as char, DIGITS[low] as char)
}

async fn start_engine(engine: &str, first: usize, cases: &[Case]) -> Engine {
    let mut backends = Vec::new();
    let mut topology = String::new();
    for (offset, case) in cases.iter().enumerate() {
        let backend = RawBackend::start(case.replies.clone()).await;
        topology.push_str(&format!(
            "[[service]]\nname = \"{}\"\nurls = [\"{}\"]\n{SERVICE_TIMEOUTS}\n",
            service_name(first + offset),
            backend.url()
        ));
        backends.push(backend);
    }
    let gateway = format!("engine = \"{engine}\"\nheader_read_timeout = \"1s\"");
    let member = TestMember::start_with(&[("t", &topology)], &gateway).await;
    Engine {
        member,
        first,
        backends,
    }
}

fn replace(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(found) = bytes[at..].windows(from.len()).position(|w| w == from) {
        out.extend_from_slice(&bytes[at..at + found]);
        out.extend_from_slice(to);
        at += found + from.len();
    }
    out.extend_from_slice(&bytes[at..]);
    out
}

/// A complete request the backend framed but the comparison parser could
/// not: kept visible rather than dropped.
fn unparsed(raw: &[u8]) -> Message {
    Message {
        line: ["<unparsed>".into(), printable(raw, 200), String::new()],
        headers: Vec::new(),
        framing: Framing::Empty,
        body: Vec::new(),
        trailers: Vec::new(),
        chunk_extensions: Vec::new(),
    }
}

async fn run_case(engine: &Engine, index: usize, case: &Case) -> (Outcome, Context) {
    let prefix = format!("/gateway/t/{}", service_name(index));
    // The prefix has the length of the one it replaces, so the pieces are
    // cut again where they were (a cut may fall inside the prefix).
    let whole = replace(&case.bytes(), SERVICE.as_bytes(), prefix.as_bytes());
    let mut pieces = Vec::new();
    let mut at = 0;
    for piece in &case.pieces {
        pieces.push(whole[at..at + piece.len()].to_vec());
        at += piece.len();
    }
    let (requests, rest) = parse_requests(&whole);
    let upgrading = requests.last().is_some_and(|r| {
        r.values("connection")
            .iter()
            .any(|v| v.to_ascii_lowercase().contains("upgrade"))
    });
    let expecting = client::Expecting {
        methods: requests.iter().map(|r| r.line[0].clone()).collect(),
        tunnel: if upgrading { rest.len() } else { 0 },
    };
    let received = client::exchange(engine.member.addr, &pieces, &expecting).await;
    let (responses, leftover) =
        parse_responses(&received.bytes, &expecting.methods, received.closed);
    let incomplete = parse_incomplete(&leftover);
    let mut outcome = Outcome {
        responses,
        leftover: if incomplete.is_some() {
            Vec::new()
        } else {
            leftover
        },
        incomplete,
        closed: received.closed,
        ..Outcome::default()
    };
    let backend = &engine.backends[index - engine.first];
    for request in backend.received() {
        if request.broken {
            outcome.backend_broken += 1;
            continue;
        }
        if !request.complete {
            outcome.backend_partial += 1;
            continue;
        }
        let message = parse_requests(&request.raw).0.into_iter().next();
        outcome
            .backend
            .push(message.unwrap_or_else(|| unparsed(&request.raw)));
        outcome.backend_connections.push(request.connection);
        outcome.backend_tunnel.extend_from_slice(&request.tunnel);
    }
    let context = Context {
        gateway: engine.member.addr,
        backend: backend.addr,
        client_expects_continue: sent_body_unasked(&whole),
    };
    (outcome, context)
}

/// A request asked for `100 Continue` and its body was sent anyway (the
/// client never waits for the 100; at most it pauses between pieces).
fn sent_body_unasked(bytes: &[u8]) -> bool {
    parse_requests(bytes).0.iter().any(|request| {
        request
            .values("expect")
            .iter()
            .any(|v| v.trim().eq_ignore_ascii_case("100-continue"))
    })
}

/// What the case demands of one engine on its own.
fn check_expectation(case: &Case, engine: &str, outcome: &Outcome) -> Result<(), String> {
    let reached = outcome.backend.len();
    let statuses = outcome.statuses();
    // Whatever the case, a gateway never sends a backend a request it cannot
    // frame.
    let holds = outcome.backend_broken == 0
        && match case.expect {
            Expect::Forwarded => reached > 0,
            Expect::Refused(status) => statuses == vec![status] && outcome.closed && reached == 0,
            Expect::Rejected(status) => statuses.first() == Some(&status) && reached == 0,
            Expect::Compared => true,
        };
    if holds {
        return Ok(());
    }
    Err(format!(
        "case {} on {engine}: expected {:?}, got statuses {statuses:?}, closed {}, {reached} requests at the backend, {} broken\nrequest: {}",
        case.name,
        case.expect,
        outcome.closed,
        outcome.backend_broken,
        printable(&case.bytes(), 300)
    ))
}

type Run = (usize, (Outcome, Context), (Outcome, Context));

/// Runs `cases` (numbered from `first`) on a fresh pair of members.
async fn run_batch(first: usize, cases: &[Case]) -> Vec<Run> {
    let hyper = start_engine("hyper", first, cases).await;
    let own = start_engine("portcullis", first, cases).await;
    let (hyper_ref, own_ref) = (&hyper, &own);
    let results = stream::iter(cases.iter().enumerate())
        .map(|(offset, case)| async move {
            let index = first + offset;
            let (a, b) = tokio::join!(
                run_case(hyper_ref, index, case),
                run_case(own_ref, index, case)
            );
            (index, a, b)
        })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    hyper.member.stop().await;
    own.member.stop().await;
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_engines_answer_every_case_alike() {
    let cases = corpus::all();
    let started = Instant::now();
    let mut results = Vec::new();
    for (batch, chunk) in cases.chunks(BATCH).enumerate() {
        results.extend(run_batch(batch * BATCH, chunk).await);
    }
    results.sort_by_key(|(index, _, _)| *index);
    // `DIFFERENTIAL_SHOW=part-of-a-name` prints the matching cases' outcomes.
    let show = std::env::var("DIFFERENTIAL_SHOW").ok();
    let mut failures = Vec::new();
    let mut forwarded = 0;
    let mut deviating = 0;
    for (index, (a, a_context), (b, b_context)) in &results {
        let case = &cases[*index];
        forwarded += usize::from(!a.backend.is_empty());
        failures.extend(check_expectation(case, "hyper", a).err());
        failures.extend(check_expectation(case, "portcullis", b).err());
        if show.as_deref().is_some_and(|part| case.name.contains(part)) {
            eprintln!(
                "{}\n",
                report(&case.name, &case.bytes(), (a, a_context), (b, b_context))
            );
        }
        // Where the own engine answers differently on purpose, its outcome
        // is checked against the rule instead (see `deviations.rs`).
        match deviations::find(&case.name) {
            Some(deviation) => {
                deviating += 1;
                failures.extend(
                    (deviation.check)(b)
                        .err()
                        .map(|err| format!("case {} ({}): {err}", case.name, deviation.what)),
                );
            }
            None => failures
                .extend(compare(&case.name, &case.bytes(), (a, a_context), (b, b_context)).err()),
        }
    }
    eprintln!(
        "differential: {} cases, {forwarded} reached the backend, {deviating} checked as deliberate deviations, {} failures, {:.1?}",
        cases.len(),
        failures.len(),
        started.elapsed()
    );
    assert_eq!(results.len(), cases.len(), "every case ran");
    assert!(
        failures.is_empty(),
        "{} failures over {} cases:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}
