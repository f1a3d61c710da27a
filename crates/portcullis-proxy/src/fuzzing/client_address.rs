//! The `client_address` target: `http::client_address::resolve` on any
//! X-Forwarded-For bytes.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::http::client_address::resolve;

/// Peers the first input byte picks from: trusted and untrusted, both
/// families, and an IPv4-mapped IPv6 address.
const PEERS: [&str; 5] = [
    "10.0.0.1",
    "192.0.2.9",
    "203.0.113.7",
    "::1",
    "::ffff:10.0.0.2",
];
const TRUSTED: [&str; 3] = ["10.0.0.0/8", "192.0.2.0/24", "::1/128"];

/// The first byte picks the peer, the rest is the X-Forwarded-For list.
/// Never panics; the answer is the peer when the peer is untrusted, and
/// otherwise the peer or a list entry such that the peer and every entry
/// right of it are trusted addresses, and the walk had a reason to stop
/// there: the answer is untrusted, the list ends, or the entry left of it
/// is no address. Stated over the whole list, without walking it.
pub fn client_address(data: &[u8]) {
    let Some((&pick, list)) = data.split_first() else {
        return;
    };
    let peer: IpAddr = PEERS[pick as usize % PEERS.len()].parse().expect("a peer");
    let trusted: Vec<IpNet> = TRUSTED
        .iter()
        .map(|n| n.parse().expect("a network"))
        .collect();
    let is_trusted = |a: IpAddr| trusted.iter().any(|n| n.contains(&a.to_canonical()));
    let got = resolve(peer, Some(list), &trusted);
    if !is_trusted(peer) {
        assert_eq!(got, peer, "an untrusted peer is the client");
        return;
    }
    let entries: Vec<Option<IpAddr>> = list.split(|&b| b == b',').map(entry).collect();
    let stops_before = |k: usize| !is_trusted(got) || k == 0 || entries[k - 1].is_none();
    let is_peer = got == peer.to_canonical() && stops_before(entries.len());
    let is_entry = (0..entries.len()).any(|k| {
        entries[k] == Some(got)
            && entries[k + 1..].iter().all(|a| a.is_some_and(is_trusted))
            && stops_before(k)
    });
    assert!(
        is_peer || is_entry,
        "{got} from {peer} and {:?}",
        String::from_utf8_lossy(list)
    );
}

/// One list element read independently of the resolver: optional spaces or
/// tabs around an address std parses.
fn entry(bytes: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(bytes).ok()?;
    let address: IpAddr = text.trim_matches([' ', '\t']).parse().ok()?;
    Some(address.to_canonical())
}
