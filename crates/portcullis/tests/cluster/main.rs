//! Several members together: the dir and etcd stores, the control plane's
//! promises, the balancer in front of members, and a member partitioned from
//! etcd.
//!
//! Fixtures come from the `portcullis-testkit` crate.

mod api_keys;
mod balancer;
mod balancer_etcd;
mod balancer_proxy;
mod balancer_tls;
mod cluster_dir;
mod cluster_etcd;
mod cluster_etcd_secure;
mod control_plane;
mod drain;
mod etcd;
mod partition;
mod rate_limit;
mod rate_limit_partition;
