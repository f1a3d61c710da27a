//! When a failed try may be followed by another: the method, the kind of
//! failure, the tries left, the request body, a sticky pin and the retry
//! budget. Pure rules; the request pipeline supplies the backend choice and
//! the budget as closures, so every rule is tested here without a service.

use http::Method;
use portcullis_config::HaPolicy;

/// Methods that may be sent twice without changing the outcome (RFC 9110 §9.2.2).
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// How a try failed, which decides whether another backend may be tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Nothing reached the backend: any method may go elsewhere, unbudgeted.
    Connect,
    /// The backend took the request and failed before answering.
    Reset,
    Timeout,
    /// The backend answered with a status in `retry_on_status`.
    Status,
}

impl FailureKind {
    /// Retries after a slow or refusing backend pile load on a pool that may
    /// be failing as a whole: they draw on the retry budget. A connect failure
    /// or a reset costs the pool nothing more.
    fn spends_budget(self) -> bool {
        matches!(self, FailureKind::Timeout | FailureKind::Status)
    }
}

/// The decision after a failed try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextTry {
    /// Try this backend (an index into the service's backends).
    Backend(usize),
    /// The rules allow no other try, or no backend is left.
    Stop,
    /// A retry was allowed and a backend was there, but the retry budget is
    /// spent (counted as `portcullis_retry_budget_exhausted_total`).
    BudgetExhausted,
}

/// What decides whether a failed try may be followed by another, fixed for
/// the whole request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPlan {
    max_tries: usize,
    /// The method may be sent twice (or `failover_non_idempotent`).
    may_repeat: bool,
    /// A sticky cookie names a backend that may serve and `no_fallback` holds
    /// the client to it.
    pinned: bool,
}

impl RetryPlan {
    /// With `ha.enabled = false` a request gets exactly one try.
    pub fn new(ha: &HaPolicy, method: &Method, pinned_by_cookie: bool) -> RetryPlan {
        RetryPlan {
            max_tries: if ha.enabled {
                1 + ha.max_failover_attempts as usize
            } else {
                1
            },
            may_repeat: is_idempotent(method) || ha.failover_non_idempotent,
            pinned: ha.no_fallback && pinned_by_cookie,
        }
    }

    /// Tries the request may get in all, the first included.
    pub fn max_tries(&self) -> usize {
        self.max_tries
    }

