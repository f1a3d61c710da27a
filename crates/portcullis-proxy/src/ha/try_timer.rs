//! The timer that bounds a try's wait for response headers, from a
//! per-thread stock of tokio timers that stay registered between tries.
//!
//! A fresh `tokio::time::Sleep` per try cost about 600 instructions
//! (callgrind): a handle clone, an insertion into the timer wheel under its
//! lock on the first poll, and a removal under the lock again when the try
//! ended. A try nearly always ends long before its deadline, so the timer
//! it leaves behind is kept here, still registered, for the next try on the
//! thread. The next try does not move it: a kept timer's deadline is that of
//! an earlier try, so it falls no later than the new try's, and when it
//! fires the try checks its own deadline and only then moves the timer to
//! it. A try therefore never times out early, and times out when tokio's
//! own timer would have. A kept timer costs one wake-up per timeout period
//! at most (a spurious poll of the task that last used it), and holds that
//! task's waker until it is reused or fires.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::runtime::{Handle, Id};
use tokio::time::{Instant, Sleep};

/// Timers kept per thread: more than the tries a thread has in flight at
/// once only under a burst, and each holds a task's waker while kept.
const KEEP: usize = 32;

thread_local! {
    static KEPT: RefCell<Vec<Kept>> = const { RefCell::new(Vec::new()) };
}

/// A timer and the runtime whose timer wheel it is registered with: a
/// thread may run several runtimes one after another (tests do), and a
/// timer polled after its runtime is gone would panic.
struct Kept {
    runtime: Id,
    sleep: Pin<Box<Sleep>>,
}

/// A try's deadline, on a timer taken from this thread's stock (or a new
/// one), given back when the try ends.
pub(crate) struct TryTimer {
    /// `None` outside a runtime's context: the timer is then not kept.
    runtime: Option<Id>,
    /// Always `Some` until the drop gives it back.
    sleep: Option<Pin<Box<Sleep>>>,
    deadline: Instant,
}

impl TryTimer {
    /// A timer that expires at `deadline`.
    pub(crate) fn until(deadline: Instant) -> TryTimer {
        let runtime = Handle::try_current().ok().map(|handle| handle.id());
        let sleep = match runtime.and_then(take_kept) {
            Some(mut sleep) => {
                if sleep.deadline() > deadline {
                    // Kept by a try with a longer timeout: it would fire late.
                    sleep.as_mut().reset(deadline);
                }
                sleep
            }
            None => Box::pin(tokio::time::sleep_until(deadline)),
        };
        TryTimer {
            runtime,
            sleep: Some(sleep),
            deadline,
        }
    }

    /// Moves the deadline; later is cheap (nothing is re-registered until
    /// the earlier one passes).
    pub(crate) fn set(&mut self, deadline: Instant) {
        self.deadline = deadline;
        if let Some(sleep) = self.sleep.as_mut() {
            if sleep.deadline() > deadline {
                sleep.as_mut().reset(deadline);
            }
        }
    }

    /// Ready once the deadline has passed.
    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(sleep) = self.sleep.as_mut() else {
            return Poll::Ready(());
        };
        loop {
            ready!(sleep.as_mut().poll(cx));
            if sleep.deadline() >= self.deadline {
                return Poll::Ready(());
            }
            // An earlier try's deadline passed: wait on for this one's.
            sleep.as_mut().reset(self.deadline);
        }
    }
}

impl Drop for TryTimer {
    fn drop(&mut self) {
        let (Some(runtime), Some(sleep)) = (self.runtime, self.sleep.take()) else {
            return;
        };
        let kept = Kept { runtime, sleep };
        // During the thread's exit the stock is gone: the timer is dropped.
        let _ = KEPT.try_with(|cell| {
            if let Ok(mut stock) = cell.try_borrow_mut() {
                if stock.len() < KEEP {
                    stock.push(kept);
                }
            }
        });
    }
}

/// A kept timer of `runtime`, if this thread has one. Timers of another
/// runtime found on the way are dropped.
fn take_kept(runtime: Id) -> Option<Pin<Box<Sleep>>> {
    KEPT.try_with(|cell| {
        let mut stock = cell.try_borrow_mut().ok()?;
        while let Some(kept) = stock.pop() {
            if kept.runtime == runtime {
                return Some(kept.sleep);
            }
        }
        None
    })
    .ok()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const SECOND: Duration = Duration::from_secs(1);

    async fn expired(timer: &mut TryTimer) {
        std::future::poll_fn(|cx| timer.poll_expired(cx)).await;
    }

    fn kept_here() -> usize {
        KEPT.with_borrow(Vec::len)
    }

    #[tokio::test(start_paused = true)]
    async fn a_kept_timer_with_an_earlier_deadline_does_not_end_a_later_try_early() {
        drop(TryTimer::until(Instant::now() + SECOND));
        assert_eq!(kept_here(), 1);
        tokio::time::sleep(SECOND / 2).await;
        let start = Instant::now();
        let mut timer = TryTimer::until(start + SECOND);
        assert_eq!(kept_here(), 0, "the kept timer was reused");
        expired(&mut timer).await;
        assert_eq!(start.elapsed(), SECOND);
    }

    #[tokio::test(start_paused = true)]
    async fn a_kept_timer_with_a_later_deadline_is_moved_to_the_try_deadline() {
        drop(TryTimer::until(Instant::now() + 10 * SECOND));
        let start = Instant::now();
        let mut timer = TryTimer::until(start + SECOND);
        expired(&mut timer).await;
        assert_eq!(start.elapsed(), SECOND);
    }

    #[tokio::test(start_paused = true)]
    async fn a_fired_kept_timer_waits_for_the_next_try_deadline() {
        let mut first = TryTimer::until(Instant::now() + SECOND);
        expired(&mut first).await;
        drop(first);
        let start = Instant::now();
        let mut timer = TryTimer::until(start + SECOND);
        expired(&mut timer).await;
        assert_eq!(start.elapsed(), SECOND);
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_deadline_is_kept_to() {
        let start = Instant::now();
        let mut timer = TryTimer::until(start + SECOND);
        timer.set(start + 3 * SECOND);
        expired(&mut timer).await;
        assert_eq!(start.elapsed(), 3 * SECOND);
        timer.set(start + 4 * SECOND);
        expired(&mut timer).await;
        assert_eq!(start.elapsed(), 4 * SECOND);
    }

    #[test]
    fn a_timer_of_a_finished_runtime_is_not_reused() {
        let runtime = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap()
        };
        runtime().block_on(async { drop(TryTimer::until(Instant::now() + SECOND)) });
        assert_eq!(kept_here(), 1);
        // Polling the first runtime's timer now would panic.
        runtime().block_on(async {
            let start = Instant::now();
            let mut timer = TryTimer::until(start + SECOND);
            expired(&mut timer).await;
            assert_eq!(start.elapsed(), SECOND);
        });
    }

    #[tokio::test(start_paused = true)]
    async fn the_stock_is_bounded() {
        let deadline = Instant::now() + SECOND;
        let timers: Vec<TryTimer> = (0..KEEP + 8).map(|_| TryTimer::until(deadline)).collect();
        drop(timers);
        assert_eq!(kept_here(), KEEP);
    }
}
