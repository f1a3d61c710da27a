//! Members started in-process on loopback port 0, each with its own
//! temporary directory, and helpers to write topologies into a dir store.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use portcullis_member::Member;
use portcullis_proxy::routing::{Lookup, ServiceRuntime};

use crate::init;
use crate::requests::{admin_call, Reply};

/// A member with its own temporary directory (its config, and its store
/// unless it shares one).
pub struct TestMember {
    pub member: Option<Member>,
    pub dir: tempfile::TempDir,
    pub addr: SocketAddr,
}

impl TestMember {
    pub async fn start(topologies: &[(&str, &str)]) -> TestMember {
        Self::start_with(topologies, "").await
    }

    /// `gateway_extra` is appended to the `[gateway]` table.
    pub async fn start_with(topologies: &[(&str, &str)], gateway_extra: &str) -> TestMember {
        init();
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("store/topologies")).expect("store dir");
        for (name, text) in topologies {
            write_topology(dir.path(), name, text);
        }
        let store = dir.path().join("store");
        Self::start_on_store(dir, &store, "test-member", gateway_extra, "").await
    }

    /// A member using an existing store directory (shared by several members);
    /// `dir` holds its own config file.
    pub async fn start_shared(store: &Path, id: &str) -> TestMember {
        init();
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_on_store(dir, store, id, "", "").await
    }

    /// A member with an admin listener on a free loopback port. `role` is
    /// "manager" or "worker"; `master` is a master secret file for `[secrets]`.
    pub async fn start_admin(
        store: &Path,
        id: &str,
        role: &str,
        master: Option<&Path>,
    ) -> TestMember {
        init();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut tail = format!(
            "role = \"{role}\"\nheartbeat = \"200ms\"\n[admin]\nlisten = \"127.0.0.1:0\"\n"
        );
        if let Some(master) = master {
            tail.push_str(&format!(
                "[secrets]\nmaster = \"file:{}\"\n",
                master.display()
            ));
        }
        Self::start_on_store(dir, store, id, "", &tail).await
    }

    async fn start_on_store(
        dir: tempfile::TempDir,
        store: &Path,
        id: &str,
        gateway_extra: &str,
        cluster_tail: &str,
    ) -> TestMember {
        let config_path = dir.path().join("portcullis.toml");
        let text = format!(
            "[node]\nid = \"{id}\"\n[gateway]\nlisten = \"127.0.0.1:0\"\nshutdown_grace = \"5s\"\n{gateway_extra}\n[cluster]\nstore = \"dir:{}\"\n{cluster_tail}",
            store.display()
        );
        std::fs::write(&config_path, &text).expect("write config");
        let config =
            portcullis_config::parse_node_config(&text, &config_path).expect("valid config");
        let member = Member::start(config).await.expect("member starts");
        let addr = member.gateway_addr;
        TestMember {
            member: Some(member),
            dir,
            addr,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// URL of `path` on the admin listener.
    pub fn admin_url(&self, path: &str) -> String {
        let member = self.member.as_ref().expect("running");
        format!("http://{}{}", member.admin_addr.expect("[admin] set"), path)
    }

    pub fn admin_token(&self) -> String {
        self.member
            .as_ref()
            .expect("running")
            .admin_token()
            .to_string()
    }

    /// An admin API call with this member's token.
    pub async fn admin(&self, method: &str, path: &str, body: &str) -> Reply {
        admin_call(
            &self.admin_url(path),
            Some(&self.admin_token()),
            method,
            body,
        )
        .await
    }

    pub fn put_topology(&self, name: &str, text: &str) {
        write_topology(self.dir.path(), name, text);
    }

    pub fn gateway(&self) -> &portcullis_proxy::Gateway {
        &self.member.as_ref().expect("running").gateway
    }

    /// The live runtime of one service, to look at backend state.
    pub fn service(&self, topology: &str, service: &str) -> Arc<ServiceRuntime> {
        match self.gateway().service(topology, service) {
            Lookup::Found(s) => s,
            _ => panic!("no service {topology}/{service}"),
        }
    }

    pub fn remove_topology(&self, name: &str) {
        std::fs::remove_file(
            self.dir
                .path()
                .join(format!("store/topologies/{name}.toml")),
        )
        .expect("remove topology");
    }

    pub async fn stop(mut self) {
        if let Some(member) = self.member.take() {
            member.stop().await;
        }
    }
}

/// Writes `topologies/NAME.toml` under the store in `dir`, atomically (a
/// rename), so a polling store never reads half a file.
pub fn write_topology(dir: &Path, name: &str, text: &str) {
    let topologies = dir.join("store/topologies");
    let tmp = topologies.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).expect("write topology");
    std::fs::rename(&tmp, topologies.join(format!("{name}.toml"))).expect("rename topology");
}

/// A topology with one service `name` over `urls`; `extra` is appended to
/// the service (for example a `[service.ha]` table).
pub fn topology(service: &str, urls: &[String], extra: &str) -> String {
    let urls: Vec<String> = urls.iter().map(|u| format!("{u:?}")).collect();
    format!(
        "[[service]]\nname = \"{service}\"\nurls = [{}]\n{extra}\n",
        urls.join(", ")
    )
}

/// [`topology`] with a `[service.ha]` table holding `ha`, then `more`.
pub fn ha_topology(service: &str, urls: &[String], ha: &str, more: &str) -> String {
    topology(service, urls, &format!("[service.ha]\n{ha}\n{more}"))
}
