//! Settings that a valid topology holds but that have no effect, as Knox's
//! HaProvider would silently ignore them: `sticky_session` without a
//! balancing policy, `failback` with one, `no_fallback` without sticky
//! sessions, and the like. They are not errors (the topology works, and
//! refusing it would break files that Knox accepted), but an operator who
//! wrote them expected something, so `portcullis check` prints them and a
//! member logs them when it applies the topology.

use crate::error::ConfigError;
use crate::locate::Locator;
use crate::model::LoadBalancing;
use crate::raw::{FileHa, FileTopology};

/// The settings of topology text `src` that take no effect, each located
/// like an error (file, key path, line). Text that does not parse has none
/// (its errors come from [`crate::parse_topology`]).
pub fn topology_warnings(file_label: &str, src: &str) -> Vec<ConfigError> {
    let Ok(raw) = toml::from_str::<FileTopology>(src) else {
        return Vec::new();
    };
    let locator = Locator::new(src);
    let mut warnings = Vec::new();
    for (i, service) in raw.service.iter().enumerate() {
        for (key, message) in ignored_ha_settings(&service.ha) {
            let path = format!("service[{i}].ha.{key}");
            let position = locator.locate(&path);
            warnings.push(ConfigError {
                file: file_label.to_string(),
                path,
                line: position.map(|(line, _)| line),
                column: position.map(|(_, column)| column),
                message: message.to_string(),
            });
        }
    }
    warnings
}

/// The `[service.ha]` keys set explicitly to something that changes
/// nothing, with why.
fn ignored_ha_settings(ha: &FileHa) -> Vec<(&'static str, &'static str)> {
    let mut ignored = Vec::new();
    if ha.enabled == Some(false) {
        for (key, set) in [
            (
                "load_balancing",
                ha.load_balancing
                    .is_some_and(|lb| lb != LoadBalancing::None),
            ),
            ("sticky_session", ha.sticky_session == Some(true)),
            ("failback", ha.failback == Some(true)),
            ("max_failover_attempts", ha.max_failover_attempts.is_some()),
        ] {
            if set {
                ignored.push((key, "ignored: enabled = false sends every request to the first url, without balancing, stickiness or failover"));
            }
        }
        return ignored;
    }
    let balanced = ha
        .load_balancing
        .is_some_and(|lb| lb != LoadBalancing::None);
    let sticky = ha.sticky_session == Some(true) && balanced;
    let user_agents = ha
        .disable_load_balancing_for_user_agents
        .as_ref()
        .is_some_and(|list| !list.is_empty());
    if ha.sticky_session == Some(true) && !balanced {
        ignored.push(("sticky_session", "ignored: sticky sessions need a balancing policy, and load_balancing is \"none\" (everyone uses the active backend already)"));
    }
    if ha.no_fallback == Some(true) && !sticky {
        ignored.push(("no_fallback", "ignored: no_fallback applies only to sticky sessions (sticky_session = true with a balancing policy)"));
    }
    if ha.sticky_session_cookie_name.is_some() && !sticky {
        ignored.push(("sticky_session_cookie_name", "ignored: no sticky cookie is set without sticky sessions (sticky_session = true with a balancing policy)"));
    }
    if ha.failback == Some(true) && balanced && !user_agents {
        ignored.push(("failback", "ignored: failback applies to load_balancing = \"none\" (and to clients of disable_load_balancing_for_user_agents), and this service balances"));
    }
    if user_agents && !balanced {
        ignored.push((
            "disable_load_balancing_for_user_agents",
            "ignored: load_balancing is \"none\", so no client is balanced anyway",
        ));
    }
    ignored
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warnings(ha: &str) -> Vec<String> {
        let src = format!(
            "[[service]]\nname = \"s\"\nurls = [\"http://127.0.0.1:1\"]\n\n[service.ha]\n{ha}\n"
        );
        crate::parse_topology("t", "t.toml", &src).expect("a valid topology");
        topology_warnings("t.toml", &src)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn the_issues_three_cases_are_warned_with_their_lines() {
        let found = warnings("sticky_session = true");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("t.toml:6:18: service[0].ha.sticky_session: ignored: sticky sessions need a balancing policy"), "{found:?}");
        let found = warnings("load_balancing = \"round-robin\"\nfailback = true");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("t.toml:7:12: service[0].ha.failback: ignored"),
            "{found:?}"
        );
        let found = warnings("load_balancing = \"random\"\nno_fallback = true");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains(
                "service[0].ha.no_fallback: ignored: no_fallback applies only to sticky sessions"
            ),
            "{found:?}"
        );
    }

    #[test]
    fn settings_that_take_effect_are_not_warned() {
        assert!(warnings("").is_empty());
        assert!(warnings("failback = true").is_empty());
        assert!(warnings("load_balancing = \"round-robin\"\nsticky_session = true\nno_fallback = true\nsticky_session_cookie_name = \"X\"").is_empty());
        // failback still steers the clients that are never balanced
        assert!(warnings("load_balancing = \"round-robin\"\nfailback = true\ndisable_load_balancing_for_user_agents = [\"curl\"]").is_empty());
        assert!(warnings("enabled = false").is_empty());
    }

    #[test]
    fn other_ignored_settings_are_warned_too() {
        let found = warnings("sticky_session_cookie_name = \"X\"");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("sticky_session_cookie_name: ignored"));
        let found = warnings("disable_load_balancing_for_user_agents = [\"curl\"]");
        assert!(
            found[0].contains("disable_load_balancing_for_user_agents: ignored"),
            "{found:?}"
        );
        let found = warnings("enabled = false\nload_balancing = \"random\"\nsticky_session = true");
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found.iter().all(|w| w.contains("ignored: enabled = false")),
            "{found:?}"
        );
    }

    #[test]
    fn text_that_does_not_parse_has_no_warnings() {
        assert!(topology_warnings("t.toml", "[[service]\n").is_empty());
    }
}