    /// The backend for the next try after a failure, if the rules allow one:
    /// tries left, a method that may be repeated (unless nothing reached the
    /// backend), a body that can be replayed, no `no_fallback` pin, an untried
    /// candidate (`pick`), and for timeouts and statuses, room in the retry
    /// budget (`take_budget`, asked only when a candidate exists).
    pub fn next(
        &self,
        kind: FailureKind,
        tries_so_far: usize,
        body_replayable: bool,
        pick: impl FnOnce() -> Option<usize>,
        take_budget: impl FnOnce() -> bool,
    ) -> NextTry {
        if tries_so_far >= self.max_tries
            || (kind != FailureKind::Connect && !self.may_repeat)
            || !body_replayable
            || self.pinned
        {
            return NextTry::Stop;
        }
        let Some(target) = pick() else {
            return NextTry::Stop;
        };
        if kind.spends_budget() && !take_budget() {
            return NextTry::BudgetExhausted;
        }
        NextTry::Backend(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ha::RetryBudget;

    const ALL_KINDS: [FailureKind; 4] = [
        FailureKind::Connect,
        FailureKind::Reset,
        FailureKind::Timeout,
        FailureKind::Status,
    ];

    fn plan(method: Method, edit: impl FnOnce(&mut HaPolicy)) -> RetryPlan {
        let mut ha = HaPolicy::default();
        edit(&mut ha);
        RetryPlan::new(&ha, &method, false)
    }

    fn next(plan: &RetryPlan, kind: FailureKind, tries: usize) -> NextTry {
        plan.next(kind, tries, true, || Some(1), || true)
    }

    #[test]
    fn idempotent_methods_are_the_rfc_set() {
        for method in ["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"] {
            assert!(is_idempotent(&method.parse().unwrap()), "{method}");
        }
        for method in ["POST", "PATCH", "CONNECT", "PURGE"] {
            assert!(!is_idempotent(&method.parse().unwrap()), "{method}");
        }
    }

    #[test]
    fn a_post_goes_elsewhere_only_when_nothing_reached_the_backend() {
        let post = plan(Method::POST, |_| {});
        assert_eq!(next(&post, FailureKind::Connect, 1), NextTry::Backend(1));
        for kind in [
            FailureKind::Reset,
            FailureKind::Timeout,
            FailureKind::Status,
        ] {
            assert_eq!(next(&post, kind, 1), NextTry::Stop, "{kind:?}");
        }
        let allowed = plan(Method::POST, |ha| ha.failover_non_idempotent = true);
        for kind in ALL_KINDS {
            assert_eq!(next(&allowed, kind, 1), NextTry::Backend(1), "{kind:?}");
        }
    }

    #[test]
    fn max_failover_attempts_caps_the_tries() {
        let get = plan(Method::GET, |ha| ha.max_failover_attempts = 2);
        assert_eq!(get.max_tries(), 3);
        assert_eq!(next(&get, FailureKind::Reset, 2), NextTry::Backend(1));
        assert_eq!(next(&get, FailureKind::Reset, 3), NextTry::Stop);
        let none = plan(Method::GET, |ha| ha.max_failover_attempts = 0);
        assert_eq!(next(&none, FailureKind::Connect, 1), NextTry::Stop);
    }

    #[test]
    fn a_disabled_ha_policy_allows_one_try() {
        let off = plan(Method::GET, |ha| ha.enabled = false);
        assert_eq!(off.max_tries(), 1);
        for kind in ALL_KINDS {
            assert_eq!(next(&off, kind, 1), NextTry::Stop, "{kind:?}");
        }
    }

    #[test]
    fn a_body_that_cannot_be_replayed_stops_every_retry() {
        let put = plan(Method::PUT, |_| {});
        for kind in ALL_KINDS {
            assert_eq!(
                put.next(kind, 1, false, || Some(1), || true),
                NextTry::Stop,
                "{kind:?}"
            );
        }
    }

    #[test]
    fn no_fallback_keeps_a_pinned_client_on_its_backend() {
        let mut ha = HaPolicy {
            no_fallback: true,
            ..HaPolicy::default()
        };
        let pinned = RetryPlan::new(&ha, &Method::GET, true);
        assert_eq!(next(&pinned, FailureKind::Connect, 1), NextTry::Stop);
        let unpinned = RetryPlan::new(&ha, &Method::GET, false);
        assert_eq!(
            next(&unpinned, FailureKind::Connect, 1),
            NextTry::Backend(1)
        );
        ha.no_fallback = false;
        let free = RetryPlan::new(&ha, &Method::GET, true);
        assert_eq!(next(&free, FailureKind::Connect, 1), NextTry::Backend(1));
    }

    #[test]
    fn no_candidate_stops_without_spending_the_budget() {
        let get = plan(Method::GET, |_| {});
        let next = get.next(
            FailureKind::Timeout,
            1,
            true,
            || None,
            || panic!("the budget must not be asked without a candidate"),
        );
        assert_eq!(next, NextTry::Stop);
    }

    #[test]
    fn only_timeouts_and_statuses_spend_the_budget() {
        let get = plan(Method::GET, |_| {});
        for kind in [FailureKind::Connect, FailureKind::Reset] {
            let next = get.next(kind, 1, true, || Some(2), || false);
            assert_eq!(next, NextTry::Backend(2), "{kind:?}");
        }
        for kind in [FailureKind::Timeout, FailureKind::Status] {
            let next = get.next(kind, 1, true, || Some(2), || false);
            assert_eq!(next, NextTry::BudgetExhausted, "{kind:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_spent_retry_budget_refuses_budgeted_retries_only() {
        let budget = RetryBudget::new();
        let now = tokio::time::Instant::now();
        let get = plan(Method::GET, |_| {});
        let mut granted = 0;
        while let NextTry::Backend(_) = get.next(
            FailureKind::Status,
            1,
            true,
            || Some(1),
            || budget.try_retry(now),
        ) {
            granted += 1;
            assert!(granted <= 1000, "the budget never ran out");
        }
        // The floor: 10 retries per second over the 10 s window.
        assert_eq!(granted, 100);
        let refused = get.next(
            FailureKind::Timeout,
            1,
            true,
            || Some(1),
            || budget.try_retry(now),
        );
        assert_eq!(refused, NextTry::BudgetExhausted);
        let unbudgeted = get.next(
            FailureKind::Connect,
            1,
            true,
            || Some(1),
            || budget.try_retry(now),
        );
        assert_eq!(unbudgeted, NextTry::Backend(1));
    }
}
