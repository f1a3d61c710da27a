//! `SIGHUP`: re-read `portcullis.toml`, refuse it with `check`'s messages
//! when invalid, apply what can change while serving, and name what needs a
//! hot restart (`SIGUSR2`) instead.

use std::path::PathBuf;

use portcullis_config::NodeConfig;
use portcullis_member::Member;

/// The config file, the config the listeners and the store were set up
/// with (a reload compares against it to say what it cannot apply), and the
/// config last applied.
pub struct LiveConfig {
    path: PathBuf,
    started: NodeConfig,
    applied: NodeConfig,
}

impl LiveConfig {
    pub fn new(path: PathBuf, started: NodeConfig) -> LiveConfig {
        LiveConfig {
            path,
            applied: started.clone(),
            started,
        }
    }

    /// Reads the file again and applies it to `member`; whatever happens,
    /// the member keeps serving (on any error with the config it had).
    pub fn reload(&mut self, member: &Member) {
        tracing::info!(config = %self.path.display(), "reload requested (SIGHUP)");
        let config = match portcullis_config::load_node_config(&self.path) {
            Ok(config) => config,
            Err(errors) => {
                // One line per error, worded as `portcullis check` words them.
                for error in &errors.0 {
                    tracing::error!("{error}");
                }
                tracing::error!(config = %self.path.display(), "reload refused: the file is invalid; the running config stays");
                return;
            }
        };
        for key in needs_restart(&self.started, &config) {
            tracing::warn!(key, "changed; needs a restart (SIGUSR2), not applied");
        }
        let changed = changed_live(&self.applied, &config);
        if self.applied.node.log_level != config.node.log_level {
            // Validated with the file: applying it cannot fail.
            if let Err(err) =
                portcullis_member::logging::set_from_config(config.node.log_level.as_deref())
            {
                tracing::error!(error = %err, "node.log_level not applied");
            }
        }
        match member.reload(&config) {
            Ok(()) => {
                tracing::info!(changed = ?changed, "reloaded");
                self.applied = config;
            }
            Err(err) => {
                tracing::error!(error = %format!("{err:#}"), "reload refused; the running config stays")
            }
        }
    }
}

fn admin_tls(config: &NodeConfig) -> Option<&portcullis_config::TlsFiles> {
    config.admin.as_ref().and_then(|a| a.tls.as_ref())
}

/// The keys whose change needs a new process: what was bound, the store
/// and the member's identity, and where its secrets come from.
fn needs_restart(running: &NodeConfig, new: &NodeConfig) -> Vec<&'static str> {
    let admin = |c: &NodeConfig| c.admin.as_ref().map(|a| a.listen);
    let balancer = |c: &NodeConfig| c.balancer.as_ref().map(|b| b.listen);
    let checks = [
        (
            "gateway.listen",
            running.gateway.listen != new.gateway.listen,
        ),
        (
            "gateway.tls",
            running.gateway.tls.is_some() != new.gateway.tls.is_some(),
        ),
        ("gateway.path", running.gateway.path != new.gateway.path),
        (
            "gateway.engine",
            running.gateway.engine != new.gateway.engine,
        ),
        ("admin.listen", admin(running) != admin(new)),
        (
            "admin.tls",
            admin_tls(running).is_some() != admin_tls(new).is_some(),
        ),
        ("balancer.listen", balancer(running) != balancer(new)),
        (
            "balancer.mode",
            running.balancer.as_ref().map(|b| b.mode) != new.balancer.as_ref().map(|b| b.mode),
        ),
        ("cluster", running.cluster != new.cluster),
        ("node.id", running.node.id != new.node.id),
        ("secrets", running.secrets != new.secrets),
    ];
    checks
        .into_iter()
        .filter(|(_, changed)| *changed)
        .map(|(key, _)| key)
        .collect()
}

