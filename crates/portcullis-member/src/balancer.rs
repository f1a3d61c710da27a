//! The balancer's wiring to the store: member records become the plain
//! targets `portcullis_proxy::balancer` chooses from.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use portcullis_cluster::members::MISSED_HEARTBEATS;
use portcullis_cluster::{ClusterStore, MemberRecord, MemberState, StoreError};
use portcullis_proxy::balancer::{MemberTable, MemberTarget};

/// What the balancer needs of a member record.
pub fn member_target(record: &MemberRecord) -> MemberTarget {
    // The liveness rule of `MemberRecord::is_alive`, as a deadline.
    let allowance = record.heartbeat_ms.max(1) * u64::from(MISSED_HEARTBEATS);
    MemberTarget {
        id: record.id.clone(),
        url: record.public_url.clone(),
        in_flight: record.in_flight,
        alive_until_ms: record.updated_at_ms.saturating_add(allowance),
        draining: false,
    }
}

pub fn member_targets(records: &[MemberRecord]) -> Vec<MemberTarget> {
    records.iter().map(member_target).collect()
}

/// [`member_targets`] with the operators' member states applied.
pub fn member_targets_with_states(
    records: &[MemberRecord],
    states: &BTreeMap<String, MemberState>,
) -> Vec<MemberTarget> {
    let mut targets = member_targets(records);
    for target in &mut targets {
        target.draining = states.get(&target.id) == Some(&MemberState::Draining);
    }
    targets
}

/// Keeps the member table current: members are re-read four times per
/// heartbeat, so a dead member (gone after 3 heartbeats) or a leaving one (its
/// record removed) stops being chosen within that time.
pub async fn refresh_members(store: ClusterStore, table: Arc<MemberTable>, heartbeat: Duration) {
    let mut ticker = tokio::time::interval(heartbeat / 4);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let read =
            async { Ok::<_, StoreError>((store.members().await?, store.member_states().await?)) };
        match read.await {
            Ok((members, states)) => table.replace(member_targets_with_states(&members, &states)),
            // Keep the last view: the liveness deadline ages it out by itself.
            Err(err) => tracing::debug!(error = %err, "balancer cannot read members"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_cluster::RoleName;

    #[test]
    fn a_target_is_alive_exactly_while_its_record_is() {
        let record = MemberRecord {
            id: "m".into(),
            role: RoleName::Manager,
            public_url: "http://m:8443".into(),
            admin_url: None,
            version: "0".into(),
            generation: 1,
            config_hash: String::new(),
            in_flight: 4,
            requests: 0,
            errors: 0,
            heartbeat_ms: 1000,
            updated_at_ms: 10_000,
        };
        let target = member_target(&record);
        assert_eq!((target.id.as_str(), target.in_flight), ("m", 4));
        assert_eq!(target.url, "http://m:8443");
        for now in [9_000, 10_000, 12_999, 13_000, 20_000] {
            assert_eq!(target.is_alive(now), record.is_alive(now), "at {now}");
        }
        assert!(!target.draining);
        let states = BTreeMap::from([("m".to_string(), MemberState::Draining)]);
        let other = MemberRecord {
            id: "n".into(),
            ..record.clone()
        };
        let targets = member_targets_with_states(&[record, other], &states);
        let draining: Vec<bool> = targets.iter().map(|t| t.draining).collect();
        assert_eq!(draining, [true, false], "only the drained member drains");
    }
}
