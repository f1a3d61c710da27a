//! What changed between two reads of a store, as the events a member applies.
//! Both stores (the polled `dir:` and the watched `etcd://`) build a
//! [`Snapshot`] and report [`diff`] of it against the last one they reported,
//! so they emit the same events in the same situations.

use std::collections::BTreeMap;

use portcullis_config::AdminState;

/// One change in a store, in the order a member must apply them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreEvent {
    /// A topology was added or its text changed.
    Changed {
        name: String,
        text: String,
    },
    Removed {
        name: String,
    },
    /// Every backend admin state that is not `enabled`, whenever any changed.
    AdminStates(BTreeMap<String, AdminState>),
    /// The store became reachable (true) or unreachable (false).
    Connection(bool),
    /// Every sealed alias value by name, whenever any changed.
    Aliases(BTreeMap<String, String>),
    /// Every API key record's text by name, whenever any changed (not in
    /// the first report when there are none: a member starts with none).
    ApiKeys(BTreeMap<String, String>),
    /// The store revision the member has now read up to (etcd only), after
    /// the events of that read.
    Revision(i64),
}

/// Everything a member follows in a store, as read at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Topology name -> the stored bytes. Bytes, not text: a record that is
    /// not UTF-8 is still a version, so a later fix of it is noticed.
    pub topologies: BTreeMap<String, Vec<u8>>,
    /// Backend id -> admin state, for backends that are not `enabled`.
    pub admin_states: BTreeMap<String, AdminState>,
    /// Alias name -> sealed value.
    pub aliases: BTreeMap<String, String>,
    /// API key name -> record text (a keyed hash, never a key).
    pub api_keys: BTreeMap<String, String>,
    /// The store revision this was read at: etcd's, `None` for a `dir:`
    /// store. Not compared by [`diff`]; the watcher reports it on its own.
    pub revision: Option<i64>,
}

/// The events that take a member from `previous` (what was reported so far;
/// `None` before the first report) to `next`.
///
/// Order, which the member relies on:
/// 1. `Aliases`, then `AdminStates`, each only when it changed (always in the
///    first report, empty or not), so a topology of the same snapshot is
///    applied with the credentials and backend states stored beside it;
///    then `ApiKeys` when the key records changed (a first report with no
///    keys leaves it out: a member starts with an empty key table);
/// 2. `Changed` for each new or changed topology, by name;
/// 3. `Removed` for each topology that is gone, by name.
///
/// A topology whose new version is not UTF-8 gets no event: the member keeps
/// its last good version, as it does for a version that does not validate
/// (`not_text` names such versions, for the log).
pub fn diff(previous: Option<&Snapshot>, next: &Snapshot) -> Vec<StoreEvent> {
    let mut events = Vec::new();
    if previous.map(|p| &p.aliases) != Some(&next.aliases) {
        events.push(StoreEvent::Aliases(next.aliases.clone()));
    }
    if previous.map(|p| &p.admin_states) != Some(&next.admin_states) {
        events.push(StoreEvent::AdminStates(next.admin_states.clone()));
    }
    let known_keys = previous.map(|p| &p.api_keys);
    if known_keys.map_or(!next.api_keys.is_empty(), |k| k != &next.api_keys) {
        events.push(StoreEvent::ApiKeys(next.api_keys.clone()));
    }
    for (name, bytes) in new_versions(previous, next) {
        if let Ok(text) = std::str::from_utf8(bytes) {
            events.push(StoreEvent::Changed {
                name: name.to_string(),
                text: text.to_string(),
            });
        }
    }
    if let Some(previous) = previous {
        let removed = previous
            .topologies
            .keys()
            .filter(|name| !next.topologies.contains_key(*name));
        events.extend(removed.map(|name| StoreEvent::Removed { name: name.clone() }));
    }
    events
}

