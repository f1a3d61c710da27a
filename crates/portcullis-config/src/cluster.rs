//! `[cluster]`: which store, how to reach it (TLS and etcd user), and where
//! the member keeps its last good state while the store is away.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::model::{ClusterSection, Role, StoreAuth, StoreLocation, StoreTls, TlsFiles};
use crate::raw::{FileCache, FileCluster, FileStoreTls};
use crate::validator::{is_segment, Validator};

/// Where the cache goes when `[cluster] cache` is not set, relative to the
/// config file's directory.
const DEFAULT_CACHE: &str = "./portcullis-cache";

pub(crate) fn cluster_section(
    v: &mut Validator<'_>,
    raw: FileCluster,
    base_dir: &Path,
) -> Option<ClusterSection> {
    let name = raw.name.unwrap_or_else(|| "default".to_string());
    if !is_segment(&name) {
        v.error(
            "cluster.name",
            format!("expected letters, digits, '.', '_', '-' or '~', found {name:?}"),
        );
    }
    let store_text = raw.store.unwrap_or_else(|| "dir:./store".to_string());
    let store = store_location(v, &store_text, base_dir);
    let heartbeat = v.duration(
        "cluster.heartbeat",
        raw.heartbeat.as_ref(),
        Duration::from_secs(1),
        Duration::from_millis(100),
        Duration::from_secs(60),
    );
    let cache = cache_dir(v, raw.cache, base_dir);
    let tls = store_tls(v, &store_text, raw.tls, base_dir);
    let auth = store_auth(v, raw.user, raw.password_file, base_dir);
    if auth.is_some() && !matches!(store, Some(StoreLocation::Etcd(_))) {
        v.error("cluster.user", "only an etcd store has users");
    }
    Some(ClusterSection {
        name,
        store: store?,
        role: raw.role.unwrap_or(Role::Manager),
        heartbeat,
        cache,
        tls: tls?,
        auth,
    })
}

/// Whether `store` names an etcd store reached over TLS.
fn is_etcd_tls(store: &str) -> bool {
    store.starts_with("etcd+tls://")
}

fn store_location(v: &mut Validator<'_>, text: &str, base_dir: &Path) -> Option<StoreLocation> {
    if let Some(dir) = text.strip_prefix("dir:").filter(|d| !d.is_empty()) {
        return Some(StoreLocation::Dir(base_dir.join(dir)));
    }
    let expected = "expected \"dir:PATH\" or \"etcd://HOST:PORT[,HOST:PORT...]\" (or etcd+tls://)";
    let Some(list) = text
        .strip_prefix("etcd://")
        .or_else(|| text.strip_prefix("etcd+tls://"))
    else {
        v.error("cluster.store", format!("{expected}, found {text:?}"));
        return None;
    };
    let endpoints: Vec<String> = list.split(',').map(|e| e.trim().to_string()).collect();
    let bad_endpoint = endpoints.iter().any(|e| {
        e.rsplit_once(':')
            .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
    });
    if bad_endpoint {
        v.error("cluster.store", format!("{expected}, found {text:?}"));
        return None;
    }
    Some(StoreLocation::Etcd(endpoints))
}

/// `cache = "PATH"` (relative to the config's directory) or `cache = false`.
fn cache_dir(v: &mut Validator<'_>, raw: Option<FileCache>, base_dir: &Path) -> Option<PathBuf> {
    match raw {
        None | Some(FileCache::Enabled(true)) => Some(base_dir.join(DEFAULT_CACHE)),
        Some(FileCache::Enabled(false)) => None,
        Some(FileCache::Path(path)) if path.trim().is_empty() => {
            v.error(
                "cluster.cache",
                "expected a directory, or false for no cache, found \"\"",
            );
            None
        }
        Some(FileCache::Path(path)) => Some(base_dir.join(path)),
    }
}

