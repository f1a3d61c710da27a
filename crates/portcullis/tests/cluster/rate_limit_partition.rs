//! `[service.rate_limit]` with the members partitioned from each other
//! (PRODUCT.md §11): two member processes, each in a network namespace
//! created here with its own backend and client on its loopback, joined by
//! a veth pair that carries their admin listeners' exchange. The store is a
//! dir store, which both keep reaching (through the file system) while the
//! link is down: each sees the other alive, yet cannot exchange counts.
//!
//! Needs root, as `partition.rs`; without it the test says `SKIPPED: ...`
//! past libtest's capture, and a root run that cannot create namespaces
//! fails.

use std::process::{Command, Stdio};
use std::time::Duration;

use portcullis_testkit::{binary, wait_until_blocking};

use super::partition::{ip, is_root, spawn, Killed};

const LIMIT: u64 = 20;
const BURST: u64 = 10;

/// Two namespaces joined by a veth pair, with the admin addresses.
struct Pair {
    names: [String; 2],
    addresses: [String; 2],
    veths: [String; 2],
}

impl Pair {
    fn create(tag: &str) -> Result<Pair, String> {
        let subnet = 1 + std::process::id() % 250;
        let pair = Pair {
            names: [format!("pcl-{tag}-ra"), format!("pcl-{tag}-rb")],
            addresses: [format!("10.232.{subnet}.1"), format!("10.232.{subnet}.2")],
            veths: [format!("pcl{tag}ra"), format!("pcl{tag}rb")],
        };
        for name in &pair.names {
            ip(&["netns", "add", name])?;
            ip(&["-n", name, "link", "set", "lo", "up"])?;
        }
        let [veth_a, veth_b] = &pair.veths;
        ip(&[
            "link", "add", veth_a, "type", "veth", "peer", "name", veth_b,
        ])?;
        for i in 0..2 {
            let (veth, ns) = (&pair.veths[i], &pair.names[i]);
            let address = format!("{}/30", pair.addresses[i]);
            ip(&["link", "set", veth, "netns", ns])?;
            ip(&["-n", ns, "addr", "add", &address, "dev", veth])?;
            ip(&["-n", ns, "link", "set", veth, "up"])?;
        }
        Ok(pair)
    }

    fn exec(&self, i: usize, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.names[i], program]);
        command
    }

    fn cut(&self) {
        ip(&["-n", &self.names[0], "link", "set", &self.veths[0], "down"]).unwrap();
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = Command::new("ip")
                .args(["netns", "del", name])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Starts member `i` (and its backend) in its namespace.
fn start_member(pair: &Pair, i: usize, dir: &std::path::Path) -> [Killed; 2] {
    let mut backend = pair.exec(i, binary().to_str().unwrap());
    backend.args(["demo-backend", "--name", "b", "--listen", "127.0.0.1:9001"]);
    let config = dir.join(format!("member{i}.toml"));
    std::fs::write(
        &config,
        format!(
            "[node]\nid = \"m{i}\"\n[gateway]\nlisten = \"127.0.0.1:8443\"\n[admin]\nlisten = \"{}:9443\"\n[cluster]\nstore = \"dir:{}\"\nheartbeat = \"200ms\"\n",
            pair.addresses[i],
            dir.join("store").display()
        ),
    )
    .unwrap();
    let mut member = pair.exec(i, binary().to_str().unwrap());
    member
        .args(["serve", "-c"])
        .arg(&config)
        .env("RUST_LOG", "error");
    [spawn(backend), spawn(member)]
}

/// One curl in namespace `i`: `count` requests at `rate` a second, all of
/// one key; returns (admitted, refused).
fn offer(pair: &Pair, i: usize, rate: u32, count: u32) -> std::process::Child {
    pair.exec(i, "curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}\n", "-m", "2"])
        .args(["--rate", &format!("{rate}/s"), "-H", "X-Client: load"])
        .arg(format!(
            "http://127.0.0.1:8443/gateway/rl/svc/x?n=[1-{count}]"
        ))
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl")
}

