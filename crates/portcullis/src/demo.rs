//! `portcullis demo`: two gateway members sharing a temporary store, a
//! balancer in front of them, and three demo backends, all on loopback, with no
//! setup. Backends can be stopped and started from the terminal to watch
//! failover happen.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tokio::io::AsyncBufReadExt;

use portcullis_demo::DemoBackend;
use portcullis_member::Member;

const BACKEND_NAMES: [&str; 3] = ["alpha", "beta", "gamma"];
/// Preferred ports, so the printed commands stay the same from run to run; any
/// free port is used when one is taken.
const PREFERRED_GATEWAY_PORTS: [u16; 2] = [8443, 8444];
const PREFERRED_BALANCER_PORT: u16 = 8080;
const PREFERRED_ADMIN_PORTS: [u16; 2] = [9090, 9091];
const PREFERRED_BACKEND_PORTS: [u16; 3] = [9101, 9102, 9103];

pub async fn run() -> anyhow::Result<()> {
    let workdir = std::env::temp_dir().join(format!("portcullis-demo-{}", std::process::id()));
    let result = run_in(&workdir).await;
    let _ = std::fs::remove_dir_all(&workdir);
    result
}

fn loopback_port(preferred: u16) -> u16 {
    let addr = SocketAddr::from(([127, 0, 0, 1], preferred));
    match std::net::TcpListener::bind(addr) {
        Ok(_) => preferred,
        Err(_) => 0,
    }
}

async fn run_in(workdir: &Path) -> anyhow::Result<()> {
    let mut shutdown = crate::signals::Shutdown::listen();
    std::fs::create_dir_all(workdir.join("store/topologies"))
        .with_context(|| format!("cannot create {}", workdir.display()))?;
    let mut backends = BTreeMap::new();
    for (name, port) in BACKEND_NAMES.iter().zip(PREFERRED_BACKEND_PORTS) {
        let addr = SocketAddr::from(([127, 0, 0, 1], loopback_port(port)));
        let backend = DemoBackend::spawn(name, addr)
            .await
            .with_context(|| format!("cannot start demo backend {name}"))?;
        backends.insert(name.to_string(), (backend.addr(), Some(backend)));
    }
    let urls: Vec<String> = backends
        .values()
        .map(|(addr, _)| format!("\"http://{addr}\""))
        .collect();
    std::fs::write(
        workdir.join("store/topologies/demo.toml"),
        format!(
            "[[service]]\nname = \"echo\"\nurls = [{}]\n\n[service.ha]\nload_balancing = \"round-robin\"\nsticky_session = true\nmax_failover_attempts = 2\n\n[service.health]\npath = \"/health\"\ninterval = \"1s\"\n\n[service.timeouts]\nconnect = \"1s\"\nrequest = \"10s\"\n",
            urls.join(", ")
        ),
    )?;
    let mut members = Vec::new();
    for (index, port) in PREFERRED_GATEWAY_PORTS.iter().enumerate() {
        let balancer = (index == 0).then(|| loopback_port(PREFERRED_BALANCER_PORT));
        let admin = loopback_port(PREFERRED_ADMIN_PORTS[index]);
        let config_path =
            write_member_config(workdir, index + 1, loopback_port(*port), admin, balancer)?;
        let config = portcullis_config::load_node_config(&config_path)
            .map_err(|errors| anyhow::anyhow!("demo configuration is invalid:\n{errors}"))?;
        members.push(Member::start(config).await?);
    }
    let balancer = members[0]
        .balancer_addr
        .context("the demo balancer did not start")?;
    print_banner(balancer, &members, &backends);

    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            line = lines.next_line(), if stdin_open => match line {
                Ok(Some(line)) => control(&line, &mut backends).await,
                _ => stdin_open = false,
            },
        }
    }
    println!("stopping the demo ...");
    for member in members {
        member.stop().await;
    }
    for (_, (_, backend)) in backends {
        if let Some(backend) = backend {
            backend.shutdown().await;
        }
    }
    Ok(())
}

