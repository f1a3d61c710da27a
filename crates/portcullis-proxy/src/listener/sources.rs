//! Per-source accounting of HTTP/2 abuse: a client that resets streams on
//! connection after connection (rapid reset with reconnects) stays under any
//! per-connection limit, so resets are also summed per source address, and a
//! source over the limit, or one of whose connections was ended for abuse,
//! has its new connections closed at once for a cool-off period, as nginx and
//! HAProxy do.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Window over which a source's resets are summed.
pub const SOURCE_WINDOW: Duration = Duration::from_secs(10);
/// Reset streams one source may cause per window, over all its connections.
pub const SOURCE_RESETS_PER_WINDOW: u64 = 1024;
/// How long a throttled source's new connections are refused.
pub const COOL_OFF: Duration = Duration::from_secs(10);
/// Sources tracked at most; beyond this, stale entries are dropped, and if
/// none is stale a new source goes untracked rather than growing the table.
const MAX_SOURCES: usize = 16_384;

#[derive(Debug)]
struct Entry {
    window_start: Instant,
    resets: u64,
    blocked_until: Option<Instant>,
}

impl Entry {
    fn stale(&self, now: Instant) -> bool {
        now.duration_since(self.window_start) >= SOURCE_WINDOW
            && self.blocked_until.is_none_or(|until| until <= now)
    }
}

#[derive(Debug, Default)]
pub(crate) struct Sources {
    entries: Mutex<HashMap<IpAddr, Entry>>,
}

impl Sources {
    /// Whether a new connection from `ip` may be served.
    pub(crate) fn admits(&self, ip: IpAddr) -> bool {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.is_empty() {
            return true;
        }
        let now = Instant::now();
        !matches!(entries.get(&ip), Some(Entry { blocked_until: Some(until), .. }) if *until > now)
    }

    /// Records what one connection from `ip` did, when it ends (or is ended).
    pub(crate) fn record(&self, ip: IpAddr, resets: u64, abusive: bool) {
        if resets == 0 && !abusive {
            return;
        }
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_SOURCES && !entries.contains_key(&ip) {
            entries.retain(|_, entry| !entry.stale(now));
            if entries.len() >= MAX_SOURCES {
                return;
            }
        }
        let entry = entries.entry(ip).or_insert(Entry {
            window_start: now,
            resets: 0,
            blocked_until: None,
        });
        if now.duration_since(entry.window_start) >= SOURCE_WINDOW {
            entry.window_start = now;
            entry.resets = 0;
        }
        entry.resets = entry.resets.saturating_add(resets);
        let blocked = entry.blocked_until.is_some_and(|until| until > now);
        if !blocked && (abusive || entry.resets > SOURCE_RESETS_PER_WINDOW) {
            entry.blocked_until = Some(now + COOL_OFF);
            tracing::warn!(
                source = %ip,
                resets = entry.resets,
                cool_off = ?COOL_OFF,
                "HTTP/2 abuse from this source; refusing its connections for a while"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[tokio::test(start_paused = true)]
    async fn resets_summed_over_connections_block_the_source_for_a_while() {
        let sources = Sources::default();
        for _ in 0..10 {
            sources.record(ip(2), 100, false);
        }
        assert!(sources.admits(ip(2)), "1,000 resets are within the limit");
        sources.record(ip(2), 100, false);
        assert!(!sources.admits(ip(2)));
        assert!(sources.admits(ip(1)), "other sources are not affected");
        tokio::time::advance(COOL_OFF).await;
        assert!(sources.admits(ip(2)), "the cool-off ends");
    }

    #[tokio::test(start_paused = true)]
    async fn one_abusive_connection_blocks_and_old_resets_expire() {
        let sources = Sources::default();
        sources.record(ip(3), 0, true);
        assert!(!sources.admits(ip(3)));
        sources.record(ip(4), 1000, false);
        tokio::time::advance(SOURCE_WINDOW).await;
        sources.record(ip(4), 1000, false);
        assert!(sources.admits(ip(4)), "a new window starts from zero");
    }
}