/// `[cluster] tls`, which `etcd+tls://` needs and no other store takes. The
/// outer `None` is an error already reported.
fn store_tls(
    v: &mut Validator<'_>,
    store: &str,
    raw: Option<FileStoreTls>,
    base_dir: &Path,
) -> Option<Option<StoreTls>> {
    let raw = match (is_etcd_tls(store), raw) {
        (false, None) => return Some(None),
        (false, Some(_)) => {
            v.error("cluster.tls", "needs store = \"etcd+tls://HOST:PORT\"");
            return None;
        }
        (true, None) => {
            v.error(
                "cluster.tls",
                "an etcd+tls:// store needs tls = { ca = \"ca.pem\" } (cert and key too when etcd asks for a client certificate)",
            );
            return None;
        }
        (true, Some(raw)) => raw,
    };
    let ca = base_dir.join(&raw.ca);
    let mut ok = check_pem(v, "cluster.tls.ca", &ca, Pem::Certificate);
    let client = match (raw.cert, raw.key) {
        (None, None) => None,
        (Some(cert), Some(key)) => {
            let files = TlsFiles {
                cert: base_dir.join(cert),
                key: base_dir.join(key),
            };
            ok &= check_pem(v, "cluster.tls.cert", &files.cert, Pem::Certificate);
            ok &= check_pem(v, "cluster.tls.key", &files.key, Pem::PrivateKey);
            Some(files)
        }
        (Some(_), None) | (None, Some(_)) => {
            v.error("cluster.tls", "expected both cert and key, or neither");
            return None;
        }
    };
    ok.then_some(Some(StoreTls { ca, client }))
}

enum Pem {
    Certificate,
    PrivateKey,
}

/// Whether `path` holds what `kind` expects, as PEM; reports it under `key`
/// if not, so `check` finds a wrong file before a member tries to connect.
fn check_pem(v: &mut Validator<'_>, key: &str, path: &Path, kind: Pem) -> bool {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) => {
            v.error(key, format!("cannot read {}: {err}", path.display()));
            return false;
        }
    };
    let (usable, expected) = match kind {
        Pem::Certificate => (
            CertificateDer::pem_slice_iter(&bytes).any(|c| c.is_ok()),
            "PEM certificate",
        ),
        Pem::PrivateKey => (
            PrivateKeyDer::from_pem_slice(&bytes).is_ok(),
            "PEM private key",
        ),
    };
    if !usable {
        v.error(key, format!("{} holds no {expected}", path.display()));
    }
    usable
}

fn store_auth(
    v: &mut Validator<'_>,
    user: Option<String>,
    password_file: Option<String>,
    base_dir: &Path,
) -> Option<StoreAuth> {
    match (user, password_file) {
        (None, None) => None,
        (Some(user), Some(file)) => {
            if user.is_empty() || user.chars().any(char::is_control) {
                v.error("cluster.user", "expected a non-empty etcd user name");
            }
            let password_file = base_dir.join(file);
            if let Err(reason) = check_password_file(&password_file) {
                v.error("cluster.password_file", reason);
            }
            Some(StoreAuth {
                user,
                password_file,
            })
        }
        (Some(_), None) => {
            v.error(
                "cluster.password_file",
                "cluster.user needs password_file (an alias cannot hold it: aliases live in the store)",
            );
            None
        }
        (None, Some(_)) => {
            v.error("cluster.user", "password_file needs cluster.user");
            None
        }
    }
}

