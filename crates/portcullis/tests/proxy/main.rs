//! The data plane end to end: a real member on loopback in front of real
//! backends over real sockets.
//!
//! - `proxy_http`, `proxy_tls`: forwarding, headers, bodies, TLS and HTTP/2;
//! - `ha`: failover, health, stickiness, with backends killed and frozen;
//! - `auth_basic`: `[service.auth]` with Basic against a real slapd and
//!   htpasswd files (bcrypt, argon2id);
//! - `auth_jwt`: `[service.auth]` with JWT against a key set served over
//!   HTTP on loopback (rotation, a key set server that goes away);
//! - `auth_authorize`: `[service.authorize]` (users, groups, claims, client
//!   networks) with JWT callers, 403s and their count;
//! - `balancing`: each load-balancing policy, slow start and the failover
//!   settings (`failover_sleep`, `max_failover_attempts`, `enabled`, the retry
//!   budget);
//! - `reload`: topology changes under load;
//! - `edges`: the attack suite (raw sockets);
//! - `differential`: the hyper and own HTTP/1.1 engines on one corpus, compared;
//! - `fuzz_corpus`: the fuzz targets over their committed corpus.
//!
//! Fixtures come from the `portcullis-testkit` crate.

mod auth_authorize;
mod auth_basic;
mod auth_jwt;
mod balancing;
mod differential;
mod edges;
mod fuzz_corpus;
mod ha;
mod own_engine;
mod proxy_http;
mod proxy_tls;
mod reload;
mod sticky;
mod trusted_proxies;
