//! The Portcullis data plane: listeners, routing, forwarding with failover, and
//! the bodies and errors they share. It knows nothing of stores or admin APIs;
//! the binary feeds it typed config changes.
#![forbid(unsafe_code)]

pub mod access_sink;
pub mod backend;
pub mod backend_auth;
pub mod backend_pool;
pub mod balancer;
pub mod body;
pub mod client;
pub mod cookie_key;
pub mod engine;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod h1gate;
pub mod ha;
pub mod http;
pub mod hyper_edge;
pub mod listener;
pub mod pipeline;
mod preface;
mod read_ahead;
pub mod routing;
pub mod slow_body;
mod spare;
pub mod stats;

pub use error::ProxyError;
pub use ha::CookieKey;
pub use listener::{serve, serve_in_group, AcceptGroup, ListenerOptions};
pub use routing::{backend_id, ConfigChange, Gateway};
