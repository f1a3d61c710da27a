//! `portcullis check`: validate a member config and topologies without serving.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use portcullis_config::StoreLocation;

#[derive(clap::Args)]
pub struct Args {
    #[arg(short, long)]
    config: Option<PathBuf>,
    topologies: Vec<PathBuf>,
}

/// The verdict on one file, in the order the files were checked.
enum Outcome {
    /// Valid; the settings in it that take no effect, if any.
    Ok(String, Vec<String>),
    /// The messages of PRODUCT.md §2, each naming the file.
    Errors(Vec<String>),
}

/// Prints each file's verdict in order: `ok:` lines on stdout, errors on
/// stderr, each stream flushed before the other is written so a terminal
/// shows them as the files were checked.
pub fn run(args: Args) -> anyhow::Result<()> {
    let outcomes = check(args.config.as_deref(), &args.topologies);
    let mut failed = false;
    for outcome in &outcomes {
        match outcome {
            Outcome::Ok(file, warnings) => {
                let mut stdout = std::io::stdout().lock();
                writeln!(stdout, "ok: {file}")?;
                stdout.flush()?;
                // Warnings do not fail the check: the file works as written.
                let mut stderr = std::io::stderr().lock();
                for warning in warnings {
                    writeln!(stderr, "warning: {warning}")?;
                }
            }
            Outcome::Errors(errors) => {
                failed = true;
                let mut stderr = std::io::stderr().lock();
                for error in errors {
                    writeln!(stderr, "{error}")?;
                }
            }
        }
    }
    if failed {
        return Err(super::Failed.into());
    }
    Ok(())
}

fn check(config: Option<&Path>, topologies: &[PathBuf]) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
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
                outcomes.push(Outcome::Ok(clean(&path).display().to_string(), Vec::new()));
                base_dir = node.base_dir.clone();
                if topologies.is_empty() {
                    if let StoreLocation::Dir(dir) = &node.cluster.store {
                        store_topologies = list_toml(&dir.join("topologies"));
                    }
                }
            }
            Err(errors) => outcomes.push(Outcome::Errors(
                errors.0.iter().map(|e| e.to_string()).collect(),
            )),
        }
    }
    for file in topologies.iter().chain(store_topologies.iter()) {
        outcomes.push(check_topology(file, &base_dir));
    }
    outcomes
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

/// `path` without its `.` components: the store directory of a config in
/// the current directory is `./store`, joined onto `.`, which printed as
/// `././store/...`.
fn clean(path: &Path) -> PathBuf {
    let cleaned: PathBuf = path
        .components()
        .filter(|c| *c != Component::CurDir)
        .collect();
    if cleaned.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        cleaned
    }
}

/// Checks one topology file as a member would before applying it, files
/// named in it included (the same `load_topology` as the admin API and the
/// member use).
fn check_topology(file: &Path, base_dir: &Path) -> Outcome {
    let label = clean(file).display().to_string();
    let name = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string();
    if let Err(reason) = portcullis_config::validate_topology_name(&name) {
        return Outcome::Errors(vec![format!(
            "{label}: the file name is not a valid topology name: {reason}"
        )]);
    }
    match std::fs::read_to_string(file) {
        Err(err) => Outcome::Errors(vec![format!("{label}: cannot read: {err}")]),
        Ok(text) => match portcullis_config::load_topology(&name, &label, &text, base_dir) {
            Ok(topology) => {
                let warnings = portcullis_config::topology_warnings(&label, &text);
                let shown = format!("{label}{}", auth_summary(&topology));
                Outcome::Ok(shown, warnings.iter().map(ToString::to_string).collect())
            }
            Err(errors) => Outcome::Errors(errors.0.iter().map(|e| e.to_string()).collect()),
        },
    }
}

/// One indented line per service with `[service.auth]`, after the `ok:`
/// line: what the gateway will demand of its clients.
fn auth_summary(topology: &portcullis_config::Topology) -> String {
    let mut out = String::new();
    for service in &topology.services {
        let Some(auth) = &service.auth else { continue };
        let methods: Vec<&str> = auth.methods.iter().map(|m| m.as_str()).collect();
        out.push_str(&format!(
            "\n  service {}: auth {}",
            service.name,
            methods.join(", ")
        ));
        if let Some(jwt) = &auth.jwt {
            out.push_str(&format!(
                " (jwks {}, issuer {}, audiences {}, leeway {}s)",
                jwt.jwks,
                jwt.issuer,
                jwt.audiences.join(", "),
                jwt.leeway.as_secs()
            ));
        }
        match &auth.basic {
            Some(portcullis_config::BasicPolicy::Ldap(ldap)) => out.push_str(&format!(
                " (basic: ldap {}{}, bind_dn {})",
                ldap.url,
                if ldap.starttls { " with StartTLS" } else { "" },
                ldap.bind_dn
            )),
            Some(portcullis_config::BasicPolicy::Htpasswd(file)) => {
                out.push_str(&format!(" (basic: htpasswd file:{file})"));
            }
            None => {}
        }
        out.push_str(&format!("; principal in {}", auth.identity_header));
        if auth.knox_doas {
            out.push_str(" and ?doAs=");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_with_auth_are_shown_after_ok() {
        let text = "[[service]]\nname = \"a\"\nurls = [\"http://127.0.0.1:1\"]\n[[service]]\nname = \"b\"\nurls = [\"http://127.0.0.1:1\"]\n[service.auth]\nmethods = [\"jwt\"]\nknox_doas = true\njwt = { jwks = \"https://idp/jwks\", issuer = \"i\", audiences = [\"x\", \"y\"] }\n";
        let topology = portcullis_config::parse_topology("t", "t.toml", text).unwrap();
        assert_eq!(
            auth_summary(&topology),
            "\n  service b: auth jwt (jwks https://idp/jwks, issuer i, audiences x, y, leeway 30s); principal in x-forwarded-user and ?doAs="
        );
    }

    #[test]
    fn paths_lose_their_dot_components() {
        assert_eq!(
            clean(Path::new("././store/topologies/a.toml")),
            Path::new("store/topologies/a.toml")
        );
        assert_eq!(
            clean(Path::new("./portcullis.toml")),
            Path::new("portcullis.toml")
        );
        assert_eq!(
            clean(Path::new("/etc/./portcullis/a.toml")),
            Path::new("/etc/portcullis/a.toml")
        );
        assert_eq!(clean(Path::new(".")), Path::new("."));
        assert_eq!(clean(Path::new("../x/./a.toml")), Path::new("../x/a.toml"));
    }

    #[test]
    fn outcomes_keep_the_order_files_were_checked_in() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let good = "[[service]]\nname = \"a\"\nurls = [\"http://127.0.0.1:1\"]\n";
        let files = [
            write("a.toml", good),
            write("b.toml", "[[service]]\nname = 3\n"),
            write("c.toml", good),
        ];
        let outcomes = check(None, &files);
        let verdicts: Vec<&str> = outcomes
            .iter()
            .map(|o| match o {
                Outcome::Ok(..) => "ok",
                Outcome::Errors(_) => "error",
            })
            .collect();
        assert_eq!(verdicts, ["ok", "error", "ok"]);
    }
}
