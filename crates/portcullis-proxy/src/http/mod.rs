//! The request path: route, forward with failover, stream back, log.

mod forward;
pub mod headers;
pub mod strict;
pub(crate) mod upgrade;

pub use forward::handle;
pub use headers::ClientContext;
