//! `portcullis check`: validate a member config and topologies without serving.

use std::path::{Path, PathBuf};

use portcullis_config::StoreLocation;

/// One validation outcome per file; `Err` lines are the messages of §2.
pub struct CheckReport {
    pub checked: Vec<String>,
    pub errors: Vec<String>,
}

pub fn run_check(config: Option<&Path>, topologies: &[PathBuf]) -> CheckReport {
    let mut report = CheckReport {
        checked: Vec::new(),
        errors: Vec::new(),
    };
    let config = match (config, topologies.is_empty()) {
        (Some(path), _) => Some(path.to_path_buf()),
        (None, true) => Some(PathBuf::from("portcullis.toml")),
        (None, false) => None,
    };
    let mut store_topologies = Vec::new();
    // tls_ca paths resolve as the member resolves them: against its config
    // file's directory, or the current one when no config is given.
    let mut base_dir = PathBuf::from(".");
    if let Some(path) = config {
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            base_dir = dir.to_path_buf();
        }
        match portcullis_config::load_node_config(&path) {
            Ok(node) => {
                report.checked.push(path.display().to_string());
                base_dir = node.base_dir.clone();
                if topologies.is_empty() {
                    if let StoreLocation::Dir(dir) = &node.cluster.store {
                        store_topologies = list_toml(&dir.join("topologies"));
                    }
                }
            }
            Err(errors) => report.errors.extend(errors.0.iter().map(|e| e.to_string())),
        }
    }
    for file in topologies.iter().chain(store_topologies.iter()) {
        check_topology(file, &base_dir, &mut report);
    }
    report
}

fn list_toml(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    files
}

/// Checks one topology file as a member would before applying it, files
/// named in it included (the same `load_topology` as the admin API and the
/// member use).
fn check_topology(file: &Path, base_dir: &Path, report: &mut CheckReport) {
    let label = file.display().to_string();
    let name = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string();
    if let Err(reason) = portcullis_config::validate_topology_name(&name) {
        report.errors.push(format!(
            "{label}: the file name is not a valid topology name: {reason}"
        ));
        return;
    }
    match std::fs::read_to_string(file) {
        Err(err) => report.errors.push(format!("{label}: cannot read: {err}")),
        Ok(text) => match portcullis_config::load_topology(&name, &label, &text, base_dir) {
            Ok(_) => report.checked.push(label),
            Err(errors) => report.errors.extend(errors.0.iter().map(|e| e.to_string())),
        },
    }
}