/// Names of topologies whose new version in `next` is not UTF-8 text: each
/// such version is worth one log line, not one per read.
pub fn not_text<'a>(previous: Option<&Snapshot>, next: &'a Snapshot) -> Vec<&'a str> {
    new_versions(previous, next)
        .into_iter()
        .filter(|(_, bytes)| std::str::from_utf8(bytes).is_err())
        .map(|(name, _)| name)
        .collect()
}

/// Topologies of `next` that `previous` did not hold with the same bytes.
fn new_versions<'n>(previous: Option<&Snapshot>, next: &'n Snapshot) -> Vec<(&'n str, &'n [u8])> {
    next.topologies
        .iter()
        .filter(|(name, bytes)| previous.and_then(|p| p.topologies.get(*name)) != Some(*bytes))
        .map(|(name, bytes)| (name.as_str(), bytes.as_slice()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(topologies: &[(&str, &str)]) -> Snapshot {
        Snapshot {
            topologies: topologies
                .iter()
                .map(|(name, text)| (name.to_string(), text.as_bytes().to_vec()))
                .collect(),
            ..Snapshot::default()
        }
    }

    fn changed(name: &str, text: &str) -> StoreEvent {
        StoreEvent::Changed {
            name: name.into(),
            text: text.into(),
        }
    }

    fn removed(name: &str) -> StoreEvent {
        StoreEvent::Removed { name: name.into() }
    }

    fn states(entries: &[(&str, AdminState)]) -> BTreeMap<String, AdminState> {
        entries.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    fn sealed(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_first_report_describes_everything_even_when_empty() {
        assert_eq!(
            diff(None, &Snapshot::default()),
            vec![
                StoreEvent::Aliases(BTreeMap::new()),
                StoreEvent::AdminStates(BTreeMap::new()),
            ]
        );
        let full = Snapshot {
            admin_states: states(&[("ab12", AdminState::Draining)]),
            aliases: sealed(&[("db.password", "sealed:1")]),
            ..snapshot(&[("sales", "b"), ("hr", "a")])
        };
        assert_eq!(
            diff(None, &full),
            vec![
                StoreEvent::Aliases(full.aliases.clone()),
                StoreEvent::AdminStates(full.admin_states.clone()),
                changed("hr", "a"),
                changed("sales", "b"),
            ]
        );
    }

    #[test]
    fn key_records_are_reported_when_they_change_and_first_only_when_present() {
        let with_key = Snapshot {
            api_keys: sealed(&[("ci", "{\"hash\":\"h\"}")]),
            ..Snapshot::default()
        };
        let first = diff(None, &with_key);
        assert_eq!(first[2], StoreEvent::ApiKeys(with_key.api_keys.clone()));
        assert_eq!(diff(Some(&with_key), &with_key.clone()), vec![]);
        // Revoking the last key reports the empty set.
        assert_eq!(
            diff(Some(&with_key), &Snapshot::default()),
            vec![StoreEvent::ApiKeys(BTreeMap::new())]
        );
        // A member that started from its cache (no keys known) learns them.
        let cached = Snapshot::default();
        assert_eq!(
            diff(Some(&cached), &with_key),
            vec![StoreEvent::ApiKeys(with_key.api_keys.clone())]
        );
    }

    #[test]
    fn equal_snapshots_give_no_events() {
        let full = Snapshot {
            admin_states: states(&[("ab12", AdminState::Disabled)]),
            aliases: sealed(&[("a", "s")]),
            ..snapshot(&[("t", "x")])
        };
        assert_eq!(diff(Some(&full), &full.clone()), vec![]);
        assert_eq!(
            diff(Some(&Snapshot::default()), &Snapshot::default()),
            vec![]
        );
    }

    #[test]
    fn added_changed_and_removed_topologies_each_give_one_event() {
        let before = snapshot(&[("kept", "1"), ("edited", "1"), ("dropped", "1")]);
        let after = snapshot(&[("kept", "1"), ("edited", "2"), ("added", "1")]);
        assert_eq!(
            diff(Some(&before), &after),
            vec![
                changed("added", "1"),
                changed("edited", "2"),
                removed("dropped"),
            ]
        );
    }

    #[test]
    fn changes_come_by_name_and_before_removals() {
        let before = snapshot(&[("a", "1"), ("m", "1"), ("z", "1")]);
        let after = snapshot(&[("b", "1"), ("m", "2"), ("y", "1")]);
        assert_eq!(
            diff(Some(&before), &after),
            vec![
                changed("b", "1"),
                changed("m", "2"),
                changed("y", "1"),
                removed("a"),
                removed("z"),
            ]
        );
    }

    #[test]
    fn alias_changes_report_every_alias() {
        let before = Snapshot {
            aliases: sealed(&[("a", "1"), ("b", "1")]),
            ..Snapshot::default()
        };
        let after = Snapshot {
            aliases: sealed(&[("a", "1"), ("b", "2"), ("c", "1")]),
            ..Snapshot::default()
        };
        assert_eq!(
            diff(Some(&before), &after),
            vec![StoreEvent::Aliases(after.aliases.clone())]
        );
        let emptied = Snapshot::default();
        assert_eq!(
            diff(Some(&after), &emptied),
            vec![StoreEvent::Aliases(BTreeMap::new())]
        );
    }

    #[test]
    fn admin_state_changes_report_every_state() {
        let before = Snapshot {
            admin_states: states(&[("aa", AdminState::Draining)]),
            ..Snapshot::default()
        };
        let after = Snapshot {
            admin_states: states(&[("aa", AdminState::Disabled), ("bb", AdminState::Draining)]),
            ..Snapshot::default()
        };
        assert_eq!(
            diff(Some(&before), &after),
            vec![StoreEvent::AdminStates(after.admin_states.clone())]
        );
        // Back to `enabled`: the record is gone, and the empty map says so.
        assert_eq!(
            diff(Some(&after), &Snapshot::default()),
            vec![StoreEvent::AdminStates(BTreeMap::new())]
        );
    }

    #[test]
    fn credentials_and_states_come_before_the_topologies_of_the_same_read() {
        let before = snapshot(&[("gone", "1")]);
        let after = Snapshot {
            admin_states: states(&[("aa", AdminState::Disabled)]),
            aliases: sealed(&[("pw", "s")]),
            ..snapshot(&[("new", "1")])
        };
        assert_eq!(
            diff(Some(&before), &after),
            vec![
                StoreEvent::Aliases(after.aliases.clone()),
                StoreEvent::AdminStates(after.admin_states.clone()),
                changed("new", "1"),
                removed("gone"),
            ]
        );
    }

    #[test]
    fn a_version_that_is_not_text_is_skipped_once_and_its_fix_applies() {
        let good = snapshot(&[("t", "x = 1")]);
        let mut broken = good.clone();
        broken.topologies.insert("t".into(), vec![0xff, 0xfe]);
        assert_eq!(diff(Some(&good), &broken), vec![]);
        assert_eq!(not_text(Some(&good), &broken), vec!["t"]);
        // The same broken bytes again: nothing new to say.
        assert_eq!(not_text(Some(&broken), &broken), Vec::<&str>::new());
        // Fixed back to the very text the member still serves: applied again,
        // since the last version reported was the broken one.
        assert_eq!(diff(Some(&broken), &good), vec![changed("t", "x = 1")]);
        assert_eq!(not_text(Some(&broken), &good), Vec::<&str>::new());
        // Removed while broken: the member drops its last good version.
        assert_eq!(
            diff(Some(&broken), &Snapshot::default()),
            vec![removed("t")]
        );
    }

    #[test]
    fn a_new_topology_that_is_not_text_is_reported_by_name_only() {
        let mut first = snapshot(&[("ok", "1")]);
        first.topologies.insert("bad".into(), vec![0xc3]);
        assert_eq!(not_text(None, &first), vec!["bad"]);
        assert!(diff(None, &first).contains(&changed("ok", "1")));
        assert!(!diff(None, &first)
            .iter()
            .any(|e| matches!(e, StoreEvent::Changed { name, .. } if name == "bad")));
    }
}
