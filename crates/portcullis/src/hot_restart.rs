//! `SIGUSR2`: start the binary at the same path with the same arguments,
//! hand it the listening sockets, and step down once it is ready.
//!
//! The sockets travel over a Unix socket pair that is the new process's
//! standard input (`PORTCULLIS_INHERITED=stdin` tells it so): one message
//! carries them as `SCM_RIGHTS` with a line per socket naming its config key
//! and configured address. Nothing is inherited through descriptor numbers,
//! so no descriptor has to lose its close-on-exec flag and no `unsafe` is
//! needed to adopt one. The new process answers `ready ID` on the same pair
//! once its member serves; if it exits or stays silent, the old one keeps
//! serving.

use std::ffi::{OsStr, OsString};
use std::io::{IoSlice, IoSliceMut, Write};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use portcullis_member::{Inherited, ListeningSocket};
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use tokio::io::AsyncBufReadExt;

/// Set in the new process's environment: its standard input is the pair.
const INHERITED_ENV: &str = "PORTCULLIS_INHERITED";
const FROM_STDIN: &str = "stdin";
/// First line of the handover message, so a stray stdin is not mistaken
/// for one.
const HEADER: &str = "portcullis-handover 1";
/// More than a member ever has (gateway, admin, balancer).
const MAX_SOCKETS: usize = 8;
/// How long the new process gets to read its store and serve. A store that
/// is slow to answer delays the change-over; past this the old process
/// gives up on the new one and keeps serving.
const READY_WITHIN: Duration = Duration::from_secs(60);
/// How long a new process whose pair closed gets to exit by itself.
const EXIT_WITHIN: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    #[error("cannot start {path}: {source}")]
    Spawn {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot pass the listening sockets: {0}")]
    Pass(std::io::Error),
    #[error("the new process exited before it was ready ({0})")]
    Exited(String),
    #[error("the new process was not ready within {0:?}; stopped it")]
    NotReady(Duration),
}

/// What a hot restart runs: the binary's path and arguments as they were
/// when this process started. The path, not this process's image: an
/// upgrade replaces the file at the path, and the new file must run.
pub struct Restarter {
    exe: PathBuf,
    args: Vec<OsString>,
}

impl Restarter {
    pub fn capture() -> std::io::Result<Restarter> {
        let mut args = std::env::args_os();
        let argv0 = args.next().unwrap_or_default();
        let cwd = std::env::current_dir()?;
        let search = std::env::var_os("PATH");
        let exe = match launch_path(&argv0, &cwd, search.as_deref()) {
            Some(exe) => exe,
            // Started without a usable name (an unusual exec): the file this
            // process runs from, with symlinks resolved.
            None => std::env::current_exe()?,
        };
        Ok(Restarter {
            exe,
            args: args.collect(),
        })
    }

    /// Starts the new process with `sockets` and waits until it is ready.
    /// Returns the member id it serves as.
    pub async fn hand_over(&self, sockets: &[ListeningSocket]) -> Result<String, HandoverError> {
        let (ours, theirs) = UnixStream::pair().map_err(HandoverError::Pass)?;
        // Queued in the pair before the new process starts: it finds the
        // sockets waiting, and an early exit cannot fail the sending.
        send_sockets(&ours, sockets).map_err(HandoverError::Pass)?;
        let child = Command::new(&self.exe)
            .args(&self.args)
            .env(INHERITED_ENV, FROM_STDIN)
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .spawn()
            .map_err(|source| HandoverError::Spawn {
                path: self.exe.display().to_string(),
                source,
            })?;
        tracing::info!(pid = child.id(), path = %self.exe.display(), "hot restart: new process started");
        // Killed if this future is dropped before the new process is ready.
        let mut unready = Unready(Some(child));
        let outcome = match tokio::time::timeout(READY_WITHIN, wait_ready(ours)).await {
            Ok(Ok(id)) => {
                unready.0 = None;
                return Ok(id);
            }
            Ok(Err(err)) => err,
            Err(_) => HandoverError::NotReady(READY_WITHIN),
        };
        let Some(mut child) = unready.0.take() else {
            return Err(outcome);
        };
        // Whatever went wrong, the new process must not run on beside this
        // one: it is stopped unless it exits by itself (a closed pair means
        // it is exiting).
        let exited = exited_within(&mut child, EXIT_WITHIN).await;
        if !exited {
            let _ = child.kill();
        }
        let status = match tokio::task::spawn_blocking(move || child.wait()).await {
            Ok(Ok(status)) => status.to_string(),
            _ => "status unknown".to_string(),
        };
        // A new process that exited explains any error seen on the pair.
        Err(if exited {
            HandoverError::Exited(status)
        } else {
            outcome
        })
    }
}

