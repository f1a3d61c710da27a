//! Live state of one backend: admin state, active-check health, passive
//! ejection, slow start and counters. Read on every request, so everything is
//! an atomic; timestamps are milliseconds since the backend's own epoch (a
//! tokio `Instant`, so tests can pause and advance the clock).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use portcullis_config::AdminState;
use tokio::time::Instant;

/// Longest passive ejection, whatever the doubling reaches.
pub const MAX_EJECTION: Duration = Duration::from_secs(300);
/// A recovering backend never gets less than this share during slow start.
const SLOW_START_FLOOR: f64 = 0.1;

/// What health checks and passive ejection say about a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Up,
    /// Marked down by `fall` failed active checks.
    Down,
    /// Taken out by `eject_after` failed tries, until the ejection ends.
    Ejected,
}

/// How one try ended, for the access log and the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryOutcome {
    Answered(u16),
    ConnectFailed,
    Failed,
    TimedOut,
    /// Abandoned early: the backend answered nobody for `stall_timeout`.
    Stalled,
}

impl std::fmt::Display for TryOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TryOutcome::Answered(code) => write!(f, "{code}"),
            TryOutcome::ConnectFailed => f.write_str("connect-failed"),
            TryOutcome::Failed => f.write_str("failed"),
            TryOutcome::TimedOut => f.write_str("timeout"),
            TryOutcome::Stalled => f.write_str("stalled"),
        }
    }
}

/// Tries of a backend by outcome class.
#[derive(Debug, Default)]
pub(crate) struct OutcomeCounters {
    answered: AtomicU64,
    connect_failed: AtomicU64,
    failed: AtomicU64,
    timed_out: AtomicU64,
}

/// A read of [`OutcomeCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutcomeCounts {
    pub answered: u64,
    pub connect_failed: u64,
    pub failed: u64,
    pub timed_out: u64,
}

/// Which clients a backend is asked to serve: draining backends keep the
/// clients whose sticky cookie names them and take no new ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clients {
    /// Clients without a usable sticky cookie.
    New,
    /// Clients whose sticky cookie names this backend.
    Sticky,
}

/// One read of a backend's state and counters, for the admin API, metrics
/// and tests. Each field is read on its own (relaxed), so counters taken
/// while requests run may be a request apart from each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendSnapshot {
    pub admin: AdminState,
    pub health: Health,
    /// [`BackendState::can_serve`] for sticky clients: up and not disabled.
    pub serving: bool,
    pub in_flight: u64,
    /// Tries sent to the backend.
    pub requests: u64,
    /// Tries that failed (including retried statuses).
    pub failures: u64,
    pub outcomes: OutcomeCounts,
}

/// The last active check of a backend, for the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRecord {
    pub ok: bool,
    pub detail: String,
    pub at: std::time::SystemTime,
}

pub struct BackendState {
    epoch: Instant,
    admin: AtomicU8,
    checked_down: AtomicBool,
    /// End of the current ejection, as epoch millis + 1; 0 when never ejected.
    ejected_until: AtomicU64,
    /// When the backend last became available after being down, as epoch
    /// millis + 1; 0 when it never was down (full weight from the start).
    available_since: AtomicU64,
    consecutive_failures: AtomicU32,
    ejection_streak: AtomicU32,
    pub(crate) in_flight: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) outcomes: OutcomeCounters,
    /// Responses this backend gave that went to the client, by status code.
    pub(crate) answers: crate::stats::StatusCounts,
    last_check: Mutex<Option<CheckRecord>>,
}

impl Default for BackendState {
    fn default() -> Self {
        Self::new()
    }
}

impl BackendState {
    pub fn new() -> BackendState {
        BackendState {
            epoch: Instant::now(),
            admin: AtomicU8::new(admin_code(AdminState::Enabled)),
            checked_down: AtomicBool::new(false),
            ejected_until: AtomicU64::new(0),
            available_since: AtomicU64::new(0),
            consecutive_failures: AtomicU32::new(0),
            ejection_streak: AtomicU32::new(0),
            in_flight: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            outcomes: OutcomeCounters::default(),
            answers: Default::default(),
            last_check: Mutex::new(None),
        }
    }

    fn stamp(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_millis() as u64 + 1
    }

