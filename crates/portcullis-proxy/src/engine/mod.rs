//! Portcullis's own HTTP/1.1 engine (`[gateway] engine = "portcullis"`).
//!
//! It drives the same request pipeline as hyper (`crate::pipeline`): heads are
//! found and checked in one pass (`scan`, with the framing gate's strict
//! rules, `crate::h1gate`), and their target and header values share the
//! read buffer's bytes. hyper stays for HTTP/2 on both sides and as the
//! reference the differential test compares this engine with; httparse's
//! strict parser is the reference of the fuzz targets.
//!
//! - `server`: one client connection: heads, bodies, responses, keep-alive,
//!   pipelining, `Expect: 100-continue`, upgrades. Between requests it holds
//!   no buffer, so an idle connection is a socket and a small state.
//! - `interim`: 1xx responses relayed to the client before the final one.
//! - `request_body`: the client's body, read by the connection and handed to
//!   the pipeline through a small channel.
//! - `respond`: response heads and body framing towards the client.
//! - `backend`, `response_body` (and `crate::backend_pool`): the backend
//!   side: a keep-alive pool per service, heads written from the edited request, responses parsed
//!   strictly, and bodies that give their connection back when complete.

pub mod backend;
pub mod head;
mod interim;
mod quick_io;
mod request_body;
mod respond;
mod response_body;
mod scan;
mod server;

pub use crate::backend_pool::Pool;

use std::future::Future;
use std::pin::Pin;

/// Boxes the future `build` makes, allocating first: `Box::pin(f())` builds
/// a future on the stack and then copies all of it, its largest state
/// included, into the box (a multi-KiB `memcpy` per request for a request's
/// futures). Allocated first, the future can be built in place.
pub(crate) fn build_boxed<F: Future>(build: impl FnOnce() -> F) -> Pin<Box<F>> {
    Box::into_pin(Box::write(Box::new_uninit(), build()))
}
pub use backend::{EngineError, EngineResponseBody, OwnConnector};
pub(crate) use server::{serve, EngineHost, EngineIo, Start};
pub use server::{EngineSetup, Stopping, QUIET_BEFORE_PARKING};
