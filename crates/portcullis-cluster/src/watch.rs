//! What a store watcher hands a member: [`StoreEvent`]s on a channel, from a
//! background task that stops when the [`StoreWatcher`] is dropped. Both
//! stores feed the channel through one [`Reporter`], which turns each read
//! into events with [`diff`](crate::diff::diff) and reports reachability only
//! when it changes.

use tokio::sync::mpsc;
use tokio_util::task::AbortOnDropHandle;

pub use crate::diff::StoreEvent;
use crate::diff::{self, Snapshot};

/// The events of a store, while this value lives. Its fields stay private:
/// a caller that moved only the receiver out would drop the task handle and
/// so stop the watch.
pub struct StoreWatcher {
    events: mpsc::Receiver<StoreEvent>,
    _task: AbortOnDropHandle<()>,
}

impl StoreWatcher {
    /// The next event; `None` only if the watch task ended.
    pub async fn recv(&mut self) -> Option<StoreEvent> {
        self.events.recv().await
    }

    /// Starts `watch` with the sending half of a fresh channel. `known` is
    /// what the member already serves (from its cache), so the first read
    /// reports only the differences, removals included; `None` reports
    /// everything.
    pub(crate) fn spawn<F>(
        known: Option<Snapshot>,
        watch: impl FnOnce(Reporter) -> F,
    ) -> StoreWatcher
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let (tx, events) = mpsc::channel(64);
        let mut reporter = Reporter::new(tx);
        reporter.reported = known;
        let task = tokio::spawn(watch(reporter));
        StoreWatcher {
            events,
            _task: AbortOnDropHandle::new(task),
        }
    }
}

/// The member stopped listening: the watcher task should end.
#[derive(Debug)]
pub(crate) struct ReceiverGone;

/// What a watcher task has told its member so far, and the channel to tell
/// it more.
pub(crate) struct Reporter {
    tx: mpsc::Sender<StoreEvent>,
    reported: Option<Snapshot>,
    connected: Option<bool>,
}

impl Reporter {
    fn new(tx: mpsc::Sender<StoreEvent>) -> Reporter {
        Reporter {
            tx,
            reported: None,
            connected: None,
        }
    }

    /// Reports whether the store is reachable, when that differs from the
    /// last report (the first is always sent). True when it was sent, so
    /// the caller logs the transition once.
    pub(crate) async fn connection(&mut self, up: bool) -> Result<bool, ReceiverGone> {
        if self.connected == Some(up) {
            return Ok(false);
        }
        self.connected = Some(up);
        self.send(StoreEvent::Connection(up)).await?;
        Ok(true)
    }

    /// Reports what changed since the last snapshot. `store` names the store
    /// in the log line for a topology that is not UTF-8 text.
    pub(crate) async fn snapshot(
        &mut self,
        next: Snapshot,
        store: &str,
    ) -> Result<(), ReceiverGone> {
        for name in diff::not_text(self.reported.as_ref(), &next) {
            tracing::error!(
                store,
                file = %portcullis_config::stored_topology_label(name),
                "topology is not UTF-8 text; keeping the last good version"
            );
        }
        let mut events = diff::diff(self.reported.as_ref(), &next);
        let known_revision = self.reported.as_ref().and_then(|r| r.revision);
        if let Some(revision) = next.revision.filter(|r| Some(*r) != known_revision) {
            events.push(StoreEvent::Revision(revision));
        }
        self.reported = Some(next);
        for event in events {
            self.send(event).await?;
        }
        Ok(())
    }

