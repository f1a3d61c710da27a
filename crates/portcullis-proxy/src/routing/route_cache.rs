//! The last service each thread found, so that a request for the same
//! service as the one before (nearly every request of a busy worker) skips
//! the snapshot load and the two name lookups: about 230 of the 320
//! instructions a lookup cost (callgrind, `bench/perf/cg.sh`).
//!
//! An entry is good only for the gateway and the table change it was
//! filled under. It holds the service weakly: a service a reload removed
//! is not kept alive by an idle thread's cache.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use super::ServiceRuntime;

/// Gives every gateway its own id: a gateway dropped and another built at
/// the same address never find each other's entries.
static NEXT_GATEWAY: AtomicU64 = AtomicU64::new(1);

pub(super) fn gateway_id() -> u64 {
    NEXT_GATEWAY.fetch_add(1, Ordering::Relaxed)
}

struct Entry {
    gateway: u64,
    /// The gateway's change count when the entry was filled, read before
    /// the table was.
    changes: u64,
    topology: String,
    service: String,
    found: Weak<ServiceRuntime>,
}

thread_local! {
    static LAST: RefCell<Option<Entry>> = const { RefCell::new(None) };
}

/// The service this thread found last for these names, if nothing changed
/// since and it still exists.
pub(super) fn get(
    gateway: u64,
    changes: u64,
    topology: &str,
    service: &str,
) -> Option<Arc<ServiceRuntime>> {
    LAST.with(|last| {
        let last = last.try_borrow().ok()?;
        let entry = last.as_ref()?;
        let hit = entry.gateway == gateway
            && entry.changes == changes
            && entry.service == service
            && entry.topology == topology;
        hit.then(|| entry.found.upgrade()).flatten()
    })
}

/// Notes what a lookup found; `changes` as read before the table was.
pub(super) fn put(
    gateway: u64,
    changes: u64,
    topology: &str,
    service: &str,
    found: &Arc<ServiceRuntime>,
) {
    LAST.with(|last| {
        let Ok(mut last) = last.try_borrow_mut() else {
            return;
        };
        match &mut *last {
            Some(entry) => {
                entry.gateway = gateway;
                entry.changes = changes;
                entry.topology.clear();
                entry.topology.push_str(topology);
                entry.service.clear();
                entry.service.push_str(service);
                entry.found = Arc::downgrade(found);
            }
            None => {
                *last = Some(Entry {
                    gateway,
                    changes,
                    topology: topology.to_string(),
                    service: service.to_string(),
                    found: Arc::downgrade(found),
                })
            }
        }
    });
}
