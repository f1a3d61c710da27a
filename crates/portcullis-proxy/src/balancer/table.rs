//! The members the balancer chooses from, as plain data, and the choice
//! itself: the member the affinity cookie names while it is alive, otherwise
//! the live member with the fewest requests in flight, ties broken at random.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rand::Rng;

use crate::ha::CookieKey;

/// The cookie that keeps a client on one member.
pub const AFFINITY_COOKIE: &str = "PORTCULLIS_MEMBER";
const AFFINITY_LABEL: &str = "portcullis-member";

/// One member as the balancer sees it. The control plane copies it from the
/// member records in the store; the data plane never reads the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberTarget {
    pub id: String,
    /// The member's public base URL, requests' paths are appended to it.
    pub url: String,
    /// Requests in flight at the member, as of its last heartbeat.
    pub in_flight: u64,
    /// Until when (milliseconds since the epoch) the member counts as alive:
    /// its last heartbeat plus the heartbeats it may miss. The table keeps
    /// its last view while the store is away, so this ages members out.
    pub alive_until_ms: u64,
    /// An operator is draining the member: it keeps the clients whose
    /// affinity cookie names it and gets new ones only if every live member
    /// drains (draining never refuses, as HAProxy's drain).
    pub draining: bool,
}

impl MemberTarget {
    pub fn is_alive(&self, now_ms: u64) -> bool {
        now_ms < self.alive_until_ms
    }
}

