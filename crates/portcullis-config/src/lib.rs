//! Portcullis configuration: the member's `portcullis.toml` and topology files.
//!
//! Text goes through three stages: raw serde types (`raw`, exactly the file, with
//! unknown keys refused), validation (`validate`, every problem collected with its
//! key path and line), and model types (`model`, what the rest of the system uses).
#![forbid(unsafe_code)]

mod auth;
mod authorize;
mod basic;
mod cluster;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod htpasswd;
mod jwks;
mod lines;
mod locate;
pub mod model;
mod rate_limit;
mod raw;
mod tls;
mod validate;
mod validator;
mod warnings;

use std::path::Path;
use std::time::Duration;

pub use cluster::check_password_file;
pub use error::{ConfigError, ConfigErrors};
pub use htpasswd::{
    parse_htpasswd, read_htpasswd_file, HtpasswdEntry, HtpasswdError, HtpasswdHash,
};
pub use jwks::{parse_jwks, read_jwks_file, JwksError, JwtKey};
pub use model::*;
pub use tls::{load_tls_ca, read_tls_ca, tls_ca_roots, TlsCaError};
pub use warnings::topology_warnings;

/// Most backends (urls and backup_urls together) one service may have: the
/// data plane records the backends a request tried in a 64-bit mask.
pub const MAX_BACKENDS: usize = 64;

use crate::lines::line_col;
use crate::validator::Validator;

/// Parses a member config. Relative paths resolve against `file`'s directory.
pub fn parse_node_config(src: &str, file: &Path) -> Result<NodeConfig, ConfigErrors> {
    let label = file.display().to_string();
    let raw: raw::FileNodeConfig = deserialize(src, &label)?;
    let base_dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut validator = Validator::new(src, &label);
    let config = validate::node_config(&mut validator, raw, base_dir);
    match config {
        Some(config) => validator.finish(config),
        None => validator.finish(()).and_then(|()| {
            // Validation reported nothing yet a value is missing: name the file.
            Err(ConfigErrors(vec![ConfigError {
                file: label.clone(),
                path: String::new(),
                line: None,
                column: None,
                message: "configuration is incomplete".to_string(),
            }]))
        }),
    }
}

/// Reads and parses a member config file.
pub fn load_node_config(path: &Path) -> Result<NodeConfig, ConfigErrors> {
    let src = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.display().to_string(),
            path: String::new(),
            line: None,
            column: None,
            message: format!("cannot read the file: {e}"),
        }])
    })?;
    parse_node_config(&src, path)
}

/// Parses and validates topology `name`; `file_label` names it in messages.
pub fn parse_topology(name: &str, file_label: &str, src: &str) -> Result<Topology, ConfigErrors> {
    if let Err(reason) = validate_topology_name(name) {
        return Err(ConfigErrors(vec![ConfigError {
            file: file_label.to_string(),
            path: String::new(),
            line: None,
            column: None,
            message: format!("invalid topology name {name:?}: {reason}"),
        }]));
    }
    let raw: raw::FileTopology = deserialize(src, file_label)?;
    let mut validator = Validator::new(src, file_label);
    let topology = validate::topology(&mut validator, name, raw);
    validator.finish(topology)
}

/// [`parse_topology`], then the checks that need the member's files: every
/// `tls_ca` must be readable and hold a usable certificate, relative to
/// `base_dir` (the member's config directory). `portcullis check`, the admin
/// API and a member about to apply all call this, so a topology that one
/// accepts is not refused by another.
pub fn load_topology(
    name: &str,
    file_label: &str,
    src: &str,
    base_dir: &Path,
) -> Result<Topology, ConfigErrors> {
    let topology = parse_topology(name, file_label, src)?;
    let mut validator = Validator::new(src, file_label);
    validate::topology_files(&mut validator, &topology, base_dir);
    validator.finish(topology)
}

/// How messages name a topology kept in the cluster store: its path in a
/// `dir:` store. An etcd store uses the same label, so an error reads the
/// same whichever store holds the topology.
pub fn stored_topology_label(name: &str) -> String {
    format!("topologies/{name}.toml")
}

