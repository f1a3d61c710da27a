//! The request path's HTTP rules: the client side of a connection, header
//! rules and the strict §9 checks. Engine-neutral: hyper's edge
//! (`crate::hyper_edge`) and the pipeline use them; they use neither.

pub mod client_address;
pub mod client_context;
pub mod headers;
pub mod request_fields;
pub mod response_head;
pub mod strict;
pub mod target;

pub use client_context::{ClientContext, PendingTunnel};
pub use request_fields::{ClientHead, RequestFields};
pub use response_head::{FieldKind, ProxyResponse, RawResponseHead};
pub use target::RequestTarget;