/// The keys a reload applies that changed (the certificate files are read
/// again on every reload, so a renewed certificate at the same path counts
/// as applied without showing here).
fn changed_live(applied: &NodeConfig, new: &NodeConfig) -> Vec<&'static str> {
    let (old, now) = (&applied.gateway, &new.gateway);
    let checks = [
        (
            "gateway.header_read_timeout",
            old.header_read_timeout != now.header_read_timeout,
        ),
        (
            "gateway.max_connections",
            old.max_connections != now.max_connections,
        ),
        (
            "gateway.shutdown_grace",
            old.shutdown_grace != now.shutdown_grace,
        ),
        (
            "gateway.min_body_rate",
            old.min_body_rate != now.min_body_rate,
        ),
        ("gateway.public_url", old.public_url != now.public_url),
        (
            "gateway.trusted_proxies",
            old.trusted_proxies != now.trusted_proxies,
        ),
        ("gateway.tls", old.tls != now.tls),
        ("admin.tls", admin_tls(applied) != admin_tls(new)),
        (
            "node.log_level",
            applied.node.log_level != new.node.log_level,
        ),
    ];
    let balancer = |c: &NodeConfig| {
        c.balancer.as_ref().map(|b| {
            (
                b.connect_timeout,
                b.request_timeout,
                b.tls.clone(),
                b.members_ca.clone(),
            )
        })
    };
    let balancer_changed = balancer(applied) != balancer(new);
    checks
        .into_iter()
        .chain([("balancer", balancer_changed)])
        .filter(|(_, changed)| *changed)
        .map(|(key, _)| key)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(gateway: &str) -> NodeConfig {
        let text = format!(
            "[node]\nid = \"m1\"\n[gateway]\n{gateway}\n[cluster]\nstore = \"dir:/tmp/none\"\n"
        );
        portcullis_config::parse_node_config(&text, std::path::Path::new("m1.toml")).unwrap()
    }

    #[test]
    fn a_changed_listen_address_needs_a_restart() {
        let running = config("listen = \"127.0.0.1:8080\"");
        let moved = config("listen = \"127.0.0.1:8081\"");
        assert_eq!(needs_restart(&running, &moved), ["gateway.listen"]);
        assert!(needs_restart(&running, &running.clone()).is_empty());
    }

    #[test]
    fn a_changed_body_rate_is_applied_live() {
        let running = config("listen = \"127.0.0.1:8080\"");
        let slower = config("listen = \"127.0.0.1:8080\"\nmin_body_rate = 10");
        assert!(needs_restart(&running, &slower).is_empty());
        assert_eq!(changed_live(&running, &slower), ["gateway.min_body_rate"]);
        let longer = config("listen = \"127.0.0.1:8080\"\nheader_read_timeout = \"3s\"");
        assert!(needs_restart(&running, &longer).is_empty());
        assert_eq!(
            changed_live(&running, &longer),
            ["gateway.header_read_timeout"]
        );
        let behind_proxy =
            config("listen = \"127.0.0.1:8080\"\ntrusted_proxies = [\"10.0.0.0/8\"]");
        assert!(needs_restart(&running, &behind_proxy).is_empty());
        assert_eq!(
            changed_live(&running, &behind_proxy),
            ["gateway.trusted_proxies"]
        );
    }

    #[test]
    fn balancer_timeouts_are_applied_live_and_its_mode_needs_a_restart() {
        let gateway = "listen = \"127.0.0.1:8080\"\n";
        let with = |balancer: &str| {
            config(&format!(
                "{gateway}[balancer]\nlisten = \"127.0.0.1:9000\"\n{balancer}"
            ))
        };
        let running = with("mode = \"proxy\"");
        let quicker = with("mode = \"proxy\"\nrequest_timeout = \"5s\"");
        assert!(needs_restart(&running, &quicker).is_empty());
        assert_eq!(changed_live(&running, &quicker), ["balancer"]);
        let redirect = with("mode = \"redirect\"");
        assert_eq!(needs_restart(&running, &redirect), ["balancer.mode"]);
    }
}
