//! The attack suite (PRODUCT.md §9): raw-socket clients and raw-socket
//! misbehaving backends against a real member on loopback. Each module is one
//! class of attack; every class has at least five payload variants, and every
//! test asserts what the gateway must do, so it fails without the fix.
//!
//! Run it alone with `cargo test -p portcullis --test proxy edges::`.

mod h2raw;
mod raw;

mod balancer_edges;
mod balancer_idle;
mod baseline;
mod forwarded;
mod h2_abuse;
mod idle;
pub(crate) mod paths;
mod pooled;
mod responses;
mod slow_bodies;
mod smuggling;
pub(crate) mod upgrades;
