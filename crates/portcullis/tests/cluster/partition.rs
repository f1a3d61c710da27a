//! A member cut off from etcd by a network partition keeps serving its last
//! config and rejoins when the partition heals. Two network namespaces created
//! here: the member's (with its backends on its loopback) and etcd's, joined by
//! a veth pair with addresses inside those namespaces only.
//!
//! Creating network namespaces needs root (CI runs as root). Without root the
//! test cannot run; it says so on the terminal, past libtest's output capture,
//! as `SKIPPED: ...`, so a passing run without root is visibly not a real one.
//! As root, failing to create the namespaces fails the test.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use portcullis_testkit::{binary, wait_until_blocking};

struct Namespaces {
    member: String,
    store: String,
}

impl Namespaces {
    fn create(tag: &str) -> Result<Namespaces, String> {
        let ns = Namespaces {
            member: format!("pcl-{tag}-m"),
            store: format!("pcl-{tag}-s"),
        };
        for name in [&ns.member, &ns.store] {
            ip(&["netns", "add", name])?;
            ip(&["-n", name, "link", "set", "lo", "up"])?;
        }
        Ok(ns)
    }

    fn exec(&self, ns: &str, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", ns, program]);
        command
    }
}

/// The veth pair between the two namespaces, with one address in each.
struct Link {
    store_ip: String,
    member_veth: String,
}

impl Namespaces {
    /// Joins the namespaces with a veth pair; the addresses exist only inside
    /// them.
    fn link(&self, tag: &str) -> Link {
        let subnet = 1 + std::process::id() % 250;
        let (member_ip, store_ip) = (format!("10.231.{subnet}.1"), format!("10.231.{subnet}.2"));
        let (veth_m, veth_s) = (format!("pcl{tag}m"), format!("pcl{tag}s"));
        ip(&[
            "link", "add", &veth_m, "type", "veth", "peer", "name", &veth_s,
        ])
        .unwrap();
        for (veth, ns, address) in [
            (&veth_m, &self.member, &member_ip),
            (&veth_s, &self.store, &store_ip),
        ] {
            ip(&["link", "set", veth, "netns", ns]).unwrap();
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{address}/30"),
                "dev",
                veth,
            ])
            .unwrap();
            ip(&["-n", ns, "link", "set", veth, "up"]).unwrap();
        }
        Link {
            store_ip,
            member_veth: veth_m,
        }
    }

    /// etcd in the store's namespace, serving clients on `store_ip` only.
    fn spawn_etcd(&self, store_ip: &str, data_dir: &std::path::Path) -> Killed {
        let mut etcd = self.exec(&self.store, "etcd");
        etcd.args(["--name", "p", "--data-dir"])
            .arg(data_dir)
            .args(["--listen-client-urls", &format!("http://{store_ip}:2379")])
            .args([
                "--advertise-client-urls",
                &format!("http://{store_ip}:2379"),
            ])
            .args(["--listen-peer-urls", "http://127.0.0.1:2380"])
            .args(["--initial-advertise-peer-urls", "http://127.0.0.1:2380"])
            .args(["--initial-cluster", "p=http://127.0.0.1:2380"]);
        spawn(etcd)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in [&self.member, &self.store] {
            let _ = Command::new("ip")
                .args(["netns", "del", name])
                .stderr(Stdio::null())
                .status();
        }
    }
}

pub(crate) fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

pub(crate) struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn spawn(mut command: Command) -> Killed {
    Killed(
        command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn"),
    )
}

/// GET inside the member's namespace; returns the backend name that answered.
fn backend_seen(ns: &Namespaces, url: &str) -> Option<String> {
    let out = ns
        .exec(&ns.member, "curl")
        .args(["-s", "-m", "2", url])
        .output()
        .ok()?;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    json["backend"].as_str().map(str::to_string)
}

pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// Writes to the process's stderr directly: `eprintln!` in a passing test is
/// captured by libtest and never shown.
fn announce_skip(reason: &str) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED a_member_partitioned_from_etcd_keeps_serving_and_rejoins: {reason}"
    );
}

#[test]
fn a_member_partitioned_from_etcd_keeps_serving_and_rejoins() {
    if !is_root() {
        announce_skip("needs root to create network namespaces (run as root, as CI does)");
        return;
    }
    let tag = format!("{}", std::process::id() % 100_000);
    let ns = Namespaces::create(&tag)
        .unwrap_or_else(|reason| panic!("running as root, yet no network namespaces: {reason}"));
    let link = ns.link(&tag);
    let (store_ip, veth_m) = (&link.store_ip, &link.member_veth);

    let dir = tempfile::tempdir().unwrap();
    let _etcd = ns.spawn_etcd(store_ip, &dir.path().join("etcd"));

    let backend = |name: &str, port: u16| {
        let mut command = ns.exec(&ns.member, binary().to_str().unwrap());
        command.args([
            "demo-backend",
            "--name",
            name,
            "--listen",
            &format!("127.0.0.1:{port}"),
        ]);
        spawn(command)
    };
    let _old = backend("old", 9001);
    let _new = backend("new", 9002);

    let store = format!("etcd://{store_ip}:2379");
    let config = dir.path().join("member.toml");
    std::fs::write(
        &config,
        format!("[node]\nid = \"cut\"\n[gateway]\nlisten = \"127.0.0.1:8443\"\n[cluster]\nstore = \"{store}\"\nheartbeat = \"200ms\"\n"),
    )
    .unwrap();
    let topology =
        |port: u16| format!("[[service]]\nname = \"svc\"\nurls = [\"http://127.0.0.1:{port}\"]\n");
    let file = dir.path().join("t.toml");
    let put = |from_ns: &str| {
        let out = ns
            .exec(from_ns, binary().to_str().unwrap())
            .args(["topology", "put"])
            .arg(&file)
            .arg("-c")
            .arg(&config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "put: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(&file, topology(9001)).unwrap();
    wait_until_blocking("etcd", Duration::from_secs(20), || {
        ns.exec(&ns.member, "curl")
            .args(["-s", "-m", "1", &format!("http://{store_ip}:2379/health")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    put(&ns.member);
    let mut member = ns.exec(&ns.member, binary().to_str().unwrap());
    member
        .args(["serve", "-c"])
        .arg(&config)
        .env("RUST_LOG", "error");
    let _member = spawn(member);
    let url = "http://127.0.0.1:8443/gateway/t/svc/x";
    wait_until_blocking("the member serving", Duration::from_secs(20), || {
        backend_seen(&ns, url).as_deref() == Some("old")
    });

    // Partition: the member's link to etcd goes down.
    ip(&["-n", &ns.member, "link", "set", veth_m, "down"]).unwrap();
    // A change made on the store side while the member cannot see it.
    std::fs::write(&file, topology(9002)).unwrap();
    put(&ns.store);
    let partitioned = Instant::now();
    let mut served = 0;
    while partitioned.elapsed() < Duration::from_secs(6) {
        assert_eq!(
            backend_seen(&ns, url).as_deref(),
            Some("old"),
            "the last good config keeps serving during the partition"
        );
        served += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(served > 10);

    // Heal: the member reconnects, resyncs, and serves the change.
    ip(&["-n", &ns.member, "link", "set", veth_m, "up"]).unwrap();
    let healed = Instant::now();
    wait_until_blocking("the member to resync", Duration::from_secs(20), || {
        backend_seen(&ns, url).as_deref() == Some("new")
    });
    eprintln!("partition: rejoined and applied the change made during the partition {:?} after the link came back", healed.elapsed());
}
