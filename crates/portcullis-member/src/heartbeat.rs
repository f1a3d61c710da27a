//! The member's record in the store: written every heartbeat so balancers
//! and `cluster status` see the member alive, and the records of members
//! silent for long pruned.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use portcullis_cluster::{ClusterStore, MemberRecord};
use portcullis_config::NodeConfig;
use portcullis_proxy::Gateway;

use crate::applied::AppliedConfig;

/// A killed member's record stays listed as gone (in `cluster status` and
/// the dashboard) for this long, then any member removes it.
const FORGET_MEMBERS_AFTER: Duration = Duration::from_secs(15 * 60);

/// Writes this member's record every heartbeat. Store errors are logged and
/// retried at the next beat; they never stop the member.
pub(crate) async fn heartbeat(
    store: ClusterStore,
    gateway: Arc<Gateway>,
    config: NodeConfig,
    advertised: Advertised,
    members: Arc<ArcSwap<Vec<MemberRecord>>>,
    applied: Arc<AppliedConfig>,
) {
    let mut ticker = tokio::time::interval(config.cluster.heartbeat);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        ticker.tick().await;
        let record = member_record(&config, &gateway, &advertised, &applied);
        match store.put_member(&record).await {
            Ok(()) if failing => {
                tracing::info!("member record written again");
                failing = false;
            }
            Ok(()) => {}
            Err(err) if !failing => {
                tracing::error!(error = %err, "cannot write this member's record; retrying every heartbeat");
                failing = true;
            }
            Err(_) => {}
        }
        match store.prune_members(FORGET_MEMBERS_AFTER).await {
            Ok(pruned) => {
                for id in pruned {
                    tracing::info!(member = %id, "forgot a member silent for over 15 minutes");
                }
            }
            Err(err) => tracing::debug!(error = %err, "cannot prune member records"),
        }
        if let Ok(records) = store.members().await {
            members.store(Arc::new(records));
        }
    }
}

/// The URL other members and balancers use for this member. With port 0 in
/// the config, the port actually bound.
pub(crate) fn advertised_url(config: &NodeConfig, gateway_addr: SocketAddr) -> String {
    let mut url = config.gateway.public_url.clone();
    if config.gateway.listen.port() == 0 {
        let _ = url.set_port(Some(gateway_addr.port()));
    }
    url.as_str().trim_end_matches('/').to_string()
}

/// How other members and balancers reach this member.
pub(crate) struct Advertised {
    pub(crate) public_url: String,
    /// The admin listener as bound (its real port when the config says 0).
    pub(crate) admin_url: Option<String>,
}

pub(crate) fn member_record(
    config: &NodeConfig,
    gateway: &Gateway,
    advertised: &Advertised,
    applied: &AppliedConfig,
) -> MemberRecord {
    let (requests, errors) = crate::admin::views::answered_totals(&gateway.routes());
    MemberRecord {
        id: config.node.id.clone(),
        role: config.cluster.role.into(),
        public_url: advertised.public_url.clone(),
        admin_url: advertised.admin_url.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        generation: gateway.generation(),
        config_hash: applied.hash(),
        in_flight: gateway.in_flight(),
        requests,
        errors,
        heartbeat_ms: config.cluster.heartbeat.as_millis() as u64,
        updated_at_ms: portcullis_cluster::members::now_ms(),
    }
}
