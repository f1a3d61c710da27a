//! The `portcullis` binary's library: what the end-to-end tests call besides
//! the member and data-plane crates. The commands themselves live in the
//! binary (`main.rs`, `cmd/`).
#![forbid(unsafe_code)]

pub mod cert;

// compat for tests, removed after the test-suite merge
pub mod app {
    pub use portcullis_member::Member;
}

// compat for tests, removed after the test-suite merge
pub mod demo_backend {
    pub use portcullis_demo::DemoBackend;
}

// compat for tests (and `fuzz/`), removed after the test-suite merge
#[doc(hidden)]
pub mod fuzzing {
    pub use portcullis_proxy::balancer::fuzzing::sticky_cookie;
}