/// The path this binary was started by, as the shell found it: `argv0`
/// itself when it names a path (made absolute against the start-up
/// directory), else the first executable `argv0` in `search` (`PATH`).
/// Symlinks are kept, so an upgrade that points a link at a new version
/// runs the new version; `/proc/self/exe` would name the old one.
fn launch_path(argv0: &OsStr, cwd: &Path, search: Option<&OsStr>) -> Option<PathBuf> {
    if argv0.is_empty() {
        return None;
    }
    let named = Path::new(argv0);
    if named.components().count() > 1 {
        return Some(cwd.join(named));
    }
    std::env::split_paths(search?)
        .map(|dir| cwd.join(dir).join(named))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A new process not yet ready: stopped if the hot restart is abandoned
/// (this process is stopping). SIGTERM, not SIGKILL: if it became ready
/// just now, it may already serve connections from the shared queue, and it
/// drains them like any stopping member.
struct Unready(Option<std::process::Child>);

impl Drop for Unready {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let pid = rustix::process::Pid::from_child(child);
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            // Reaped if it is gone already; otherwise it is reaped with
            // this process, which is stopping.
            let _ = child.try_wait();
        }
    }
}

/// Whether `child` exits within `within`.
async fn exited_within(child: &mut std::process::Child, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One message: the header, a `key listen` line per socket, and the sockets.
fn send_sockets(pair: &UnixStream, sockets: &[ListeningSocket]) -> std::io::Result<()> {
    let sockets = &sockets[..sockets.len().min(MAX_SOCKETS)];
    let mut text = format!("{HEADER}\n");
    for socket in sockets {
        text.push_str(&format!("{} {}\n", socket.key, socket.listen));
    }
    let fds: Vec<BorrowedFd<'_>> = sockets.iter().map(ListeningSocket::fd).collect();
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_SOCKETS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(std::io::Error::other("too many sockets for one message"));
    }
    let sent = rustix::net::sendmsg(
        pair,
        &[IoSlice::new(text.as_bytes())],
        &mut control,
        SendFlags::empty(),
    )?;
    if sent != text.len() {
        return Err(std::io::Error::other("the handover message was cut short"));
    }
    Ok(())
}

/// The new process's `ready ID` line; end of file means it exited.
async fn wait_ready(pair: UnixStream) -> Result<String, HandoverError> {
    pair.set_nonblocking(true).map_err(HandoverError::Pass)?;
    let pair = tokio::net::UnixStream::from_std(pair).map_err(HandoverError::Pass)?;
    let mut line = String::new();
    // A reset or an end of file: the new process closed its end by exiting.
    let read = tokio::io::BufReader::new(pair).read_line(&mut line).await;
    if let Err(err) = read {
        return Err(HandoverError::Exited(err.to_string()));
    }
    match line.trim_end().strip_prefix("ready ") {
        Some(id) => Ok(id.to_string()),
        None => Err(HandoverError::Exited(String::new())),
    }
}

/// In a process started by a hot restart: the pair to report readiness on.
pub struct Successor {
    pair: UnixStream,
}

impl Successor {
    /// Tells the old process this one serves as member `id`.
    pub fn ready(mut self, id: &str) {
        if let Err(err) = writeln!(self.pair, "ready {id}") {
            tracing::warn!(error = %err, "cannot tell the old process that this one is ready");
        }
    }
}

/// The sockets handed to this process, when a hot restart started it; else
/// nothing is inherited. A handover that cannot be read is logged and the
/// listeners are bound afresh (which fails with "address in use" while the
/// old process still serves them).
pub fn receive() -> (Inherited, Option<Successor>) {
    if std::env::var(INHERITED_ENV).ok().as_deref() != Some(FROM_STDIN) {
        return (Inherited::none(), None);
    }
    let pair = match std::io::stdin().as_fd().try_clone_to_owned() {
        Ok(fd) => UnixStream::from(fd),
        Err(err) => {
            tracing::error!(error = %err, "hot restart: cannot read the handed-over sockets");
            return (Inherited::none(), None);
        }
    };
    match receive_sockets(&pair) {
        Ok(sockets) => {
            tracing::info!(
                count = sockets.len(),
                "hot restart: received listening sockets"
            );
            (Inherited::new(sockets), Some(Successor { pair }))
        }
        Err(err) => {
            tracing::error!(error = %err, "hot restart: cannot read the handed-over sockets");
            (Inherited::none(), Some(Successor { pair }))
        }
    }
}

