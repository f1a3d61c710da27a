//! High availability per service: backend state (health, ejection, slow start,
//! admin state), backend choice, sticky cookies, the retry budget and active
//! health checks.

pub mod budget;
pub mod health;
pub mod retry;
pub mod select;
pub mod stall;
pub mod state;
pub mod sticky;

pub use budget::RetryBudget;
pub use select::{Tried, MAX_BACKENDS};
pub use stall::{wait_for_head, Waited};
pub use state::{BackendState, CheckRecord, Health, InFlight, TryOutcome};
pub use sticky::CookieKey;
