//! CLI commands that act on the cluster store named by a member config, so
//! every member sees the change: `topology put/list/get/delete` and
//! `cluster status/drain/enable`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use portcullis_cluster::members::now_ms;
use portcullis_cluster::{ClusterStore, MemberRecord, MemberState, Writer};
use portcullis_config::NodeConfig;

pub fn load_config(path: &Path) -> anyhow::Result<NodeConfig> {
    portcullis_config::load_node_config(path)
        .map_err(|errors| anyhow::anyhow!("invalid configuration:\n{errors}"))
}

/// The config's store, its TLS files and etcd password read.
pub fn open_store(config: &NodeConfig) -> anyhow::Result<ClusterStore> {
    Ok(ClusterStore::from_config(&config.cluster)?)
}

/// `topology put FILE [--name N]`: validated, then stored; the name defaults
/// to the file name without `.toml`.
pub async fn topology_put(
    config: &NodeConfig,
    file: &Path,
    name: Option<&str>,
) -> anyhow::Result<String> {
    let name = match name {
        Some(name) => name.to_string(),
        None => file
            .file_stem()
            .and_then(|s| s.to_str())
            .context("cannot derive a topology name from the file name; give --name")?
            .to_string(),
    };
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let store = open_store(config)?;
    store.prepare().await?;
    Writer::new(&store, config.cluster.role)
        .put_topology(&name, &text, &config.base_dir)
        .await?;
    Ok(name)
}

pub async fn topology_list(config: &NodeConfig) -> anyhow::Result<Vec<String>> {
    Ok(open_store(config)?
        .list_topologies()
        .await?
        .into_keys()
        .collect())
}

pub async fn topology_get(config: &NodeConfig, name: &str) -> anyhow::Result<String> {
    Ok(open_store(config)?.get_topology(name).await?)
}

pub async fn topology_delete(config: &NodeConfig, name: &str) -> anyhow::Result<()> {
    let store = open_store(config)?;
    Ok(Writer::new(&store, config.cluster.role)
        .delete_topology(name)
        .await?)
}

/// `cluster status`: a table of the members in the store.
pub async fn cluster_status(config: &NodeConfig) -> anyhow::Result<String> {
    let store = open_store(config)?;
    let members = store.members().await?;
    let states = store.member_states().await?;
    Ok(render_members(&members, &states, now_ms()))
}

/// `cluster drain|enable ID`: only a member with a record in the store can be
/// named, so a typo is an error rather than a state nobody reads.
pub async fn set_member_state(
    config: &NodeConfig,
    id: &str,
    state: MemberState,
) -> anyhow::Result<()> {
    let store = open_store(config)?;
    let members = store.members().await?;
    if !members.iter().any(|m| m.id == id) {
        let known: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
        anyhow::bail!(
            "no member {id:?} in the cluster store (members: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
    }
    Writer::new(&store, config.cluster.role)
        .set_member_state(id, state)
        .await?;
    Ok(())
}

/// The STATE cell: `gone`, or `alive` / `draining` for a live member.
fn state_cell(member: &MemberRecord, state: MemberState, now_ms: u64) -> &'static str {
    match (member.is_alive(now_ms), state) {
        (false, _) => "gone",
        (true, MemberState::Enabled) => "alive",
        (true, MemberState::Draining) => "draining",
    }
}

