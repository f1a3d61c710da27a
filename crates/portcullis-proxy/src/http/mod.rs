//! The request path's HTTP rules and hyper as its engine: the client side of a
//! connection, header rules, the strict §9 checks, upgrades, and the edge that
//! feeds hyper requests into the request pipeline (`crate::pipeline`).

pub mod client_context;
pub mod headers;
mod hyper_edge;
pub mod strict;
pub(crate) mod upgrade;

pub use client_context::{ClientContext, PendingTunnel};
pub use hyper_edge::{handle, ServiceClient};