/// [`load_topology`] for the topology stored as `name`, its errors labelled
/// with its store path. A member about to apply, and a manager about to
/// store, both call this: what one accepts the other does too.
pub fn load_stored_topology(
    name: &str,
    src: &str,
    base_dir: &Path,
) -> Result<Topology, ConfigErrors> {
    load_topology(name, &stored_topology_label(name), src, base_dir)
}

/// [`parse_topology`] for the topology stored as `name`, without the file
/// checks: for comparing stored text with what a member serves.
pub fn parse_stored_topology(name: &str, src: &str) -> Result<Topology, ConfigErrors> {
    parse_topology(name, &stored_topology_label(name), src)
}

/// Topology names become URL segments and file names.
pub fn validate_topology_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("expected 1 to 64 characters".to_string());
    }
    if name.starts_with('.') {
        return Err("must not start with '.'".to_string());
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err("expected letters, digits, '.', '_' or '-'".to_string());
    }
    Ok(())
}

/// Parses "250ms", "2s", "5m", "1h" (also "us" and "d"): a whole number and a unit.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let expected =
        || format!("expected a duration such as \"250ms\", \"2s\" or \"5m\", found {text:?}");
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(expected());
    }
    let value: u64 = text[..digits].parse().map_err(|_| expected())?;
    let unit_nanos: u64 = match &text[digits..] {
        "us" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "d" => 86_400_000_000_000,
        _ => return Err(expected()),
    };
    value
        .checked_mul(unit_nanos)
        .map(Duration::from_nanos)
        .ok_or_else(expected)
}

/// Deserializes with the key path of any error, and its line from the span.
fn deserialize<T: serde::de::DeserializeOwned>(src: &str, file: &str) -> Result<T, ConfigErrors> {
    let to_error = |path: String, err: &toml::de::Error| {
        let position = err.span().map(|span| line_col(src, span.start));
        let message = err.message().to_string();
        // For an unknown or missing key serde names the table; add the key itself.
        let key = ["unknown field `", "missing field `"]
            .iter()
            .find_map(|prefix| message.strip_prefix(prefix))
            .and_then(|rest| rest.split('`').next());
        let path = match key {
            Some(key) if path.is_empty() => key.to_string(),
            Some(key) if path != key && !path.ends_with(&format!(".{key}")) => {
                format!("{path}.{key}")
            }
            _ => path,
        };
        let message = hint(&path, explain(&message));
        ConfigErrors(vec![ConfigError {
            file: file.to_string(),
            path,
            line: position.map(|p| p.0),
            column: position.map(|p| p.1),
            message,
        }])
    };
    let deserializer =
        toml::de::Deserializer::parse(src).map_err(|e| to_error(String::new(), &e))?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        to_error(if path == "." { String::new() } else { path }, e.inner())
    })
}

/// `[service]` instead of `[[service]]` is the classic slip; say so.
fn hint(path: &str, message: String) -> String {
    if path == "service" && message.contains("invalid type: table, expected an array") {
        format!("{message} (write [[service]] for each service, not [service])")
    } else {
        message
    }
}

/// serde's messages are close to what an operator needs, but speak Rust: say
/// "key", "integer", "array" and "table" as the TOML documentation does.
fn explain(message: &str) -> String {
    const WORDS: [(&str, &str); 9] = [
        ("unknown field", "unknown key"),
        ("missing field", "missing key"),
        ("expected i64", "expected an integer"),
        ("expected u64", "expected a non-negative integer"),
        ("expected a sequence", "expected an array"),
        ("invalid type: sequence", "invalid type: array"),
        ("expected a map", "expected a table"),
        ("invalid type: map", "invalid type: table"),
        ("floating point", "float"),
    ];
    let mut message = message.trim().to_string();
    for (from, to) in WORDS {
        message = message.replace(from, to);
    }
    message
}

#[cfg(test)]
mod tests;