fn tally(child: std::process::Child) -> (u64, u64) {
    let out = child.wait_with_output().expect("curl ran");
    let codes = String::from_utf8_lossy(&out.stdout);
    let count = |code: &str| codes.lines().filter(|l| *l == code).count() as u64;
    let (ok, limited) = (count("200"), count("429"));
    assert_eq!(ok + limited, codes.lines().count() as u64, "{codes}");
    (ok, limited)
}

/// Both members' load at once: A at 3× the limit, B at the limit.
fn run_load(pair: &Pair, seconds: u32) -> [(u64, u64); 2] {
    let rate = LIMIT as u32;
    let a = offer(pair, 0, 3 * rate, 3 * rate * seconds);
    let b = offer(pair, 1, rate, rate * seconds);
    [tally(a), tally(b)]
}

fn curl_ok(pair: &Pair, i: usize, url: &str, wanted: &str) -> bool {
    pair.exec(i, "curl")
        .args(["-s", "-m", "1", url])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(wanted))
}

fn announce_skip(reason: &str) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED members_cut_off_from_each_other_admit_at_most_their_even_share: {reason}"
    );
}

#[test]
fn members_cut_off_from_each_other_admit_at_most_their_even_share() {
    if !is_root() {
        announce_skip("needs root to create network namespaces (run as root, as CI does)");
        return;
    }
    let tag = format!("{}", std::process::id() % 100_000);
    let pair = Pair::create(&tag)
        .unwrap_or_else(|reason| panic!("running as root, yet no network namespaces: {reason}"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("store/topologies")).unwrap();
    std::fs::write(
        dir.path().join("store/topologies/rl.toml"),
        format!("[[service]]\nname = \"svc\"\nurls = [\"http://127.0.0.1:9001\"]\n[service.rate_limit]\nrequests = {LIMIT}\nkey = \"header:X-Client\"\nburst = {BURST}\n"),
    )
    .unwrap();
    let _members = [
        start_member(&pair, 0, dir.path()),
        start_member(&pair, 1, dir.path()),
    ];
    for i in 0..2 {
        // Probes carry no X-Client: another bucket than the load's.
        wait_until_blocking("the member serving", Duration::from_secs(20), || {
            curl_ok(&pair, i, "http://127.0.0.1:8443/gateway/rl/svc/x", "\"b\"")
        });
        let metrics = format!("http://{}:9443/metrics", pair.addresses[i]);
        wait_until_blocking("both members live", Duration::from_secs(20), || {
            curl_ok(&pair, i, &metrics, "portcullis_cluster_members 2\n")
        });
    }

    // Linked: A sees three times B's demand and gets most of the limit.
    let seconds = 5;
    let [(a_ok, _), (b_ok, _)] = run_load(&pair, seconds);
    let together = LIMIT * u64::from(seconds) + BURST;
    println!("linked, {seconds} s, A at 3x and B at 1x the limit: A admitted {a_ok}, B {b_ok}, together {} (limit x time + burst = {together})", a_ok + b_ok);
    assert!(
        (a_ok + b_ok).abs_diff(together) <= together / 10,
        "together {} vs {together}",
        a_ok + b_ok
    );
    assert!(a_ok > b_ok, "the busier member gets the larger share");

    // Cut: each falls back to limit ÷ 2 whatever its demand.
    pair.cut();
    let seconds = 8;
    let [(a_ok, _), (b_ok, _)] = run_load(&pair, seconds);
    let share = LIMIT / 2 * u64::from(seconds) + BURST / 2;
    println!("cut off, {seconds} s, same load: A admitted {a_ok}, B {b_ok} (each at most its even share {share}; the whole limit would be {})", LIMIT * u64::from(seconds) + BURST);
    for (name, ok) in [("A", a_ok), ("B", b_ok)] {
        assert!(
            ok <= share + share / 10,
            "{name} admitted {ok}, over its share {share}"
        );
        assert!(
            ok + share / 5 >= share,
            "{name} admitted {ok}, well under its share {share}"
        );
    }
}
