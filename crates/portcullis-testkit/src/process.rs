//! The built `portcullis` binary as child processes: demo backends a test
//! can kill (SIGKILL) or freeze (SIGSTOP) for real, `serve`, and the CLI.
//! Every process is killed when its handle drops.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// Path of the built `portcullis` binary. Cargo builds it for the package's
/// integration tests next to their `deps/` directory; `PORTCULLIS_BIN`
/// overrides that.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("PORTCULLIS_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary under target/<profile>/deps");
    let path = profile_dir.join(format!("portcullis{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} not built (run the tests through cargo, or set PORTCULLIS_BIN)",
        path.display()
    );
    path
}

/// A demo backend in its own process.
pub struct BackendProcess {
    pub child: Child,
    pub addr: SocketAddr,
    pub name: String,
}

impl BackendProcess {
    pub fn spawn(name: &str) -> BackendProcess {
        Self::spawn_on(name, SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    pub fn spawn_on(name: &str, addr: SocketAddr) -> BackendProcess {
        let mut child = Command::new(binary())
            .args([
                "demo-backend",
                "--name",
                name,
                "--listen",
                &addr.to_string(),
            ])
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start backend process");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("backend prints its address");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected backend output {line:?}"))
            .parse()
            .expect("an address");
        BackendProcess {
            child,
            addr,
            name: name.to_string(),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sends signal `name` ("STOP", "CONT", "TERM"...).
    pub fn signal(&self, name: &str) {
        signal(&self.child, name);
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for BackendProcess {
    fn drop(&mut self) {
        // A frozen process must be resumed to die promptly on some kernels.
        let _ = Command::new("kill")
            .args(["-CONT".to_string(), self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        self.kill();
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name}");
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
        .port()
}

/// Blocks until something accepts connections on loopback `port`.
pub fn wait_port(port: u16, what: &str) {
    crate::wait::wait_until_blocking(
        &format!("{what} to listen on {port}"),
        Duration::from_secs(20),
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
    );
}

/// Runs a CLI command against the store of the member config `config`:
/// `cli(config, &["topology", "put", "f.toml"])` runs `portcullis topology -c config put f.toml`.
pub fn cli(config: &Path, args: &[&str]) -> Output {
    cli_command(config, args).output().expect("run the CLI")
}

/// The [`cli`] command, not yet run (to set stdin, for example).
pub fn cli_command(config: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(binary());
    command
        .args(&args[..1])
        .arg("-c")
        .arg(config)
        .args(&args[1..])
        .env("RUST_LOG", "error");
    command
}

/// `portcullis serve -c CONFIG` as a process.
pub struct ServeProcess {
    pub child: Child,
    pub port: u16,
    pub config: PathBuf,
}

impl ServeProcess {
    /// Starts the process without waiting for its listener.
    pub fn spawn(config: &Path, port: u16) -> ServeProcess {
        let child = Command::new(binary())
            .args(["serve", "-c"])
            .arg(config)
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start serve");
        ServeProcess {
            child,
            port,
            config: config.to_path_buf(),
        }
    }

    pub fn start(config: &Path, port: u16) -> ServeProcess {
        let process = Self::spawn(config, port);
        wait_port(port, "member");
        process
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        cli(&self.config, args)
    }

    pub fn signal(&self, name: &str) {
        signal(&self.child, name);
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Processes a hot restart started: the `serve` processes of `config` other
/// than `except` (found by their command line), killed by pid when this
/// drops, since the test did not start them itself.
pub struct Successors(pub Vec<u32>);

impl Successors {
    pub fn of(config: &Path, except: u32) -> Successors {
        let config = config.display().to_string();
        let pids = std::fs::read_dir("/proc")
            .expect("read /proc")
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| *pid != except)
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|line| {
                    let line = String::from_utf8_lossy(&line);
                    line.contains("serve") && line.contains(&config)
                })
            })
            .collect();
        Successors(pids)
    }
}

impl Drop for Successors {
    fn drop(&mut self) {
        for pid in &self.0 {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}
