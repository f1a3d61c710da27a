//! Property tests: random splitting never changes the verdict, and the gate is
//! never more lenient than httparse.

use super::tests::verdict_split;
use super::*;
use proptest::prelude::*;

/// Valid streams and heads that mutations start from.
const SEEDS: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\nX-Empty:\r\n\r\n",
    b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
      5;a=b\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
    b"\r\nGET / HTTP/1.0\r\nUser-Agent: t\r\n\r\nGET /2 HTTP/1.1\r\nHost: y\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x00",
    b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
];

/// Bytes that tend to matter to HTTP/1.1 parsers.
fn interesting_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        prop::sample::select(b"\r\n \t:;,0fxX-+\x00\x01\x7f\x80\xff\"Hh/1.".to_vec()),
        any::<u8>(),
    ]
}

#[derive(Debug, Clone)]
enum Edit {
    Replace(usize, u8),
    Insert(usize, u8),
    Remove(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), interesting_byte()).prop_map(|(i, b)| Edit::Replace(i, b)),
        (any::<usize>(), interesting_byte()).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<usize>().prop_map(Edit::Remove),
    ]
}

fn mutate(seed: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for edit in edits {
        let len = bytes.len().max(1);
        match *edit {
            Edit::Replace(i, b) if !bytes.is_empty() => bytes[i % len] = b,
            Edit::Insert(i, b) => bytes.insert(i % (bytes.len() + 1), b),
            Edit::Remove(i) if !bytes.is_empty() => {
                bytes.remove(i % len);
            }
            _ => {}
        }
    }
    bytes
}

/// A seed stream with up to 3 edits: about half stay valid.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(SEEDS),
        prop::collection::vec(edit(), 0..4),
    )
        .prop_map(|(seed, edits)| mutate(seed, &edits))
}

/// Usually one of `good`, sometimes one of `bad`: each part of an assembled
/// head is valid often enough that whole heads are too.
fn mostly(good: &[&'static str], bad: &[&'static str]) -> BoxedStrategy<&'static str> {
    prop_oneof![
        6 => prop::sample::select(good.to_vec()),
        1 => prop::sample::select(bad.to_vec()),
    ]
    .boxed()
}

/// A head assembled from parts that are each sometimes wrong.
fn assembled_head() -> impl Strategy<Value = Vec<u8>> {
    let method = mostly(
        &["GET", "POST", "CONNECT", "PUT", "M-SEARCH"],
        &["G T", "", "G\u{0}T"],
    );
    let target = mostly(
        &["/", "/a%2f?q=1", "*", "h:443", "/~x"],
        &["/a b", "/\u{e9}", "/\u{7f}"],
    );
    let version = mostly(
        &["HTTP/1.1", "HTTP/1.0"],
        &["HTTP/1.2", "HTTP/1.1 ", "HTTP/2", "http/1.1"],
    );
    let sep = || mostly(&[" "], &["  ", "\t"]);
    let eol = || mostly(&["\r\n"], &["\n", "\r", "\r\r\n"]);
    let name = mostly(
        &[
            "Host",
            "Host",
            "Content-Length",
            "Transfer-Encoding",
            "Connection",
            "Upgrade",
            "X-A",
        ],
        &["X A", "", " Folded", "X\u{e9}"],
    );
    let colon = mostly(&[":", ": ", ":\t"], &[" :", ""]);
    let value = mostly(
        &[
            "x",
            "5",
            "chunked",
            "gzip, chunked",
            "upgrade",
            "",
            " spaced ",
            "caf\u{e9}",
        ],
        &["+5", "5, 5", "chunked, gzip", "a\u{1}b", "a\u{7f}"],
    );
    let field = (name, colon, value, eol()).prop_map(|(n, c, v, e)| format!("{n}{c}{v}{e}"));
    (
        method,
        sep(),
        target,
        sep(),
        version,
        eol(),
        prop::collection::vec(field, 0..5),
        eol(),
    )
        .prop_map(|(m, s1, t, s2, v, e1, fields, e2)| {
            format!("{m}{s1}{t}{s2}{v}{e1}{}{e2}", fields.concat()).into_bytes()
        })
}