fn write_member_config(
    workdir: &Path,
    number: usize,
    port: u16,
    admin: u16,
    balancer: Option<u16>,
) -> anyhow::Result<PathBuf> {
    let path = workdir.join(format!("member-{number}.toml"));
    let balancer = balancer
        .map(|port| format!("\n[balancer]\nlisten = \"127.0.0.1:{port}\"\nmode = \"proxy\"\n"))
        .unwrap_or_default();
    std::fs::write(
        &path,
        format!(
            "[node]\nid = \"demo-{number}\"\n\n[gateway]\nlisten = \"127.0.0.1:{port}\"\nshutdown_grace = \"5s\"\n\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\n[cluster]\nstore = \"dir:./store\"\nheartbeat = \"500ms\"\n{balancer}"
        ),
    )?;
    Ok(path)
}

type Backends = BTreeMap<String, (SocketAddr, Option<DemoBackend>)>;

fn print_banner(balancer: SocketAddr, members: &[Member], backends: &Backends) {
    let base = format!("http://{balancer}/gateway/demo/echo");
    println!(
        "Portcullis demo is running: two members sharing one store, a balancer, three backends."
    );
    println!();
    println!("gateway: {base}/");
    for member in members {
        println!(
            "member {}: http://{}/gateway/demo/echo/",
            member.gateway.member_id, member.gateway_addr
        );
    }
    for member in members {
        if let Some(admin) = member.admin_addr {
            println!(
                "dashboard of {}: http://{admin}/   (metrics: http://{admin}/metrics)",
                member.gateway.member_id
            );
        }
    }
    if let Some(member) = members.first() {
        let token = member.admin_token();
        if let Some(admin) = member.admin_addr {
            // The token rides in the fragment, which the browser never sends;
            // the page moves it to sessionStorage and out of the address bar.
            println!(
                "dashboard, signed in: http://{admin}/#token={}",
                fragment_encoded(&token)
            );
        }
        println!(
            "admin token (paste it into the dashboard): {}",
            token.as_str()
        );
    }
    for (name, (addr, _)) in backends {
        println!("backend {name}: http://{addr}");
    }
    println!();
    println!("Try:");
    println!("  curl -s {base}/hello            # JSON naming the backend (and x-forwarded-server the member)");
    println!("  curl -s -c jar -b jar {base}/hello   # keep the cookies: same member, same backend, every time");
    println!("  curl -s -d 'some body' {base}/echo");
    println!("  curl -s {base}/bytes/1048576 | wc -c");
    // The balancer never forwards an upgrade (it answers and closes), so the
    // WebSocket URL is a member's own, and says so.
    if let Some(member) = members.first() {
        println!(
            "  WebSocket echo, straight to member {} (the balancer does not carry WebSocket): ws://{}/gateway/demo/echo/ws",
            member.gateway.member_id, member.gateway_addr
        );
    }
    println!();
    println!("Type 'stop alpha' (or beta, gamma) and Enter to stop a backend, 'start alpha' to bring it back;");
    println!("requests keep working while at least one backend is up. Ctrl-C stops everything.");
}

async fn control(line: &str, backends: &mut Backends) {
    let mut words = line.split_whitespace();
    let (Some(verb), Some(name)) = (words.next(), words.next()) else {
        return;
    };
    let Some((addr, slot)) = backends.get_mut(name) else {
        println!("no backend named {name}");
        return;
    };
    match verb {
        "stop" => match slot.take() {
            Some(backend) => {
                backend.shutdown().await;
                println!("backend {name} stopped");
            }
            None => println!("backend {name} is already stopped"),
        },
        "start" if slot.is_none() => match DemoBackend::spawn(name, *addr).await {
            Ok(backend) => {
                *slot = Some(backend);
                println!("backend {name} started on http://{addr}");
            }
            Err(err) => println!("cannot start {name} on {addr}: {err}"),
        },
        "start" => println!("backend {name} is already running"),
        _ => println!("commands: stop NAME, start NAME"),
    }
}

/// `value` with every byte but RFC 3986's unreserved characters
/// percent-encoded, for a URL fragment.
fn fragment_encoded(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod fragment_tests {
    #[test]
    fn only_unreserved_characters_stay_as_they_are() {
        assert_eq!(super::fragment_encoded("aZ9-._~"), "aZ9-._~");
        assert_eq!(super::fragment_encoded("a+b/c=&#"), "a%2Bb%2Fc%3D%26%23");
    }
}
