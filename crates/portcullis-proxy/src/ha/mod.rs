//! High availability per service: backend choice, sticky cookies, the retry
//! budget, stall detection and active health checks. The state they read
//! and write lives on each backend (`crate::backend`).

pub mod budget;
pub mod health;
pub mod retry;
pub mod select;
pub mod stall;
pub mod sticky;
mod try_timer;

pub use crate::backend::{
    BackendSnapshot, BackendState, CheckRecord, Clients, Health, InFlight, OutcomeCounts,
    TryOutcome,
};
pub use budget::RetryBudget;
pub use select::{Selector, Tried, MAX_BACKENDS};
pub use stall::{wait_for_head, Waited};
pub use sticky::CookieKey;