/// Sorted cut offsets into a stream of `len` bytes.
fn cuts(len: usize, raw: Vec<usize>) -> Vec<usize> {
    let mut cuts: Vec<usize> = raw.into_iter().map(|c| c % (len + 1)).collect();
    cuts.sort_unstable();
    cuts
}

/// httparse takes the whole head as one complete request.
fn httparse_accepts(head: &[u8]) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    matches!(request.parse(head), Ok(httparse::Status::Complete(n)) if n == head.len())
}

/// Heads the differential test saw accepted (to check it tests something).
static ACCEPTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_splits_never_change_the_verdict(
        stream in stream(),
        raw in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let cuts = cuts(stream.len(), raw);
        prop_assert_eq!(verdict_split(&stream, &cuts), verdict_split(&stream, &[]));
    }

    #[test]
    fn assembled_heads_split_the_same(
        head in assembled_head(),
        raw in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let cuts = cuts(head.len(), raw);
        prop_assert_eq!(verdict_split(&head, &cuts), verdict_split(&head, &[]));
    }

    #[test]
    fn gate_is_never_more_lenient_than_httparse(
        head in prop_oneof![assembled_head(), stream()],
    ) {
        if check_head(&head).is_ok() {
            ACCEPTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            prop_assert!(httparse_accepts(&head), "httparse refuses {:?}", String::from_utf8_lossy(&head));
        }
    }

    #[test]
    fn gate_and_check_head_agree_on_single_heads(head in assembled_head()) {
        let mut gate = Gate::new();
        let fed = gate.feed(&head);
        match check_head(&head) {
            Ok(framing) => {
                prop_assert_eq!(fed, Ok(()));
                prop_assert_eq!(gate.heads(), 1);
                if let Some(switch) = framing.switch {
                    if framing.body == Body::Empty {
                        prop_assert_eq!(gate.phase(), Phase::Switched(switch));
                    }
                }
            }
            // The gate may still be waiting for the rest of an unfinished head.
            // Otherwise the gate refuses too, unless it is still waiting for the
            // end of a head cut short (say, by a final bare CR). A whole head
            // with bytes after it (`NotOneHead`) the gate reads as one head and
            // what follows it (a body, or empty lines before the next request,
            // RFC 9112 §2.2).
            Err(violation) => prop_assert!(
                fed.is_err()
                    || (gate.phase() == Phase::Head && gate.heads() == 0)
                    || (violation == Violation::NotOneHead && gate.heads() >= 1),
                "gate accepted {:?}",
                String::from_utf8_lossy(&head)
            ),
        }
    }
}

#[test]
fn the_differential_sees_accepted_heads() {
    // Run the property, then make sure a good share of its cases were heads the
    // gate accepted; a generator that only makes garbage would prove nothing.
    gate_is_never_more_lenient_than_httparse();
    assert!(ACCEPTED.load(std::sync::atomic::Ordering::Relaxed) >= 50);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// The word-at-a-time search finds what a plain byte loop finds, at every
    /// alignment and length (CR and LF in any place, bytes around them that
    /// differ from them by one bit or borrow).
    #[test]
    fn cr_or_lf_search_agrees_with_a_byte_loop(
        bytes in prop::collection::vec(
            prop_oneof![
                prop::sample::select(b"\r\n\x0c\x0b\x0e\x8d\x8a\x00\x01\xffa".to_vec()),
                any::<u8>(),
            ],
            0..40,
        ),
        start in 0usize..8,
    ) {
        let bytes = &bytes[start.min(bytes.len())..];
        let plain = bytes.iter().position(|&b| b == b'\r' || b == b'\n');
        prop_assert_eq!(super::scan::find_cr_or_lf(bytes), plain);
    }
}