    pub fn count_outcome(&self, outcome: TryOutcome) {
        let counter = match outcome {
            TryOutcome::Answered(_) => &self.outcomes.answered,
            TryOutcome::ConnectFailed => &self.outcomes.connect_failed,
            TryOutcome::Failed => &self.outcomes.failed,
            TryOutcome::TimedOut | TryOutcome::Stalled => &self.outcomes.timed_out,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Tries of this backend that got response headers, of any status.
    pub fn answers_so_far(&self) -> u64 {
        self.outcomes.answered.load(Ordering::Relaxed)
    }

    pub fn admin(&self) -> AdminState {
        match self.admin.load(Ordering::Relaxed) {
            1 => AdminState::Draining,
            2 => AdminState::Disabled,
            _ => AdminState::Enabled,
        }
    }

    pub fn set_admin(&self, state: AdminState) {
        self.admin.store(admin_code(state), Ordering::Relaxed);
    }

    pub fn health(&self, now: Instant) -> Health {
        if self.checked_down.load(Ordering::Relaxed) {
            Health::Down
        } else if self.is_ejected_at(now) {
            Health::Ejected
        } else {
            Health::Up
        }
    }

    /// Whether an ejection still runs at `now`. A backend never ejected
    /// (the stamp is 0) skips the clock arithmetic: every pick asks this of
    /// every backend.
    fn is_ejected_at(&self, now: Instant) -> bool {
        let until = self.ejected_until.load(Ordering::Relaxed);
        until != 0 && until > self.stamp(now)
    }

    pub fn is_up(&self, now: Instant) -> bool {
        self.health(now) == Health::Up
    }

    /// The one rule for whether this backend may take a request: it is up
    /// (not down by checks, not ejected) and its admin state admits the
    /// client: enabled backends take everyone, draining ones only their
    /// sticky clients, disabled ones nobody.
    pub fn can_serve(&self, now: Instant, clients: Clients) -> bool {
        let admitted = match self.admin() {
            AdminState::Enabled => true,
            AdminState::Draining => clients == Clients::Sticky,
            AdminState::Disabled => false,
        };
        admitted && self.is_up(now)
    }

    /// Requests in flight on this backend (read by least-requests).
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Responses this backend gave that went to the client, by status code.
    pub fn answers(&self) -> &crate::stats::StatusCounts {
        &self.answers
    }

    pub fn snapshot(&self, now: Instant) -> BackendSnapshot {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        BackendSnapshot {
            admin: self.admin(),
            health: self.health(now),
            serving: self.can_serve(now, Clients::Sticky),
            in_flight: read(&self.in_flight),
            requests: read(&self.requests),
            failures: read(&self.failures),
            outcomes: OutcomeCounts {
                answered: read(&self.outcomes.answered),
                connect_failed: read(&self.outcomes.connect_failed),
                failed: read(&self.outcomes.failed),
                timed_out: read(&self.outcomes.timed_out),
            },
        }
    }

    /// A try on this backend succeeded: the failure run and the ejection
    /// doubling start over.
    pub fn record_success(&self) {
        if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
        if self.ejection_streak.load(Ordering::Relaxed) != 0 {
            self.ejection_streak.store(0, Ordering::Relaxed);
        }
    }

    /// A try failed. Returns the ejection time when this failure ejected the
    /// backend: `eject_for`, doubled for each ejection in a row, at most 300 s.
    pub fn record_failure(
        &self,
        now: Instant,
        eject_after: u32,
        eject_for: Duration,
    ) -> Option<Duration> {
        self.failures.fetch_add(1, Ordering::Relaxed);
        // Requests that were in flight when the backend was ejected fail
        // together; they are no new evidence and must not eject it again.
        if self.ejected_until.load(Ordering::Relaxed) > self.stamp(now) {
            return None;
        }
        let run = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if run < eject_after.max(1) {
            return None;
        }
        // Only the failure that completes the run ejects; concurrent failures
        // of the same run see a reset counter.
        if self
            .consecutive_failures
            .compare_exchange(run, 0, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return None;
        }
        let streak = self.ejection_streak.fetch_add(1, Ordering::Relaxed).min(16);
        let duration = eject_for.saturating_mul(1u32 << streak).min(MAX_EJECTION);
        let until = self.stamp(now + duration);
        self.ejected_until.store(until, Ordering::Relaxed);
        Some(duration)
    }

    /// Result of an active check run that crossed `rise` or `fall`.
    pub fn set_checked_up(&self, up: bool, now: Instant) {
        let was_down = self.checked_down.swap(!up, Ordering::Relaxed);
        if up && was_down {
            self.available_since
                .store(self.stamp(now), Ordering::Relaxed);
        }
    }

    pub fn record_check(&self, record: CheckRecord) {
        if let Ok(mut last) = self.last_check.lock() {
            *last = Some(record);
        }
    }

    pub fn last_check(&self) -> Option<CheckRecord> {
        self.last_check.lock().ok().and_then(|l| l.clone())
    }

    /// Share of traffic during slow start, in (0, 1]. The ramp starts when the
    /// backend last became available: after an ejection ended, or when active
    /// checks marked it up again.
    pub fn weight(&self, now: Instant, slow_start: Duration) -> f64 {
        if slow_start.is_zero() {
            return 1.0;
        }
        let since = self
            .available_since
            .load(Ordering::Relaxed)
            .max(self.ejected_until.load(Ordering::Relaxed));
        if since == 0 {
            return 1.0;
        }
        let now = self.stamp(now);
        if now <= since {
            return SLOW_START_FLOOR;
        }
        let elapsed = Duration::from_millis(now - since);
        (elapsed.as_secs_f64() / slow_start.as_secs_f64()).clamp(SLOW_START_FLOOR, 1.0)
    }
}

fn admin_code(state: AdminState) -> u8 {
    match state {
        AdminState::Enabled => 0,
        AdminState::Draining => 1,
        AdminState::Disabled => 2,
    }
}

/// Counts a request in flight on a backend until dropped (the response body
/// carries it, so least-requests sees requests until they really end).
pub struct InFlight {
    backend: std::sync::Arc<super::Backend>,
}

impl InFlight {
    pub fn start(backend: std::sync::Arc<super::Backend>) -> InFlight {
        backend.state.in_flight.fetch_add(1, Ordering::Relaxed);
        backend.state.requests.fetch_add(1, Ordering::Relaxed);
        InFlight { backend }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.backend.state.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn ejection_doubles_in_a_row_and_caps_at_300s() {
        let state = BackendState::new();
        let mut expected = vec![10, 20, 40, 80, 160, 300, 300];
        expected.reverse();
        while let Some(seconds) = expected.pop() {
            let now = Instant::now();
            assert_eq!(state.record_failure(now, 3, 10 * SEC), None);
            assert_eq!(state.record_failure(now, 3, 10 * SEC), None);
            assert_eq!(state.record_failure(now, 3, 10 * SEC), Some(seconds * SEC));
            assert_eq!(state.health(now), Health::Ejected);
            tokio::time::advance(seconds * SEC - Duration::from_millis(5)).await;
            assert_eq!(state.health(Instant::now()), Health::Ejected);
            tokio::time::advance(Duration::from_millis(10)).await;
            assert_eq!(state.health(Instant::now()), Health::Up);
        }
        // A success ends the run: the next ejection is back to eject_for.
        state.record_success();
        for _ in 0..2 {
            state.record_failure(Instant::now(), 3, 10 * SEC);
        }
        assert_eq!(
            state.record_failure(Instant::now(), 3, 10 * SEC),
            Some(10 * SEC)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failures_during_an_ejection_do_not_extend_it() {
        let state = BackendState::new();
        let now = Instant::now();
        assert_eq!(state.record_failure(now, 1, 10 * SEC), Some(10 * SEC));
        for _ in 0..50 {
            assert_eq!(state.record_failure(now, 1, 10 * SEC), None);
        }
        tokio::time::advance(10 * SEC).await;
        assert_eq!(
            state.record_failure(Instant::now(), 1, 10 * SEC),
            Some(20 * SEC),
            "next ejection in a row doubles once"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_breaks_the_failure_run() {
        let state = BackendState::new();
        let now = Instant::now();
        state.record_failure(now, 3, SEC);
        state.record_failure(now, 3, SEC);
        state.record_success();
        assert_eq!(state.record_failure(now, 3, SEC), None);
        assert!(state.is_up(now));
    }

    #[tokio::test(start_paused = true)]
    async fn slow_start_ramps_after_an_ejection_ends() {
        let state = BackendState::new();
        let ramp = 10 * SEC;
        assert_eq!(
            state.weight(Instant::now(), ramp),
            1.0,
            "full weight from the start"
        );
        state.record_failure(Instant::now(), 1, 2 * SEC);
        tokio::time::advance(2 * SEC).await;
        assert!(state.is_up(Instant::now()));
        assert!((state.weight(Instant::now(), ramp) - SLOW_START_FLOOR).abs() < 1e-9);
        tokio::time::advance(5 * SEC).await;
        assert!((state.weight(Instant::now(), ramp) - 0.5).abs() < 0.01);
        tokio::time::advance(6 * SEC).await;
        assert_eq!(state.weight(Instant::now(), ramp), 1.0);
        assert_eq!(state.weight(Instant::now(), Duration::ZERO), 1.0);
    }

    #[tokio::test(start_paused = true)]
    async fn checks_mark_down_and_up_with_a_ramp() {
        let state = BackendState::new();
        state.set_checked_up(false, Instant::now());
        assert_eq!(state.health(Instant::now()), Health::Down);
        tokio::time::advance(SEC).await;
        state.set_checked_up(true, Instant::now());
        assert!(state.is_up(Instant::now()));
        tokio::time::advance(SEC).await;
        assert!((state.weight(Instant::now(), 4 * SEC) - 0.25).abs() < 0.01);
    }

    #[tokio::test(start_paused = true)]
    async fn can_serve_is_health_and_admin_state_together() {
        let state = BackendState::new();
        let now = Instant::now();
        let rule = |state: &BackendState| {
            let now = Instant::now();
            (
                state.can_serve(now, Clients::New),
                state.can_serve(now, Clients::Sticky),
            )
        };
        assert_eq!(rule(&state), (true, true));
        state.set_admin(AdminState::Draining);
        assert_eq!(
            rule(&state),
            (false, true),
            "draining keeps its sticky clients"
        );
        state.set_admin(AdminState::Disabled);
        assert_eq!(rule(&state), (false, false));
        state.set_admin(AdminState::Enabled);
        state.record_failure(now, 1, SEC);
        assert_eq!(rule(&state), (false, false), "ejected");
        tokio::time::advance(SEC).await;
        assert_eq!(rule(&state), (true, true));
        state.set_checked_up(false, Instant::now());
        assert_eq!(rule(&state), (false, false), "down by checks");
    }

    #[tokio::test(start_paused = true)]
    async fn a_snapshot_reads_every_counter() {
        let url = url::Url::parse("http://127.0.0.1:1/").unwrap();
        let backend = std::sync::Arc::new(
            super::super::Backend::new("t", "s", &url, false, &crate::CookieKey::random()).unwrap(),
        );
        let state = &backend.state;
        let first = InFlight::start(backend.clone());
        let _second = InFlight::start(backend.clone());
        drop(first);
        state.count_outcome(TryOutcome::Answered(200));
        state.count_outcome(TryOutcome::ConnectFailed);
        state.count_outcome(TryOutcome::Stalled);
        state.count_outcome(TryOutcome::TimedOut);
        state.count_outcome(TryOutcome::Failed);
        state.record_failure(Instant::now(), 5, SEC);
        state.set_admin(AdminState::Draining);
        let snapshot = state.snapshot(Instant::now());
        assert_eq!(
            snapshot,
            BackendSnapshot {
                admin: AdminState::Draining,
                health: Health::Up,
                serving: true,
                in_flight: 1,
                requests: 2,
                failures: 1,
                outcomes: OutcomeCounts {
                    answered: 1,
                    connect_failed: 1,
                    failed: 1,
                    timed_out: 2,
                },
            }
        );
        assert_eq!(state.in_flight(), 1);
        assert_eq!(state.answers_so_far(), 1);
    }

    #[test]
    fn admin_state_round_trips() {
        let state = BackendState::new();
        for admin in [
            AdminState::Draining,
            AdminState::Disabled,
            AdminState::Enabled,
        ] {
            state.set_admin(admin);
            assert_eq!(state.admin(), admin);
        }
    }
}
