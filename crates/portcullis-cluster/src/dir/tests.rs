use super::*;
use crate::StoreEvent;

/// The next event other than alias snapshots (tested on their own).
async fn next(w: &mut StoreWatcher) -> StoreEvent {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(5), w.recv())
            .await
            .expect("event in time")
            .expect("watcher alive");
        if !matches!(event, StoreEvent::Aliases(_)) {
            return event;
        }
    }
}

#[tokio::test]
async fn put_get_list_delete_and_watch() {
    let dir = tempfile::tempdir().unwrap();
    let store = DirStore::new(dir.path());
    store.ensure_layout().unwrap();
    store.put_topology("sales", "a = 1").unwrap();
    assert_eq!(store.get_topology("sales").unwrap(), "a = 1");
    let mut watcher = store.watch(Duration::from_millis(20), None);
    assert_eq!(next(&mut watcher).await, StoreEvent::Connection(true));
    assert_eq!(
        next(&mut watcher).await,
        StoreEvent::AdminStates(BTreeMap::new())
    );
    assert_eq!(
        next(&mut watcher).await,
        StoreEvent::Changed {
            name: "sales".into(),
            text: "a = 1".into()
        }
    );
    store.put_topology("sales", "a = 2").unwrap();
    assert!(
        matches!(next(&mut watcher).await, StoreEvent::Changed { text, .. } if text == "a = 2")
    );
    store.delete_topology("sales").unwrap();
    assert_eq!(
        next(&mut watcher).await,
        StoreEvent::Removed {
            name: "sales".into()
        }
    );
    assert!(matches!(
        store.get_topology("sales"),
        Err(StoreError::NotFound(_))
    ));
    assert!(store.list_topologies().unwrap().is_empty());
}

#[tokio::test]
async fn backend_states_are_stored_listed_and_watched() {
    let dir = tempfile::tempdir().unwrap();
    let store = DirStore::new(dir.path());
    store.ensure_layout().unwrap();
    let mut watcher = store.watch(Duration::from_millis(20), None);
    assert_eq!(next(&mut watcher).await, StoreEvent::Connection(true));
    assert_eq!(
        next(&mut watcher).await,
        StoreEvent::AdminStates(BTreeMap::new())
    );
    store
        .set_backend_state("abc123", AdminState::Draining)
        .unwrap();
    let expected = BTreeMap::from([("abc123".to_string(), AdminState::Draining)]);
    assert_eq!(
        next(&mut watcher).await,
        StoreEvent::AdminStates(expected.clone())
    );
    assert_eq!(store.backend_states().unwrap(), expected);
    store
        .set_backend_state("abc123", AdminState::Enabled)
        .unwrap();
    assert_eq!(
        next(&mut watcher).await,
        StoreEvent::AdminStates(BTreeMap::new())
    );
    assert!(store
        .set_backend_state("../x", AdminState::Disabled)
        .is_err());
}

#[test]
fn concurrent_first_starts_agree_on_one_cookie_key() {
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<[u8; 32]> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    // As a member starts: the layout, then the key.
                    let store = DirStore::new(dir.path());
                    store.ensure_layout().unwrap();
                    store.cookie_key().unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(keys.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(DirStore::new(dir.path()).cookie_key().unwrap(), keys[0]);
}

#[test]
fn member_records_are_written_listed_and_removed() {
    use crate::members::{now_ms, RoleName};
    let dir = tempfile::tempdir().unwrap();
    let store = DirStore::new(dir.path());
    store.ensure_layout().unwrap();
    let mut record = MemberRecord {
        id: "m-1".into(),
        role: RoleName::Worker,
        public_url: "http://127.0.0.1:1".into(),
        admin_url: None,
        version: "0".into(),
        generation: 1,
        config_hash: String::new(),
        in_flight: 2,
        requests: 0,
        errors: 0,
        heartbeat_ms: 1000,
        updated_at_ms: now_ms(),
    };
    store.put_member(&record).unwrap();
    record.generation = 2;
    store.put_member(&record).unwrap();
    assert_eq!(store.members().unwrap(), vec![record.clone()]);
    store.remove_member("m-1").unwrap();
    assert!(store.members().unwrap().is_empty());
    assert!(store
        .put_member(&MemberRecord {
            id: "../x".into(),
            ..record
        })
        .is_err());
}

#[test]
fn names_that_escape_the_directory_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = DirStore::new(dir.path());
    store.ensure_layout().unwrap();
    assert!(matches!(
        store.put_topology("../x", "a"),
        Err(StoreError::BadName { .. })
    ));
}