fn receive_sockets(pair: &UnixStream) -> std::io::Result<Vec<ListeningSocket>> {
    let mut text = [0u8; 4096];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_SOCKETS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let received = rustix::net::recvmsg(
        pair,
        &mut [IoSliceMut::new(&mut text)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut fds: Vec<OwnedFd> = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = message {
            fds.extend(rights);
        }
    }
    let text = std::str::from_utf8(&text[..received.bytes])
        .map_err(|_| std::io::Error::other("the handover message is not text"))?;
    parse(text, fds)
}

/// Pairs each `key listen` line with its socket, in order.
fn parse(text: &str, fds: Vec<OwnedFd>) -> std::io::Result<Vec<ListeningSocket>> {
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return Err(std::io::Error::other("not a handover message"));
    }
    let named: Vec<(String, SocketAddr)> = lines
        .map(|line| {
            let (key, listen) = line.split_once(' ')?;
            Some((key.to_string(), listen.parse().ok()?))
        })
        .collect::<Option<_>>()
        .ok_or_else(|| std::io::Error::other("a handover line is malformed"))?;
    if named.len() != fds.len() {
        return Err(std::io::Error::other(format!(
            "{} sockets named, {} received",
            named.len(),
            fds.len()
        )));
    }
    Ok(named
        .into_iter()
        .zip(fds)
        .map(|((key, listen), socket)| ListeningSocket {
            key,
            listen,
            socket,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn socket(key: &str) -> (std::net::TcpListener, ListeningSocket) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let kept = ListeningSocket {
            key: key.to_string(),
            listen: listener.local_addr().unwrap(),
            socket: listener.as_fd().try_clone_to_owned().unwrap(),
        };
        (listener, kept)
    }

    #[test]
    fn sockets_and_their_names_cross_the_pair() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let (gateway, gateway_kept) = socket("gateway.listen");
        let (_admin, admin_kept) = socket("admin.listen");
        send_sockets(&ours, &[gateway_kept, admin_kept]).unwrap();
        let received = receive_sockets(&theirs).unwrap();
        let names: Vec<&str> = received.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(names, ["gateway.listen", "admin.listen"]);
        assert_eq!(received[0].listen, gateway.local_addr().unwrap());
        // The received descriptor is the same listening socket: it accepts
        // a client after the original is closed.
        let addr = gateway.local_addr().unwrap();
        drop(gateway);
        let fd = received.into_iter().next().unwrap().socket;
        let listener = std::net::TcpListener::from(fd);
        assert_eq!(listener.local_addr().unwrap(), addr);
        let _client = std::net::TcpStream::connect(addr).unwrap();
        listener.accept().unwrap();
    }

    #[test]
    fn the_launch_path_keeps_the_name_the_binary_was_started_by() {
        let dir = tempfile::tempdir().unwrap();
        let cwd = dir.path();
        let bin = cwd.join("bin");
        std::fs::create_dir(&bin).unwrap();
        let exe = bin.join("portcullis");
        std::fs::write(&exe, "").unwrap();
        let path_var = OsString::from(format!("/nonexistent:{}", bin.display()));
        let launch = |argv0: &str| launch_path(OsStr::new(argv0), cwd, Some(&path_var));
        assert_eq!(
            launch("/usr/bin/portcullis"),
            Some("/usr/bin/portcullis".into())
        );
        assert_eq!(
            launch("./bin/portcullis"),
            Some(cwd.join("./bin/portcullis"))
        );
        // Found in PATH only once it is executable.
        assert_eq!(launch("portcullis"), None);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(launch("portcullis"), Some(exe));
        assert_eq!(launch(""), None);
    }

    #[test]
    fn a_message_without_the_header_is_refused() {
        assert!(parse("gateway.listen 127.0.0.1:1\n", Vec::new()).is_err());
        assert!(parse(
            &format!("{HEADER}\ngateway.listen 127.0.0.1:1\n"),
            Vec::new()
        )
        .is_err());
        assert!(parse(&format!("{HEADER}\n"), Vec::new())
            .unwrap()
            .is_empty());
    }
}