pub fn render_members(
    members: &[MemberRecord],
    states: &BTreeMap<String, MemberState>,
    now_ms: u64,
) -> String {
    let drift = portcullis_cluster::members::drifted(members, now_ms);
    let rows: Vec<[String; 8]> = members
        .iter()
        .map(|m| {
            let config = match (m.config_hash.as_str(), drift.contains(&m.id.as_str())) {
                ("", _) => "-".to_string(),
                (hash, true) => format!("{hash} DRIFT"),
                (hash, false) => hash.to_string(),
            };
            [
                m.id.clone(),
                m.role.as_str().to_string(),
                m.public_url.clone(),
                state_cell(m, states.get(&m.id).copied().unwrap_or_default(), now_ms).to_string(),
                format!("{:.1}s ago", m.age(now_ms).as_secs_f64()),
                m.generation.to_string(),
                config,
                m.in_flight.to_string(),
            ]
        })
        .collect();
    let header = [
        "ID",
        "ROLE",
        "URL",
        "STATE",
        "LAST SEEN",
        "GENERATION",
        "CONFIG",
        "IN-FLIGHT",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut text = String::new();
        for (cell, width) in cells.iter().zip(widths) {
            let _ = write!(text, "{cell:<width$}  ");
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&header);
    for row in &rows {
        line(&row.iter().map(String::as_str).collect::<Vec<_>>());
    }
    if rows.is_empty() {
        out.push_str("(no members have written a record to this store)\n");
    }
    if !drift.is_empty() {
        let _ = writeln!(
            out,
            "config drift: {} serve a configuration that differs from the other members' (see their logs for refused topologies)",
            drift.join(", ")
        );
    }
    out
}

fn require_sealer(config: &NodeConfig) -> anyhow::Result<portcullis_secrets::AliasSealer> {
    portcullis_member::secrets::sealer(config)?.context(
        "aliases need the cluster master secret: add [secrets] master = \"file:master.key\" to the config (portcullis master create writes one)",
    )
}

/// `alias create NAME`: seals the value with the master secret and stores it.
pub async fn alias_create(config: &NodeConfig, name: &str, value: &[u8]) -> anyhow::Result<()> {
    portcullis_secrets::validate_alias_name(name)?;
    let sealer = require_sealer(config)?;
    let store = open_store(config)?;
    store.prepare().await?;
    Writer::new(&store, config.cluster.role)
        .put_alias(name, &sealer.seal(name, value))
        .await?;
    Ok(())
}

pub async fn alias_list(config: &NodeConfig) -> anyhow::Result<Vec<String>> {
    Ok(open_store(config)?.aliases().await?.into_keys().collect())
}

/// `alias show NAME`: for the operator who holds the master secret.
pub async fn alias_show(config: &NodeConfig, name: &str) -> anyhow::Result<Vec<u8>> {
    let sealer = require_sealer(config)?;
    let sealed = open_store(config)?
        .aliases()
        .await?
        .remove(name)
        .with_context(|| format!("alias {name} does not exist"))?;
    Ok(sealer.open(name, &sealed)?)
}

pub async fn alias_delete(config: &NodeConfig, name: &str) -> anyhow::Result<()> {
    let store = open_store(config)?;
    Ok(Writer::new(&store, config.cluster.role)
        .delete_alias(name)
        .await?)
}

/// `admin token --rotate`: a new admin token, written for every member.
pub async fn rotate_admin_token(config: &NodeConfig) -> anyhow::Result<zeroize::Zeroizing<String>> {
    let sealer = portcullis_member::secrets::sealer(config)?.context(
        "rotating the admin token needs the cluster master secret: without [secrets] master the token is derived from the cookie key",
    )?;
    let store = open_store(config)?;
    store.prepare().await?;
    let writer = Writer::new(&store, config.cluster.role);
    Ok(portcullis_member::secrets::rotate_admin_token(&writer, &sealer).await?)
}

/// `admin token`: the token every member's admin API expects.
pub async fn admin_token(config: &NodeConfig) -> anyhow::Result<zeroize::Zeroizing<String>> {
    let store = open_store(config)?;
    store.prepare().await?;
    let sealer = portcullis_member::secrets::sealer(config)?;
    let cookie_key = portcullis_member::secrets::cookie_key(&store, sealer.as_ref()).await?;
    Ok(portcullis_member::secrets::admin_token(&store, sealer.as_ref(), &cookie_key).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_cluster::members::RoleName;

    fn record(id: &str, hash: &str, updated_at_ms: u64) -> MemberRecord {
        MemberRecord {
            id: id.to_string(),
            role: RoleName::Manager,
            public_url: format!("http://{id}:8443"),
            admin_url: None,
            version: "0".to_string(),
            generation: 1,
            config_hash: hash.to_string(),
            in_flight: 0,
            requests: 0,
            errors: 0,
            heartbeat_ms: 1000,
            updated_at_ms,
        }
    }

    #[test]
    fn the_member_whose_config_differs_is_flagged() {
        let now = 1_000_000;
        let members = [
            record("m1", "aaaa", now),
            record("m2", "bbbb", now),
            record("m3", "aaaa", now),
        ];
        assert_eq!(
            portcullis_cluster::members::drifted(&members, now),
            vec!["m2"]
        );
        let table = render_members(&members, &BTreeMap::new(), now);
        let row = |id: &str| {
            table
                .lines()
                .find(|l| l.starts_with(id))
                .unwrap()
                .to_string()
        };
        assert!(row("m2").contains("bbbb DRIFT"), "{table}");
        assert!(
            row("m1").contains("aaaa") && !row("m1").contains("DRIFT"),
            "{table}"
        );
        assert!(table.contains("config drift: m2 serve"), "{table}");
    }

    #[test]
    fn same_hashes_gone_members_and_old_records_are_not_drift() {
        let now = 1_000_000;
        let members = [
            record("m1", "aaaa", now),
            record("m2", "aaaa", now),
            // gone for minutes: its old config is not drift
            record("m3", "cccc", now - 600_000),
            // a record of an older version, without a hash
            record("m4", "", now),
        ];
        assert!(portcullis_cluster::members::drifted(&members, now).is_empty());
        let table = render_members(&members, &BTreeMap::new(), now);
        assert!(
            !table.contains("DRIFT") && !table.contains("config drift"),
            "{table}"
        );
    }

    #[test]
    fn a_draining_live_member_shows_draining_and_a_gone_one_gone() {
        let now = 1_000_000;
        let members = [
            record("m1", "aaaa", now),
            record("m2", "aaaa", now),
            record("m3", "aaaa", now - 600_000),
        ];
        let states = BTreeMap::from([
            ("m2".to_string(), MemberState::Draining),
            ("m3".to_string(), MemberState::Draining),
        ]);
        let table = render_members(&members, &states, now);
        let state_of = |id: &str| {
            let line = table.lines().find(|l| l.starts_with(id)).unwrap();
            line.split_whitespace().nth(3).unwrap().to_string()
        };
        assert_eq!(
            [state_of("m1"), state_of("m2"), state_of("m3")],
            ["alive", "draining", "gone"],
            "{table}"
        );
    }

    #[test]
    fn a_tie_flags_every_live_member() {
        let now = 1_000_000;
        let members = [record("m1", "aaaa", now), record("m2", "bbbb", now)];
        assert_eq!(
            portcullis_cluster::members::drifted(&members, now),
            vec!["m1", "m2"]
        );
    }
}