    async fn send(&self, event: StoreEvent) -> Result<(), ReceiverGone> {
        self.tx.send(event).await.map_err(|_| ReceiverGone)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Every event sent until the reporter was dropped.
    async fn all_events(rx: &mut mpsc::Receiver<StoreEvent>) -> Vec<StoreEvent> {
        let mut seen = Vec::new();
        while let Some(event) = rx.recv().await {
            seen.push(event);
        }
        seen
    }

    fn changed(text: &str) -> StoreEvent {
        StoreEvent::Changed {
            name: "t".into(),
            text: text.into(),
        }
    }

    fn with_topology(text: &str) -> Snapshot {
        Snapshot {
            topologies: BTreeMap::from([("t".to_string(), text.as_bytes().to_vec())]),
            ..Snapshot::default()
        }
    }

    #[tokio::test]
    async fn reachability_is_reported_only_when_it_changes() {
        let (tx, mut rx) = mpsc::channel(8);
        let mut reporter = Reporter::new(tx);
        assert!(reporter.connection(true).await.unwrap());
        assert!(!reporter.connection(true).await.unwrap());
        assert!(reporter.connection(false).await.unwrap());
        assert!(!reporter.connection(false).await.unwrap());
        assert!(reporter.connection(true).await.unwrap());
        drop(reporter);
        let seen = all_events(&mut rx).await;
        assert_eq!(
            seen,
            vec![
                StoreEvent::Connection(true),
                StoreEvent::Connection(false),
                StoreEvent::Connection(true),
            ]
        );
    }

    #[tokio::test]
    async fn each_snapshot_is_compared_with_the_last_one_reported() {
        let (tx, mut rx) = mpsc::channel(8);
        let mut reporter = Reporter::new(tx);
        reporter.snapshot(with_topology("1"), "test").await.unwrap();
        reporter.snapshot(with_topology("1"), "test").await.unwrap();
        reporter.snapshot(with_topology("2"), "test").await.unwrap();
        drop(reporter);
        let seen = all_events(&mut rx).await;
        assert_eq!(
            seen,
            vec![
                StoreEvent::Aliases(BTreeMap::new()),
                StoreEvent::AdminStates(BTreeMap::new()),
                changed("1"),
                changed("2"),
            ]
        );
    }

    /// A member that started from its cache tells the watcher what it serves:
    /// the store's first read then removes what the store no longer has and
    /// leaves alone what is unchanged.
    #[tokio::test]
    async fn a_known_snapshot_makes_the_first_read_report_only_differences() {
        let cached = Snapshot {
            topologies: BTreeMap::from([
                ("t".to_string(), b"1".to_vec()),
                ("gone".to_string(), b"1".to_vec()),
            ]),
            ..Snapshot::default()
        };
        let mut watcher = StoreWatcher::spawn(Some(cached), |mut reporter| async move {
            let _ = reporter.snapshot(with_topology("1"), "test").await;
            std::future::pending::<()>().await
        });
        let event = tokio::time::timeout(std::time::Duration::from_secs(5), watcher.recv()).await;
        assert_eq!(
            event.unwrap(),
            Some(StoreEvent::Removed {
                name: "gone".into()
            })
        );
    }

    /// etcd's revision follows the events of the read it belongs to, once
    /// per new revision; a store without revisions never reports one.
    #[tokio::test]
    async fn a_new_revision_is_reported_after_the_changes_read_at_it() {
        let (tx, mut rx) = mpsc::channel(16);
        let mut reporter = Reporter::new(tx);
        let at = |text: &str, revision: Option<i64>| Snapshot {
            revision,
            ..with_topology(text)
        };
        reporter.snapshot(at("1", Some(7)), "test").await.unwrap();
        reporter.snapshot(at("1", Some(7)), "test").await.unwrap();
        reporter.snapshot(at("2", Some(9)), "test").await.unwrap();
        reporter.snapshot(at("3", None), "test").await.unwrap();
        drop(reporter);
        let seen = all_events(&mut rx).await;
        assert_eq!(
            seen,
            vec![
                StoreEvent::Aliases(BTreeMap::new()),
                StoreEvent::AdminStates(BTreeMap::new()),
                changed("1"),
                StoreEvent::Revision(7),
                changed("2"),
                StoreEvent::Revision(9),
                changed("3"),
            ]
        );
    }

    #[tokio::test]
    async fn a_closed_channel_tells_the_task_to_stop() {
        let (tx, rx) = mpsc::channel(8);
        let mut reporter = Reporter::new(tx);
        drop(rx);
        assert!(reporter.connection(true).await.is_err());
        assert!(reporter.snapshot(with_topology("1"), "test").await.is_err());
    }

    #[tokio::test]
    async fn a_watcher_moved_into_a_task_keeps_watching() {
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let mut watcher = StoreWatcher::spawn(None, |mut reporter| async move {
            if go_rx.await.is_ok() {
                let _ = reporter.connection(true).await;
            }
            std::future::pending::<()>().await
        });
        let consumer = tokio::spawn(async move { watcher.recv().await });
        tokio::task::yield_now().await;
        go_tx.send(()).expect("the watch task still runs");
        let event = tokio::time::timeout(std::time::Duration::from_secs(5), consumer).await;
        assert_eq!(event.unwrap().unwrap(), Some(StoreEvent::Connection(true)));
    }

    #[tokio::test]
    async fn dropping_the_watcher_stops_its_task() {
        let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
        let watcher = StoreWatcher::spawn(None, |_reporter| async move {
            // Dropped (and so sends nothing) only when the task is aborted.
            let _stopped = stopped_tx;
            std::future::pending::<()>().await
        });
        drop(watcher);
        let outcome = tokio::time::timeout(std::time::Duration::from_secs(5), stopped_rx).await;
        assert!(
            matches!(outcome, Ok(Err(_))),
            "the task still runs: {outcome:?}"
        );
    }
}
