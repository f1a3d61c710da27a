//! The client's address behind trusted proxies (`[gateway] trusted_proxies`,
//! PRODUCT.md §2 and §11).
//!
//! Each proxy in front of the gateway appends the address it was reached
//! from to X-Forwarded-For, so the list reads from the client towards the
//! gateway. Only what trusted proxies wrote is believed. Walking from the
//! right, starting with the peer, each trusted address vouches for the entry
//! to its left; the first address that is not trusted is the client.
//! Whatever a client wrote itself lies further left and is never read.

use std::net::IpAddr;

use ipnet::IpNet;

/// The client's address: `peer` when it is not a trusted proxy (or nothing
/// is trusted), else the rightmost `forwarded_for` entry (the client's
/// X-Forwarded-For fields joined, `headers::client_forwarded_for`) that is
/// not trusted. An entry that is no plain address (a port, a name,
/// `unknown`, an empty element) ends the walk: nothing beyond it can be
/// vouched for, so the last address reached stands, which is what a trusted
/// proxy itself wrote or the peer.
pub fn resolve(peer: IpAddr, forwarded_for: Option<&[u8]>, trusted: &[IpNet]) -> IpAddr {
    let mut client = peer.to_canonical();
    if !is_trusted(client, trusted) {
        return peer;
    }
    let Some(list) = forwarded_for else {
        return client;
    };
    for entry in list.rsplit(|&b| b == b',') {
        let Some(address) = parse_entry(entry) else {
            return client;
        };
        client = address;
        if !is_trusted(client, trusted) {
            return client;
        }
    }
    client
}

fn is_trusted(address: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&address))
}

/// One list element: an IPv4 or IPv6 address between optional spaces or
/// tabs, nothing else (std's parser refuses leading zeros in IPv4 octets,
/// which some parsers read as octal).
fn parse_entry(entry: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(entry).ok()?;
    let address: IpAddr = text.trim_matches([' ', '\t']).parse().ok()?;
    Some(address.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter()
            .map(|n| n.parse().unwrap_or_else(|_| IpNet::from(ip(n))))
            .collect()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn client(peer: &str, xff: Option<&str>, trusted: &[&str]) -> IpAddr {
        resolve(ip(peer), xff.map(str::as_bytes), &nets(trusted))
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        assert_eq!(
            client("203.0.113.9", Some("1.2.3.4"), &[]),
            ip("203.0.113.9")
        );
        assert_eq!(
            client("203.0.113.9", Some("1.2.3.4"), &["10.0.0.0/8"]),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn the_rightmost_untrusted_entry_is_the_client() {
        let trusted = ["10.0.0.0/8", "192.0.2.7"];
        // The client forged 6.6.6.6; the edge proxy appended what it saw.
        let xff = Some("6.6.6.6, 198.51.100.4, 192.0.2.7");
        assert_eq!(client("10.1.1.1", xff, &trusted), ip("198.51.100.4"));
        assert_eq!(
            client("10.1.1.1", Some(" 2001:db8::5 ,\t10.2.2.2 "), &trusted),
            ip("2001:db8::5")
        );
    }

    #[test]
    fn a_chain_of_trusted_addresses_ends_at_its_leftmost() {
        assert_eq!(
            client("10.1.1.1", Some("10.9.9.9, 10.2.2.2"), &["10.0.0.0/8"]),
            ip("10.9.9.9")
        );
        assert_eq!(client("10.1.1.1", None, &["10.0.0.0/8"]), ip("10.1.1.1"));
    }

    #[test]
    fn an_entry_that_is_no_address_ends_the_walk() {
        let trusted = ["10.0.0.0/8"];
        for bad in [
            "unknown",
            "1.2.3.4:80",
            "[::1]",
            "01.2.3.4",
            "",
            "example.com",
            "1.2.3.4 5.6.7.8",
        ] {
            let xff = format!("{bad}, 10.2.2.2");
            assert_eq!(
                client("10.1.1.1", Some(&xff), &trusted),
                ip("10.2.2.2"),
                "{xff:?}"
            );
        }
    }

    #[test]
    fn mapped_ipv4_is_matched_as_ipv4() {
        assert_eq!(
            client(
                "::ffff:10.1.1.1",
                Some("::ffff:198.51.100.4"),
                &["10.0.0.0/8"]
            ),
            ip("198.51.100.4")
        );
    }

    /// Whether `got` is a valid answer for this peer and list, stated
    /// without the walk: it is the peer or an entry at some position, every
    /// address right of that position and the peer are trusted, and the walk
    /// had to stop there (an untrusted answer, the list's end, or an entry
    /// beyond that is no address).
    fn is_valid_answer(got: IpAddr, peer: IpAddr, entries: &[&str], trusted: &[IpNet]) -> bool {
        let parsed: Vec<Option<IpAddr>> = entries.iter().map(|e| e.trim().parse().ok()).collect();
        let stops_before =
            |k: usize| !is_trusted(got, trusted) || k == 0 || parsed[k - 1].is_none();
        if got == peer && (!is_trusted(peer, trusted) || stops_before(parsed.len())) {
            return true;
        }
        (0..parsed.len()).any(|k| {
            parsed[k] == Some(got)
                && is_trusted(peer, trusted)
                && parsed[k + 1..]
                    .iter()
                    .all(|a| a.is_some_and(|a| is_trusted(a, trusted)))
                && stops_before(k)
        })
    }

    proptest! {
        #[test]
        fn the_client_is_vouched_for_by_trusted_addresses_only(
            peer in 0usize..4,
            entries in proptest::collection::vec(0usize..6, 0..6),
        ) {
            let pool = ["10.0.0.1", "10.0.0.2", "198.51.100.1", "198.51.100.2", "bogus", "::1"];
            let trusted = nets(&["10.0.0.0/8", "::1"]);
            let entries: Vec<&str> = entries.iter().map(|&i| pool[i]).collect();
            let list = entries.join(", ");
            let peer = ip(pool[peer]);
            let got = resolve(peer, (!list.is_empty()).then_some(list.as_bytes()), &trusted);
            prop_assert!(is_valid_answer(got, peer, &entries, &trusted), "{got} from {peer} and {list:?}");
        }
    }
}
