//! Applying topology changes read from the store to the data plane, one at
//! a time, on one dedicated thread.

use std::sync::Arc;

use portcullis_proxy::{ConfigChange, Gateway};

/// A topology change read from the store.
pub enum TopologyChange {
    Upsert { name: String, text: String },
    Remove { name: String },
}

/// Applies one change on the member's apply thread and waits for it. True
/// when the member now serves the change (an upsert applied or equal to what
/// is served, a removal); false when it keeps the last good version.
/// Parsing, validating and building a large topology (or dropping one) takes
/// CPU for a long time; on the async threads it stalled every request of the
/// member meanwhile (issue 11). Callers await each change before the next,
/// so changes still apply in the order they were read.
pub async fn apply_change(gateway: &Arc<Gateway>, change: TopologyChange) -> bool {
    let (done, applied) = tokio::sync::oneshot::channel();
    let job: ApplyJob = (
        tokio::runtime::Handle::current(),
        gateway.clone(),
        change,
        done,
    );
    if APPLIER.send(job).is_err() {
        tracing::error!("the topology apply thread is gone; change not applied");
        return false;
    }
    applied.await.unwrap_or_else(|_| {
        tracing::error!("the topology apply thread is gone; change not applied");
        false
    })
}

type ApplyJob = (
    tokio::runtime::Handle,
    Arc<Gateway>,
    TopologyChange,
    tokio::sync::oneshot::Sender<bool>,
);

/// One thread for every apply of the process rather than the blocking pool:
/// the allocator keeps per-thread arenas, and builds spread over many
/// threads left each arena holding freed memory after a DELETE. Each change
/// runs inside its caller's runtime, for the health-check tasks it spawns.
static APPLIER: std::sync::LazyLock<std::sync::mpsc::Sender<ApplyJob>> =
    std::sync::LazyLock::new(|| {
        let (jobs, queue) = std::sync::mpsc::channel::<ApplyJob>();
        let spawned = std::thread::Builder::new()
            .name("portcullis-apply".to_string())
            .spawn(move || {
                for (runtime, gateway, change, done) in queue {
                    let _runtime = runtime.enter();
                    let applied = apply_now(&gateway, change);
                    let _ = done.send(applied);
                }
            });
        if let Err(err) = spawned {
            tracing::error!(error = %err, "cannot start the topology apply thread");
        }
        jobs
    });

/// At most this many errors of one topology are logged; the rest are counted.
const LOGGED_ERRORS: usize = 20;

/// Validates and applies one topology, on the calling thread. An invalid one
/// is logged and the last good version keeps serving.
fn apply_now(gateway: &Gateway, change: TopologyChange) -> bool {
    match change {
        TopologyChange::Upsert { name, text } => apply_topology(gateway, &name, &text),
        TopologyChange::Remove { name } => {
            if let Ok(generation) = gateway.apply(ConfigChange::RemoveTopology(name.clone())) {
                tracing::info!(topology = %name, generation, "topology removed");
            }
            true
        }
    }
}

fn apply_topology(gateway: &Gateway, name: &str, text: &str) -> bool {
    match portcullis_config::load_stored_topology(name, text, &gateway.base_dir) {
        Err(errors) => {
            for error in errors.0.iter().take(LOGGED_ERRORS) {
                tracing::error!(topology = name, "{error}; keeping the last good version");
            }
            if errors.0.len() > LOGGED_ERRORS {
                tracing::error!(
                    topology = name,
                    "{} more errors in {}; `portcullis check` lists them all",
                    errors.0.len() - LOGGED_ERRORS,
                    portcullis_config::stored_topology_label(name)
                );
            }
            false
        }
        Ok(topology) => match gateway.apply(ConfigChange::UpsertTopology(topology)) {
            Ok(generation) => {
                tracing::info!(topology = name, generation, "topology applied");
                let label = portcullis_config::stored_topology_label(name);
                for warning in portcullis_config::topology_warnings(&label, text) {
                    tracing::warn!(topology = name, "{warning}");
                }
                true
            }
            Err(err) => {
                tracing::error!(topology = name, error = %err, "topology not applied; keeping the last good version");
                false
            }
        },
    }
}
