//! A real etcd for the tests (Debian's etcd-server), on free loopback ports
//! with its data in a temp dir: plain, or over TLS with client certificates
//! (made by `portcullis cert create`) and, once `enable_auth` ran, users.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use portcullis::cert::CreatedCerts;
use portcullis_testkit::*;

/// The etcd user members log in as, and its password.
pub const MEMBER_USER: &str = "portcullis";
pub const MEMBER_PASSWORD: &str = "member-password-7f3a";
const ROOT_PASSWORD: &str = "root-password-91c2";

pub struct Etcd {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    /// Set for an etcd that speaks TLS and asks for client certificates.
    pub certs: Option<CreatedCerts>,
    auth: bool,
}

impl Etcd {
    pub fn start() -> Etcd {
        Etcd::new(false).spawn()
    }

    /// etcd on `https://127.0.0.1`, with `--client-cert-auth`: the server
    /// certificate and the client certificates `portcullis` and `root` come
    /// from one `cert create`.
    pub fn start_tls() -> Etcd {
        Etcd::new(true).spawn()
    }

    fn new(tls: bool) -> Etcd {
        let dir = tempfile::tempdir().unwrap();
        let certs = tls.then(|| {
            portcullis::cert::create_certs_with_clients(
                &["127.0.0.1".to_string(), "localhost".to_string()],
                &[MEMBER_USER.to_string(), "root".to_string()],
                &dir.path().join("certs"),
            )
            .unwrap()
        });
        Etcd {
            child: None,
            dir,
            client_port: free_port(),
            peer_port: free_port(),
            certs,
            auth: false,
        }
    }

    fn spawn(mut self) -> Etcd {
        let scheme = if self.certs.is_some() {
            "https"
        } else {
            "http"
        };
        let client = format!("{scheme}://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut command = Command::new("etcd");
        command
            .args(["--name", "test", "--data-dir"])
            .arg(self.dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("test={peer}")]);
        if let Some(certs) = &self.certs {
            command
                .arg("--cert-file")
                .arg(&certs.server_cert)
                .arg("--key-file")
                .arg(&certs.server_key)
                .arg("--trusted-ca-file")
                .arg(&certs.ca_cert)
                .arg("--client-cert-auth");
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd is installed (scripts/setup.sh installs etcd-server)");
        self.child = Some(child);
        wait_port(self.client_port, "etcd");
        self
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops etcd and starts it again on the same ports and data.
    pub fn restart(mut self) -> Etcd {
        self.stop();
        self.spawn()
    }

    /// The `[cluster] store` of a member on this etcd.
    pub fn store(&self) -> String {
        let scheme = if self.certs.is_some() {
            "etcd+tls"
        } else {
            "etcd"
        };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// The client certificate and key made for `name`.
    pub fn client_cert(&self, name: &str) -> (PathBuf, PathBuf) {
        let certs = self.certs.as_ref().expect("a TLS etcd");
        let suffix = format!("client-{name}.crt");
        certs
            .clients
            .iter()
            .find(|(cert, _)| cert.ends_with(&suffix))
            .cloned()
            .expect("a client certificate of that name")
    }

    /// Runs `etcdctl` on this etcd as `root` (with root's client
    /// certificate on a TLS etcd, and its password once auth is on).
    pub fn etcdctl(&self, args: &[&str]) -> Output {
        let scheme = if self.certs.is_some() {
            "https"
        } else {
            "http"
        };
        let mut command = Command::new("etcdctl");
        command.env("ETCDCTL_API", "3").arg(format!(
            "--endpoints={scheme}://127.0.0.1:{}",
            self.client_port
        ));
        if let Some(certs) = &self.certs {
            let (cert, key) = self.client_cert("root");
            command
                .arg(flag("--cacert", &certs.ca_cert))
                .arg(flag("--cert", &cert))
                .arg(flag("--key", &key));
        }
        if self.auth {
            command.arg(format!("--user=root:{ROOT_PASSWORD}"));
        }
        let output = command
            .args(args)
            .output()
            .expect("etcdctl is installed (scripts/setup.sh installs etcd-client)");
        assert!(
            output.status.success(),
            "etcdctl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// Creates `root` and the member user, allowed to read and write the
    /// keys under `/portcullis/` only, and turns authentication on.
    pub fn enable_auth(&mut self) {
        self.etcdctl(&["user", "add", &format!("root:{ROOT_PASSWORD}")]);
        self.etcdctl(&["role", "add", MEMBER_USER]);
        self.etcdctl(&[
            "role",
            "grant-permission",
            MEMBER_USER,
            "--prefix=true",
            "readwrite",
            "/portcullis/",
        ]);
        self.etcdctl(&["user", "add", &format!("{MEMBER_USER}:{MEMBER_PASSWORD}")]);
        self.etcdctl(&["user", "grant-role", MEMBER_USER, MEMBER_USER]);
        self.etcdctl(&["auth", "enable"]);
        self.auth = true;
    }
}

fn flag(name: &str, path: &Path) -> String {
    format!("{name}={}", path.display())
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}
