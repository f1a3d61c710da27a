//! The floor proxy: bodiless HTTP/1.1 requests in, round robin over keep-alive
//! backends, X-Forwarded-For/Proto/Host added, Content-Length responses back.
//! One current-thread runtime per worker with its own SO_REUSEPORT listener and
//! its own backend pool, no allocation per request once a connection's buffers
//! have grown. No retries, no health checks, no logs, no metrics: it measures
//! what a proxy costs on this machine before any feature.
//!
//! usage: floor LISTEN BACKEND... (FLOOR_WORKERS, default 2)
#![forbid(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const MAX_HEADERS: usize = 64;

struct Pool {
    backends: Vec<SocketAddr>,
    idle: Vec<RefCell<Vec<TcpStream>>>,
    next: Cell<usize>,
}

impl Pool {
    fn pick(&self) -> usize {
        let i = self.next.get();
        self.next.set((i + 1) % self.backends.len());
        i
    }

    async fn take(&self, i: usize) -> io::Result<(TcpStream, bool)> {
        if let Some(s) = self.idle[i].borrow_mut().pop() {
            return Ok((s, true));
        }
        let s = TcpStream::connect(self.backends[i]).await?;
        s.set_nodelay(true)?;
        Ok((s, false))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (listen, backends) = match args.split_first() {
        Some((l, b)) if !b.is_empty() => (l.clone(), b.to_vec()),
        _ => {
            eprintln!("usage: floor LISTEN BACKEND...");
            std::process::exit(2);
        }
    };
    let listen: SocketAddr = listen.parse().expect("LISTEN is host:port");
    let backends: Vec<SocketAddr> = backends
        .iter()
        .map(|b| b.parse().expect("BACKEND is host:port"))
        .collect();
    let workers: usize = std::env::var("FLOOR_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(2);
    let threads: Vec<_> = (0..workers)
        .map(|_| {
            let backends = backends.clone();
            std::thread::spawn(move || worker(listen, backends))
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

fn worker(listen: SocketAddr, backends: Vec<SocketAddr>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_reuseaddr(true).expect("reuseaddr");
        socket.set_reuseport(true).expect("reuseport");
        socket.bind(listen).expect("bind");
        let listener = socket.listen(1024).expect("listen");
        let idle = backends.iter().map(|_| RefCell::new(Vec::new())).collect();
        let pool = Rc::new(Pool {
            backends,
            idle,
            next: Cell::new(0),
        });
        loop {
            let Ok((conn, peer)) = listener.accept().await else {
                continue;
            };
            let _ = conn.set_nodelay(true);
            tokio::task::spawn_local(serve(conn, peer, pool.clone()));
        }
    });
}

struct Buffers {
    inbound: Vec<u8>,
    head: Vec<u8>,
    response: Vec<u8>,
}

async fn serve(mut client: TcpStream, peer: SocketAddr, pool: Rc<Pool>) {
    let client_ip = peer.ip().to_string();
    let mut b = Buffers {
        inbound: Vec::with_capacity(4096),
        head: Vec::new(),
        response: Vec::new(),
    };
    loop {
        let Ok(Some(used)) = read_request(&mut client, &mut b, &client_ip).await else {
            return;
        };
        let i = pool.pick();
        let Ok(backend) = exchange(&pool, i, &mut b).await else {
            return;
        };
        if client.write_all(&b.response).await.is_err() {
            return;
        }
        pool.idle[i].borrow_mut().push(backend);
        b.inbound.drain(..used);
    }
}

/// Reads one bodiless request head and writes the backend's head into b.head;
/// the bytes it used, None at a clean end of stream.
async fn read_request(
    client: &mut TcpStream,
    b: &mut Buffers,
    client_ip: &str,
) -> io::Result<Option<usize>> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        if let httparse::Status::Complete(n) = req.parse(&b.inbound).map_err(io::Error::other)? {
            let mut host: &[u8] = b"";
            for h in req.headers.iter() {
                if h.name.eq_ignore_ascii_case("host") {
                    host = h.value;
                } else if h.name.eq_ignore_ascii_case("content-length")
                    || h.name.eq_ignore_ascii_case("transfer-encoding")
                {
                    return Err(io::Error::other("the floor takes bodiless requests only"));
                }
            }
            b.head.clear();
            b.head.extend_from_slice(&b.inbound[..n - 2]);
            b.head.extend_from_slice(b"X-Forwarded-For: ");
            b.head.extend_from_slice(client_ip.as_bytes());
            b.head
                .extend_from_slice(b"\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: ");
            b.head.extend_from_slice(host);
            b.head.extend_from_slice(b"\r\n\r\n");
            return Ok(Some(n));
        }
        if fill(client, &mut b.inbound).await? == 0 {
            return Ok(None);
        }
    }
}

/// Sends b.head to backend i and reads its whole Content-Length response into
/// b.response; a reused connection that fails is replaced once.
async fn exchange(pool: &Pool, i: usize, b: &mut Buffers) -> io::Result<TcpStream> {
    let (mut s, reused) = pool.take(i).await?;
    match round_trip(&mut s, b).await {
        Ok(()) => Ok(s),
        Err(_) if reused => {
            let mut s = TcpStream::connect(pool.backends[i]).await?;
            s.set_nodelay(true)?;
            round_trip(&mut s, b).await?;
            Ok(s)
        }
        Err(e) => Err(e),
    }
}

async fn round_trip(s: &mut TcpStream, b: &mut Buffers) -> io::Result<()> {
    s.write_all(&b.head).await?;
    b.response.clear();
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut res = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(n) = res.parse(&b.response).map_err(io::Error::other)? {
            let length = res
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.parse::<usize>().ok())
                .ok_or_else(|| io::Error::other("the floor needs Content-Length"))?;
            while b.response.len() < n + length {
                if fill(s, &mut b.response).await? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            }
            return Ok(());
        }
        if fill(s, &mut b.response).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
}

async fn fill(s: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    if buf.capacity() - buf.len() < 2048 {
        buf.reserve(8192);
    }
    s.read_buf(buf).await
}
