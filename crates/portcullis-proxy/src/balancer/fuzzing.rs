//! Fuzz target for the balancer's affinity cookie (docs/fuzzing.md): the
//! cargo-fuzz target in `fuzz/` calls it (`fuzz/fuzz_targets/sticky_cookie.rs`), and
//! `tests/fuzz_corpus.rs` runs it over the committed corpus in every ordinary
//! `cargo test`.

use super::{MemberTable, MemberTarget, AFFINITY_COOKIE};
use crate::fuzzing::CookieCase;
use crate::ha::sticky::request_cookie;

const NOW_MS: u64 = 1_000_000;

/// Members from a line of space-separated specs: `id` (alive), `id!` (dead,
/// missed its heartbeats), `id+N` (alive, N requests in flight).
fn members(line: &[u8]) -> Vec<MemberTarget> {
    String::from_utf8_lossy(line)
        .split(' ')
        .take(16)
        .map(|spec| {
            let (spec, dead) = match spec.strip_suffix('!') {
                Some(spec) => (spec, true),
                None => (spec, false),
            };
            let (id, in_flight) = match spec.rsplit_once('+') {
                Some((id, n)) => (id, n.parse().unwrap_or(0)),
                None => (spec, 0),
            };
            MemberTarget {
                id: id.to_string(),
                url: "http://127.0.0.1:8443".to_string(),
                in_flight,
                // Three missed 1 s heartbeats; a dead one missed them 10 s ago.
                alive_until_ms: if dead { NOW_MS - 7_000 } else { NOW_MS + 3_000 },
                draining: false,
            }
        })
        .collect()
}

/// The balancer reads `PORTCULLIS_MEMBER` from any Cookie headers without
/// panicking; it keeps a client on the live member its cookie names and
/// otherwise picks a least-loaded live member and resets the cookie; and the
/// cookie it sets for a member always brings the client back to it, among any
/// other cookies (in a header that is readable as text; see
/// `crate::fuzzing::sticky_cookie`).
///
/// Input: line 1 the members (see `members`), then as the proxy's
/// `sticky_cookie` target: a line whose first word is ignored, then Cookie
/// header values.
pub fn balancer_cookie(data: &[u8]) {
    let (first, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let members = members(first);
    let mut case = CookieCase::parse(rest, AFFINITY_COOKIE);
    case.name = AFFINITY_COOKIE.to_string();
    let table = MemberTable::new(case.key.clone());
    table.replace(members.clone());
    let alive: Vec<&MemberTarget> = members.iter().filter(|m| m.is_alive(NOW_MS)).collect();

    // The client's own cookies.
    let mut plain = http::HeaderMap::new();
    for value in &case.headers {
        plain.append(http::header::COOKIE, value.clone());
    }
    let values = request_cookie(&plain, AFFINITY_COOKIE);
    check_choice(&table, &alive, &values);

    // A tag the balancer set for a member, sent back.
    let Some(target) =
        members.get(usize::from(rest.first().copied().unwrap_or(0)) % members.len().max(1))
    else {
        return;
    };
    let tag = table.tag(&target.id);
    let headers = case.headers_with(&tag);
    let values = request_cookie(&headers, AFFINITY_COOKIE);
    assert!(values.contains(&tag.as_str()), "tag lost in {headers:?}");
    let (chosen, set) = check_choice(&table, &alive, &values).unzip();
    if target.is_alive(NOW_MS) {
        assert_eq!(set, Some(false), "a live member's cookie was replaced");
        let chosen = chosen.map(|c| c.id);
        let first_named = alive
            .iter()
            .find(|m| values.contains(&table.tag(&m.id).as_str()))
            .map(|m| m.id.clone());
        assert_eq!(chosen, first_named);
        assert!(first_named.is_some());
    }
}

/// Checks one choice against the rules; returns it.
fn check_choice(
    table: &MemberTable,
    alive: &[&MemberTarget],
    values: &[&str],
) -> Option<(MemberTarget, bool)> {
    let choice = table.choose(values, NOW_MS);
    let Some((member, set)) = &choice else {
        assert!(
            alive.is_empty(),
            "no member chosen among {} alive",
            alive.len()
        );
        return None;
    };
    assert!(member.is_alive(NOW_MS), "a dead member was chosen");
    let named = |m: &MemberTarget| values.contains(&table.tag(&m.id).as_str());
    if *set {
        assert!(
            !alive.iter().any(|m| named(m)),
            "the cookie named a live member yet was replaced"
        );
        let least = alive.iter().map(|m| m.in_flight).min();
        assert_eq!(Some(member.in_flight), least, "not the least loaded");
    } else {
        assert!(named(member), "kept without a cookie naming it");
    }
    choice
}

/// The `sticky_cookie` fuzz target: the gateway's sticky cookie
/// (`crate::fuzzing::sticky_cookie`) and the balancer's affinity
/// cookie ([`balancer_cookie`]) on the same input.
pub fn sticky_cookie(data: &[u8]) {
    crate::fuzzing::sticky_cookie(data);
    balancer_cookie(data);
}