/// One request in flight to a member (see [`MemberTable::begin`]).
pub(crate) struct InFlight(Arc<AtomicU64>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The live view of the cluster the balancer chooses from.
pub struct MemberTable {
    members: ArcSwap<Vec<MemberTarget>>,
    /// Requests this balancer is proxying to each member right now; added to
    /// the members' own (heartbeat-old) figures.
    local_in_flight: Mutex<HashMap<String, Arc<AtomicU64>>>,
    key: CookieKey,
}

impl MemberTable {
    pub fn new(key: CookieKey) -> MemberTable {
        MemberTable {
            members: ArcSwap::from_pointee(Vec::new()),
            local_in_flight: Mutex::new(HashMap::new()),
            key,
        }
    }

    pub fn replace(&self, members: Vec<MemberTarget>) {
        self.members.store(Arc::new(members));
    }

    /// Counts one request in flight to member `id` for as long as the guard
    /// lives: a client that disconnects drops the request's future, and with
    /// it the guard, so the count is given back on every path.
    pub(crate) fn begin(&self, id: &str) -> InFlight {
        let counter = self.local(id);
        counter.fetch_add(1, Ordering::Relaxed);
        InFlight(counter)
    }

    /// This balancer's own count of requests in flight to member `id`.
    pub(crate) fn local(&self, id: &str) -> Arc<AtomicU64> {
        let mut map = self
            .local_in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.entry(id.to_string()).or_default().clone()
    }

    /// The affinity cookie value for member `id`.
    pub(crate) fn tag(&self, id: &str) -> String {
        self.key.tag(AFFINITY_LABEL, id)
    }

    /// The member for a request carrying `cookie_values`, and whether the
    /// affinity cookie must be (re)set.
    pub fn choose(&self, cookie_values: &[&str], now_ms: u64) -> Option<(MemberTarget, bool)> {
        self.choose_except(cookie_values, now_ms, &[])
    }

    /// As [`MemberTable::choose`], leaving out the members in `excluded`
    /// (ones this request could not reach).
    pub fn choose_except(
        &self,
        cookie_values: &[&str],
        now_ms: u64,
        excluded: &[String],
    ) -> Option<(MemberTarget, bool)> {
        let members = self.members.load();
        let mut alive: Vec<&MemberTarget> = members
            .iter()
            .filter(|m| m.is_alive(now_ms) && !excluded.contains(&m.id))
            .collect();
        if let Some(member) = alive
            .iter()
            .find(|m| cookie_values.iter().any(|v| *v == self.tag(&m.id)))
        {
            return Some(((*member).clone(), false));
        }
        // New clients skip draining members, unless every live member drains.
        if alive.iter().any(|m| !m.draining) {
            alive.retain(|m| !m.draining);
        }
        let load = |m: &MemberTarget| m.in_flight + self.local(&m.id).load(Ordering::Relaxed);
        let pick = least_loaded(&alive, load)?;
        Some((pick.clone(), true))
    }
}

/// The member with the fewest requests in flight, ties broken at random.
/// Each member's load is read once: concurrent requests move the local
/// counts, and a second reading could leave no member at the minimum.
fn least_loaded<'a>(
    members: &[&'a MemberTarget],
    load: impl Fn(&MemberTarget) -> u64,
) -> Option<&'a MemberTarget> {
    let loads: Vec<u64> = members.iter().map(|m| load(m)).collect();
    let least = *loads.iter().min()?;
    let tied: Vec<&'a MemberTarget> = members
        .iter()
        .zip(&loads)
        .filter(|(_, l)| **l == least)
        .map(|(m, _)| *m)
        .collect();
    Some(tied[rand::rng().random_range(0..tied.len())])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A member last heard from at `heard_ms`, alive for three 1 s heartbeats.
    fn target(id: &str, in_flight: u64, heard_ms: u64) -> MemberTarget {
        MemberTarget {
            id: id.into(),
            url: format!("http://{id}:8443"),
            in_flight,
            alive_until_ms: heard_ms + 3_000,
            draining: false,
        }
    }

    #[test]
    fn a_draining_member_keeps_its_affinity_clients_only() {
        let table = MemberTable::new(CookieKey::new([4; 32]));
        let now = 100_000;
        let draining = MemberTarget {
            draining: true,
            ..target("a", 0, now)
        };
        table.replace(vec![draining.clone(), target("b", 9, now)]);
        for _ in 0..32 {
            assert_eq!(
                table.choose(&[], now).unwrap().0.id,
                "b",
                "a new client never goes to a draining member, however busy the other"
            );
        }
        let tag_a = table.tag("a");
        assert_eq!(
            table.choose(&[tag_a.as_str()], now).unwrap(),
            (draining.clone(), false),
            "a client whose cookie names it stays"
        );
        table.replace(vec![
            draining.clone(),
            MemberTarget {
                draining: true,
                ..target("b", 9, now)
            },
        ]);
        assert_eq!(
            table.choose(&[], now).unwrap().0.id,
            "a",
            "when every live member drains, choose among them rather than refuse"
        );
        table.replace(vec![draining, target("dead", 0, now - 5_000)]);
        assert_eq!(
            table.choose(&[], now).unwrap().0.id,
            "a",
            "a dead member never beats a draining live one"
        );
    }

    #[test]
    fn affinity_then_least_in_flight_among_the_living() {
        let table = MemberTable::new(CookieKey::new([1; 32]));
        let now = 100_000;
        table.replace(vec![
            target("a", 5, now),
            target("b", 1, now),
            target("dead", 0, now - 5_000),
        ]);
        let (first, set) = table.choose(&[], now).unwrap();
        assert_eq!(first.id, "b", "fewest in flight, never the dead one");
        assert!(set);
        let tag_a = table.tag("a");
        let (sticky, set) = table.choose(&[tag_a.as_str()], now).unwrap();
        assert_eq!(
            (sticky.id.as_str(), set),
            ("a", false),
            "a valid cookie wins while its member lives"
        );
        let tag_dead = table.tag("dead");
        let (moved, set) = table.choose(&[tag_dead.as_str()], now).unwrap();
        assert_eq!(
            (moved.id.as_str(), set),
            ("b", true),
            "a dead member's cookie is replaced"
        );
        assert!(table.choose(&["forged"], now).unwrap().1);
        table.replace(vec![target("dead", 0, now - 5_000)]);
        assert!(table.choose(&[], now).is_none(), "no live member: 503");
    }

    #[test]
    fn ties_are_broken_at_random() {
        let table = MemberTable::new(CookieKey::new([2; 32]));
        let now = 100_000;
        table.replace(vec![target("a", 0, now), target("b", 0, now)]);
        let picks: std::collections::BTreeSet<String> = (0..64)
            .map(|_| table.choose(&[], now).unwrap().0.id)
            .collect();
        assert_eq!(picks.len(), 2);
    }

    #[test]
    fn this_balancers_own_requests_count_toward_a_members_load() {
        let table = MemberTable::new(CookieKey::new([3; 32]));
        let now = 100_000;
        table.replace(vec![target("a", 1, now), target("b", 2, now)]);
        table.local("a").fetch_add(5, Ordering::Relaxed);
        assert_eq!(table.choose(&[], now).unwrap().0.id, "b");
        assert_eq!(
            table
                .choose_except(&[], now, &["b".to_string()])
                .unwrap()
                .0
                .id,
            "a",
            "an excluded member is never chosen"
        );
    }

    /// Loads that grow at every reading (requests starting on other threads
    /// meanwhile) still give a member: the choice reads each load once (it
    /// once read them twice, found none at the minimum, and panicked).
    #[test]
    fn a_load_moving_while_choosing_still_gives_a_member() {
        let members = [target("a", 0, 0), target("b", 0, 0)];
        let members: Vec<&MemberTarget> = members.iter().collect();
        let readings = std::sync::atomic::AtomicU64::new(0);
        let moving = |_: &MemberTarget| readings.fetch_add(1, Ordering::Relaxed);
        assert_eq!(least_loaded(&members, moving).unwrap().id, "a");
        assert_eq!(readings.load(Ordering::Relaxed), 2, "one reading each");
        assert!(least_loaded(&[], |_| 0).is_none());
    }

    #[test]
    fn a_member_is_alive_until_its_deadline() {
        let member = target("a", 0, 10_000);
        assert!(member.is_alive(12_999));
        assert!(!member.is_alive(13_000));
    }
}