/// A store password file must exist and be readable by its owner only
/// (mode 0600 or 0400), as ssh insists for its keys.
pub fn check_password_file(path: &Path) -> Result<(), String> {
    let metadata =
        std::fs::metadata(path).map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o777;
        if mode != 0o600 && mode != 0o400 {
            return Err(format!(
                "{} has mode {mode:04o}; a password file must be 0600 or 0400 (chmod 600 {})",
                path.display(),
                path.display()
            ));
        }
    }
    if !metadata.is_file() {
        return Err(format!("{} is not a file", path.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::{parse_node_config, ClusterSection};

    fn cluster(dir: &Path, keys: &str) -> Result<ClusterSection, String> {
        let text = format!("[gateway]\nlisten = \"127.0.0.1:0\"\n[cluster]\n{keys}");
        parse_node_config(&text, &dir.join("p.toml"))
            .map(|c| c.cluster)
            .map_err(|e| e.to_string())
    }

    fn write(dir: &Path, name: &str, text: &str, mode: u32) {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    }

    fn pem_files(dir: &Path) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        write(dir, "ca.pem", &cert.pem(), 0o644);
        write(dir, "client.pem", &cert.pem(), 0o644);
        write(dir, "client-key.pem", &key.serialize_pem(), 0o600);
    }

    #[test]
    fn the_cache_defaults_beside_the_config_and_false_turns_it_off() {
        let dir = tempfile::tempdir().unwrap();
        let c = cluster(dir.path(), "").unwrap();
        assert_eq!(c.cache, Some(dir.path().join("./portcullis-cache")));
        assert_eq!(cluster(dir.path(), "cache = false\n").unwrap().cache, None);
        let c = cluster(dir.path(), "cache = \"/var/cache/p\"\n").unwrap();
        assert_eq!(c.cache, Some("/var/cache/p".into()));
        let err = cluster(dir.path(), "cache = \"\"\n").unwrap_err();
        assert!(err.contains("cluster.cache"), "{err}");
    }

    #[test]
    fn an_etcd_tls_store_reads_its_files_relative_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        pem_files(dir.path());
        write(dir.path(), "etcd.password", "pw\n", 0o600);
        let c = cluster(
            dir.path(),
            "store = \"etcd+tls://127.0.0.1:2379\"\ntls = { ca = \"ca.pem\", cert = \"client.pem\", key = \"client-key.pem\" }\nuser = \"portcullis\"\npassword_file = \"etcd.password\"\n",
        )
        .unwrap();
        let tls = c.tls.unwrap();
        assert_eq!(tls.ca, dir.path().join("ca.pem"));
        assert_eq!(tls.client.unwrap().key, dir.path().join("client-key.pem"));
        let auth = c.auth.unwrap();
        assert_eq!(auth.user, "portcullis");
        assert_eq!(auth.password_file, dir.path().join("etcd.password"));
        // The CA alone is enough when etcd asks for no client certificate.
        let c = cluster(
            dir.path(),
            "store = \"etcd+tls://127.0.0.1:2379\"\ntls = { ca = \"ca.pem\" }\n",
        )
        .unwrap();
        assert_eq!(c.tls.unwrap().client, None);
    }

    #[test]
    fn tls_and_login_mistakes_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        pem_files(dir.path());
        write(dir.path(), "open.password", "pw", 0o644);
        let tls_store = "store = \"etcd+tls://127.0.0.1:2379\"\n";
        for (keys, key, words) in [
            (tls_store.to_string(), "cluster.tls", "needs tls"),
            (
                "store = \"etcd://127.0.0.1:2379\"\ntls = { ca = \"ca.pem\" }\n".to_string(),
                "cluster.tls",
                "etcd+tls://",
            ),
            (
                format!("{tls_store}tls = {{ ca = \"missing.pem\" }}\n"),
                "cluster.tls.ca",
                "missing.pem",
            ),
            (
                format!("{tls_store}tls = {{ ca = \"client-key.pem\" }}\n"),
                "cluster.tls.ca",
                "no PEM certificate",
            ),
            (
                format!("{tls_store}tls = {{ ca = \"ca.pem\", cert = \"client.pem\", key = \"ca.pem\" }}\n"),
                "cluster.tls.key",
                "no PEM private key",
            ),
            (
                format!("{tls_store}tls = {{ ca = \"ca.pem\", cert = \"client.pem\" }}\n"),
                "cluster.tls",
                "both cert and key",
            ),
            (
                "store = \"etcd://h:1\"\nuser = \"u\"\n".to_string(),
                "cluster.password_file",
                "alias cannot hold it",
            ),
            (
                "store = \"etcd://h:1\"\nuser = \"u\"\npassword_file = \"open.password\"\n"
                    .to_string(),
                "cluster.password_file",
                "0600 or 0400",
            ),
            (
                "store = \"etcd://h:1\"\nuser = \"u\"\npassword_file = \"none\"\n".to_string(),
                "cluster.password_file",
                "cannot read",
            ),
        ] {
            let err = cluster(dir.path(), &keys).unwrap_err();
            assert!(err.contains(key) && err.contains(words), "{keys}: {err}");
        }
    }
}