#[tokio::test]
async fn an_unreadable_store_removes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = DirStore::new(&root);
    store.ensure_layout().unwrap();
    store.put_topology("t", "x").unwrap();
    let mut watcher = store.watch(Duration::from_millis(20), None);
    assert_eq!(next(&mut watcher).await, StoreEvent::Connection(true));
    assert!(matches!(
        next(&mut watcher).await,
        StoreEvent::AdminStates(_)
    ));
    assert!(matches!(
        next(&mut watcher).await,
        StoreEvent::Changed { .. }
    ));
    std::fs::rename(&root, dir.path().join("moved")).unwrap();
    assert_eq!(next(&mut watcher).await, StoreEvent::Connection(false));
    let quiet = tokio::time::timeout(Duration::from_millis(300), watcher.recv()).await;
    assert!(
        quiet.is_err(),
        "no event while the store is gone: {quiet:?}"
    );
    // Back as it was: reachable again, and nothing to re-apply.
    std::fs::rename(dir.path().join("moved"), &root).unwrap();
    assert_eq!(next(&mut watcher).await, StoreEvent::Connection(true));
    let quiet = tokio::time::timeout(Duration::from_millis(300), watcher.recv()).await;
    assert!(quiet.is_err(), "nothing changed: {quiet:?}");
}

/// An NFS share unmounted under a running member leaves its mount point
/// empty: the store's contents vanish but its root stays. That is an
/// outage (no marker), never "every topology and alias deleted".
#[tokio::test]
async fn an_emptied_store_directory_removes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let aside = dir.path().join("aside");
    let store = DirStore::new(&root);
    store.ensure_layout().unwrap();
    store.put_topology("t", "x").unwrap();
    store.put_alias("a", "sealed").unwrap();
    let mut watcher = store.watch(Duration::from_millis(20), None);
    assert_eq!(next(&mut watcher).await, StoreEvent::Connection(true));
    assert!(matches!(
        next(&mut watcher).await,
        StoreEvent::AdminStates(_)
    ));
    assert!(matches!(
        next(&mut watcher).await,
        StoreEvent::Changed { .. }
    ));
    // Empty the directory itself, as an unmount leaves it.
    std::fs::create_dir(&aside).unwrap();
    for entry in std::fs::read_dir(&root).unwrap() {
        let entry = entry.unwrap();
        std::fs::rename(entry.path(), aside.join(entry.file_name())).unwrap();
    }
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0);
    assert_eq!(next(&mut watcher).await, StoreEvent::Connection(false));
    let quiet = tokio::time::timeout(Duration::from_millis(300), watcher.recv()).await;
    assert!(
        quiet.is_err(),
        "nothing removed while the store is empty: {quiet:?}"
    );
    assert!(
        store.members().is_err(),
        "no member list from an emptied store"
    );
    // Mounted again: reachable, and nothing to re-apply.
    for entry in std::fs::read_dir(&aside).unwrap() {
        let entry = entry.unwrap();
        std::fs::rename(entry.path(), root.join(entry.file_name())).unwrap();
    }
    assert_eq!(next(&mut watcher).await, StoreEvent::Connection(true));
    let quiet = tokio::time::timeout(Duration::from_millis(300), watcher.recv()).await;
    assert!(quiet.is_err(), "nothing changed: {quiet:?}");
}

