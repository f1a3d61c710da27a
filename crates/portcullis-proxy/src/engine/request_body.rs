//! The client's request body. The connection reads it (the pump) while the
//! pipeline serves the request, and hands it over through a two-slot
//! channel, so a slow backend slows the client down instead of filling
//! memory. A request with `Expect: 100-continue` gets its `100 Continue`
//! only when the pipeline first asks for the body.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use tokio::io::AsyncWriteExt;

use super::quick_io::{QuickRead, QuickWrite};
use tokio::sync::{mpsc, oneshot};

use super::response_body::{read_more, BODY_READ};
use crate::body::ClientBodyError;
use crate::error::BoxError;
use crate::h1gate::{Body as Framing, ChunkedDecoder, Violation};

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The request body as the pipeline sees it.
pub(super) struct EngineBody {
    chunks: Option<mpsc::Receiver<Result<Bytes, ClientBodyError>>>,
    /// Told on the first poll: the pipeline wants the body now.
    wanted: Option<oneshot::Sender<()>>,
    length: Option<u64>,
}

impl EngineBody {
    pub(super) fn empty() -> Self {
        EngineBody {
            chunks: None,
            wanted: None,
            length: Some(0),
        }
    }
}

impl http_body::Body for EngineBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(wanted) = self.wanted.take() {
            let _ = wanted.send(());
        }
        let Some(chunks) = self.chunks.as_mut() else {
            return Poll::Ready(None);
        };
        match chunks.poll_recv(cx) {
            Poll::Ready(Some(Ok(data))) => Poll::Ready(Some(Ok(Frame::data(data)))),
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(err.into()))),
            Poll::Ready(None) => {
                self.chunks = None;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match self.length {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

enum Left {
    Length(u64),
    Chunked(ChunkedDecoder),
}

/// The connection's side of a request body.
pub(super) struct BodyPump {
    left: Left,
    chunks: Option<mpsc::Sender<Result<Bytes, ClientBodyError>>>,
    wanted: Option<oneshot::Receiver<()>>,
    /// Bytes of `100 Continue` written so far, when one is owed.
    continue_sent: Option<usize>,
    done: bool,
    complete: bool,
    /// The client broke the chunked framing: the answer is a 400.
    pub(super) violation: Option<Violation>,
}

/// The body and its pump for a request framed as `framing`; `None` for the
/// pump when there is no body.
pub(super) fn request_body(
    framing: Framing,
    expects_continue: bool,
) -> (EngineBody, Option<BodyPump>) {
    let (left, length) = match framing {
        Framing::Empty | Framing::Length(0) => return (EngineBody::empty(), None),
        Framing::Length(n) => (Left::Length(n), Some(n)),
        Framing::Chunked => (Left::Chunked(ChunkedDecoder::new()), None),
    };
    let (tx, rx) = mpsc::channel(2);
    let (want_tx, want_rx) = oneshot::channel();
    let body = EngineBody {
        chunks: Some(rx),
        wanted: Some(want_tx),
        length,
    };
    let pump = BodyPump {
        left,
        chunks: Some(tx),
        wanted: expects_continue.then_some(want_rx),
        continue_sent: expects_continue.then_some(0),
        done: false,
        complete: false,
        violation: None,
    };
    (body, Some(pump))
}

impl BodyPump {
    /// No more steps: the body was read, failed, or is no longer wanted.
    pub(super) fn done(&self) -> bool {
        self.done
    }

    /// Part of the engine's own `100 Continue` is written and the rest is
    /// owed: nothing else may be written to the client until it is.
    pub(super) fn writing_continue(&self) -> bool {
        self.continue_sent.is_some_and(|sent| sent > 0)
    }

    /// Every byte of the body was read from the connection, so the next
    /// request's head starts at the front of the buffer.
    pub(super) fn complete(&self) -> bool {
        self.complete
    }

    /// Moves one piece of body from the connection to the pipeline. Every
    /// await in here may be cancelled (when the response is ready first)
    /// without losing or duplicating a byte.
    pub(super) async fn step<I>(&mut self, io: &mut I, buf: &mut BytesMut)
    where
        I: QuickRead + QuickWrite,
    {
        if self.try_step(io, buf).await.is_err() {
            self.done = true;
            // The pipeline sees the end of the body (or the error sent).
            self.chunks = None;
        }
    }

    /// `Err(())`: the pump is done (body complete, failed, or no longer
    /// wanted).
    async fn try_step<I>(&mut self, io: &mut I, buf: &mut BytesMut) -> Result<(), ()>
    where
        I: QuickRead + QuickWrite,
    {
        if let Some(wanted) = self.wanted.as_mut() {
            // A dropped sender means the body is never wanted: no 100.
            wanted.await.map_err(|_| ())?;
            self.wanted = None;
        }
        while let Some(sent) = self.continue_sent {
            let Ok(n) = io.write(&CONTINUE[sent..]).await else {
                return Err(());
            };
            self.continue_sent = (sent + n < CONTINUE.len()).then_some(sent + n);
        }
        self.pump_data(io, buf).await
    }

    /// Moves body on while the response is being written (a backend that
    /// echoes, or answers early, still reads the rest). A `100 Continue`
    /// still owed can no longer be sent: the body is then left unread.
    pub(super) async fn step_beside_response<R>(&mut self, io: &mut R, buf: &mut BytesMut)
    where
        R: QuickRead,
    {
        let owed = self.wanted.is_some() || self.continue_sent.is_some();
        if owed || self.pump_data(io, buf).await.is_err() {
            self.done = true;
            self.chunks = None;
        }
    }

    async fn pump_data<R>(&mut self, io: &mut R, buf: &mut BytesMut) -> Result<(), ()>
    where
        R: QuickRead,
    {
        let Some(chunks) = self.chunks.as_ref() else {
            return Err(());
        };
        let permit = chunks.reserve().await.map_err(|_| ())?;
        loop {
            if !buf.is_empty() {
                match take_data(&mut self.left, buf) {
                    Ok((data, done)) => {
                        self.complete = done;
                        match data {
                            Some(data) => {
                                permit.send(Ok(data));
                                return if done { Err(()) } else { Ok(()) };
                            }
                            None if done => return Err(()),
                            None => {}
                        }
                    }
                    Err(err) => {
                        if let ClientBodyError::Violation(v) = err {
                            self.violation = Some(v);
                        }
                        permit.send(Err(err));
                        return Err(());
                    }
                }
            }
            let more = std::future::poll_fn(|cx| read_more(io, buf, BODY_READ, cx)).await;
            match more {
                Ok(true) => {}
                Ok(false) => {
                    permit.send(Err(ClientBodyError::Incomplete));
                    return Err(());
                }
                Err(_) => {
                    permit.send(Err(ClientBodyError::Io));
                    return Err(());
                }
            }
        }
    }
}

/// Body data at the front of `buf`, and whether the body is complete.
fn take_data(
    left: &mut Left,
    buf: &mut BytesMut,
) -> Result<(Option<Bytes>, bool), ClientBodyError> {
    {
        match left {
            Left::Length(left) => {
                let n = usize::try_from(*left).map_or(buf.len(), |l| l.min(buf.len()));
                *left -= n as u64;
                Ok((Some(buf.split_to(n).freeze()), *left == 0))
            }
            Left::Chunked(decoder) => {
                let step = decoder.decode(buf).map_err(ClientBodyError::Violation)?;
                let used = buf.split_to(step.used).freeze();
                Ok((step.data.map(|range| used.slice(range)), step.done))
            }
        }
    }
}
