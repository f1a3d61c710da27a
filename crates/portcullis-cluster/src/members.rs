//! Member records: who is in the cluster, refreshed every heartbeat.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portcullis_config::Role;
use serde::{Deserialize, Serialize};

/// A member misses this many heartbeats before it is gone.
pub const MISSED_HEARTBEATS: u32 = 3;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub id: String,
    pub role: RoleName,
    pub public_url: String,
    /// Admin API base url, when the member has an `[admin]` listener.
    pub admin_url: Option<String>,
    pub version: String,
    /// Routing generation: how many config changes the member applied.
    pub generation: u64,
    /// Hash of the configuration the member serves (topologies, admin
    /// states, sealed aliases): equal on members that serve the same; empty
    /// in records of older versions.
    #[serde(default)]
    pub config_hash: String,
    pub in_flight: u64,
    /// Requests this member answered since it started (cumulative; rates
    /// come from two readings). Zero in records of older versions.
    #[serde(default)]
    pub requests: u64,
    /// Of those, answers with a 5xx status.
    #[serde(default)]
    pub errors: u64,
    pub heartbeat_ms: u64,
    /// Wall-clock time of the last heartbeat, milliseconds since the Unix epoch.
    pub updated_at_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoleName {
    Manager,
    Worker,
}

impl From<Role> for RoleName {
    fn from(role: Role) -> RoleName {
        match role {
            Role::Manager => RoleName::Manager,
            Role::Worker => RoleName::Worker,
        }
    }
}

impl RoleName {
    pub fn as_str(self) -> &'static str {
        match self {
            RoleName::Manager => "manager",
            RoleName::Worker => "worker",
        }
    }
}

/// What an operator set for a member. Kept in the store apart from the
/// record, because the member rewrites its record every heartbeat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MemberState {
    /// Balancers send it new clients.
    #[default]
    Enabled,
    /// Balancers send it only clients whose affinity cookie names it; it
    /// keeps serving everything that reaches it.
    Draining,
}

impl MemberState {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Enabled => "enabled",
            MemberState::Draining => "draining",
        }
    }

    pub fn parse(text: &str) -> Option<MemberState> {
        match text.trim() {
            "enabled" => Some(MemberState::Enabled),
            "draining" => Some(MemberState::Draining),
            _ => None,
        }
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl MemberRecord {
    /// Time since the last heartbeat, as seen at `now_ms`.
    pub fn age(&self, now_ms: u64) -> Duration {
        Duration::from_millis(now_ms.saturating_sub(self.updated_at_ms))
    }

    /// Alive until it has missed three heartbeats.
    pub fn is_alive(&self, now_ms: u64) -> bool {
        self.age(now_ms)
            < Duration::from_millis(self.heartbeat_ms.max(1) * MISSED_HEARTBEATS as u64)
    }
}

/// The configuration hash most live members serve, when one hash has more
/// members than any other (`None` with no live hash, or a tie).
fn common_config_hash(members: &[MemberRecord], now_ms: u64) -> Option<&str> {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for member in members.iter().filter(|m| m.is_alive(now_ms)) {
        if !member.config_hash.is_empty() {
            *counts.entry(member.config_hash.as_str()).or_default() += 1;
        }
    }
    let most = counts.values().copied().max()?;
    let mut leaders = counts.iter().filter(|(_, n)| **n == most);
    let (hash, _) = leaders.next()?;
    leaders.next().is_none().then_some(*hash)
}

/// Live members whose configuration hash differs from the others'
/// (config drift: a refused topology, a missed change).
pub fn drifted(members: &[MemberRecord], now_ms: u64) -> Vec<&str> {
    let live_hashes = members
        .iter()
        .filter(|m| m.is_alive(now_ms) && !m.config_hash.is_empty());
    let common = common_config_hash(members, now_ms);
    live_hashes
        .filter(|m| Some(m.config_hash.as_str()) != common)
        .map(|m| m.id.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(updated_at_ms: u64) -> MemberRecord {
        MemberRecord {
            id: "m1".into(),
            role: RoleName::Manager,
            public_url: "http://127.0.0.1:8443".into(),
            admin_url: None,
            version: "0.1.0".into(),
            generation: 3,
            config_hash: String::new(),
            in_flight: 0,
            requests: 0,
            errors: 0,
            heartbeat_ms: 1000,
            updated_at_ms,
        }
    }

    #[test]
    fn records_of_older_versions_read_with_zero_counters() {
        let mut old = serde_json::to_value(record(5)).unwrap();
        let fields = old.as_object_mut().unwrap();
        fields.remove("requests");
        fields.remove("errors");
        let read: MemberRecord = serde_json::from_value(old).unwrap();
        assert_eq!((read.requests, read.errors), (0, 0));
    }

    #[test]
    fn member_states_are_words() {
        for state in [MemberState::Enabled, MemberState::Draining] {
            assert_eq!(MemberState::parse(state.as_str()), Some(state));
        }
        assert_eq!(
            MemberState::parse("draining\n"),
            Some(MemberState::Draining)
        );
        assert_eq!(MemberState::parse("disabled"), None);
    }

    #[test]
    fn gone_after_three_missed_heartbeats() {
        let r = record(10_000);
        assert!(r.is_alive(10_000));
        assert!(r.is_alive(12_999));
        assert!(!r.is_alive(13_000));
    }

    #[test]
    fn records_round_trip_as_json() {
        let r = record(5);
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains("\"role\":\"manager\""));
        assert_eq!(serde_json::from_str::<MemberRecord>(&text).unwrap(), r);
    }
}