#[tokio::test]
async fn a_topology_file_that_is_not_text_is_skipped_and_its_fix_applies() {
    let dir = tempfile::tempdir().unwrap();
    let store = DirStore::new(dir.path());
    store.ensure_layout().unwrap();
    store.put_topology("good", "a = 1").unwrap();
    let bad = dir.path().join("topologies/bad.toml");
    std::fs::write(&bad, [0xff, 0xfe]).unwrap();
    let mut watcher = store.watch(Duration::from_millis(20), None);
    assert_eq!(next(&mut watcher).await, StoreEvent::Connection(true));
    assert!(matches!(
        next(&mut watcher).await,
        StoreEvent::AdminStates(_)
    ));
    assert!(matches!(next(&mut watcher).await, StoreEvent::Changed { name, .. } if name == "good"));
    // Replaced atomically, as the store writes: a poll never sees half of it.
    let fixed = dir.path().join("topologies/.bad.toml.tmp");
    std::fs::write(&fixed, "b = 1").unwrap();
    std::fs::rename(&fixed, &bad).unwrap();
    assert_eq!(
        next(&mut watcher).await,
        StoreEvent::Changed {
            name: "bad".into(),
            text: "b = 1".into()
        }
    );
}

#[tokio::test]
async fn alias_changes_are_watched() {
    let dir = tempfile::tempdir().unwrap();
    let store = DirStore::new(dir.path());
    store.ensure_layout().unwrap();
    let mut watcher = store.watch(Duration::from_millis(20), None);
    let mut events = Vec::new();
    for _ in 0..3 {
        events.push(watcher.recv().await.expect("watcher alive"));
    }
    assert_eq!(
        events,
        vec![
            StoreEvent::Connection(true),
            StoreEvent::Aliases(BTreeMap::new()),
            StoreEvent::AdminStates(BTreeMap::new()),
        ]
    );
    store.put_alias("db.password", "sealed-1").unwrap();
    let event = tokio::time::timeout(Duration::from_secs(5), watcher.recv()).await;
    let expected = BTreeMap::from([("db.password".to_string(), "sealed-1".to_string())]);
    assert_eq!(event, Ok(Some(StoreEvent::Aliases(expected))));
}

fn manager_record(id: &str, updated_at_ms: u64) -> MemberRecord {
    MemberRecord {
        id: id.into(),
        role: crate::members::RoleName::Manager,
        public_url: "http://127.0.0.1:1".into(),
        admin_url: None,
        version: "0".into(),
        generation: 0,
        config_hash: String::new(),
        in_flight: 0,
        requests: 0,
        errors: 0,
        heartbeat_ms: 1000,
        updated_at_ms,
    }
}

#[test]
fn writes_never_recreate_a_vanished_store_root() {
    use crate::members::now_ms;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = DirStore::new(&root);
    store.ensure_layout().unwrap();
    std::fs::remove_dir_all(&root).unwrap();
    let record = manager_record("m-1", now_ms());
    assert!(store.put_member(&record).is_err());
    assert!(store.put_topology("t", "x").is_err());
    assert!(store.set_backend_state("b", AdminState::Draining).is_err());
    assert!(!root.exists(), "a write recreated the store root");
}

#[test]
fn records_of_long_silent_members_are_pruned() {
    use crate::members::now_ms;
    let dir = tempfile::tempdir().unwrap();
    let store = DirStore::new(dir.path());
    store.ensure_layout().unwrap();
    let record = |id: &str, age_ms: u64| manager_record(id, now_ms() - age_ms);
    store.put_member(&record("fresh", 0)).unwrap();
    store.put_member(&record("gone-a-while", 5_000)).unwrap();
    store.put_member(&record("long-dead", 3_600_000)).unwrap();
    let pruned = store.prune_members(Duration::from_secs(60)).unwrap();
    assert_eq!(pruned, vec!["long-dead".to_string()]);
    let mut left: Vec<String> = store.members().unwrap().into_iter().map(|m| m.id).collect();
    left.sort();
    assert_eq!(left, vec!["fresh".to_string(), "gone-a-while".to_string()]);
}
