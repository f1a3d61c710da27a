//! One Portcullis gateway member: the cluster store feeding the data plane
//! (`portcullis-proxy`), the member's heartbeat record, the balancer's member
//! list, the admin API with `/metrics` and the dashboard, the cluster's
//! secrets, and the process's adjustable logging.
#![forbid(unsafe_code)]

pub mod admin;
pub mod api_keys;
mod applied;
mod apply;
pub mod balancer;
pub mod cache;
mod error;
mod heartbeat;
pub mod inherit;
mod listeners;
pub mod logging;
mod member;
mod per_core;
pub mod rate_exchange;
pub mod secrets;

pub use apply::{apply_change, TopologyChange};
pub use error::MemberError;
pub use inherit::{Inherited, ListeningSocket};
pub use member::Member;
pub use per_core::serve_per_core_by_default;
