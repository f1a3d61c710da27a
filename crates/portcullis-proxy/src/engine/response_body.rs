//! A backend's response body, read from its connection as the client side
//! asks for it. Once the body is complete, the connection goes back to the
//! service's pool; a body cut short, or one dropped before its end, closes it.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::head::ResponseFraming;
use super::quick_io::QuickRead;
use crate::backend_pool::{BackendConn, Pool};
use crate::error::BoxError;
use crate::h1gate::ChunkedDecoder;

/// Room made for a read of body bytes: large reads keep 1 MiB responses
/// cheap.
pub(crate) const BODY_READ: usize = 64 * 1024;

/// Room made for a read of a head: most heads are a few hundred bytes, and a
/// small buffer that lives only while a head arrives keeps the heap compact
/// under many connections. It grows if a head needs more.
pub(crate) const HEAD_READ: usize = crate::spare::HEAD_READ;

/// Why a response body failed: the backend broke its framing.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("backend closed the connection before the end of the body")]
    Incomplete,
    #[error("backend sent a bad chunked body: {0}")]
    Chunked(&'static str),
    #[error("reading the response body failed: {0}")]
    Io(#[from] io::Error),
    #[error("the request body failed while the response was relayed: {0}")]
    Upload(BoxError),
}

enum Remaining {
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
    Done,
}

/// The rest of a request body still going to the backend; it gives the
/// write half back when done.
pub(crate) type Upload =
    Pin<Box<dyn std::future::Future<Output = Result<OwnedWriteHalf, BoxError>> + Send>>;

/// The connection a response is read from.
pub(crate) enum Wire {
    Whole(BackendConn),
    /// The response came before the request body was all sent (an echo, or
    /// an early answer): the upload goes on beside the response, and the
    /// connection is not reused.
    Split {
        read: OwnedReadHalf,
        buf: BytesMut,
        /// A mutex only to make the body `Sync`; one task polls it.
        upload: Option<Mutex<Upload>>,
        /// Kept until the response ends: dropping it would shut the
        /// backend's read side.
        write: Option<OwnedWriteHalf>,
    },
}

impl Wire {
    fn buf(&mut self) -> &mut BytesMut {
        match self {
            Wire::Whole(conn) => &mut conn.buf,
            Wire::Split { buf, .. } => buf,
        }
    }

    fn poll_read_more(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        match self {
            Wire::Whole(conn) => read_more(&mut conn.stream, &mut conn.buf, BODY_READ, cx),
            Wire::Split { read, buf, .. } => read_more(read, buf, BODY_READ, cx),
        }
    }

    /// Moves the upload on; an error when the client's body failed.
    fn poll_upload(&mut self, cx: &mut Context<'_>) -> Result<(), BodyError> {
        let Wire::Split { upload, write, .. } = self else {
            return Ok(());
        };
        let Some(pending) = upload.as_mut() else {
            return Ok(());
        };
        let pending = pending.get_mut().unwrap_or_else(|p| p.into_inner());
        match pending.as_mut().poll(cx) {
            Poll::Pending => Ok(()),
            Poll::Ready(Ok(half)) => {
                *write = Some(half);
                *upload = None;
                Ok(())
            }
            Poll::Ready(Err(err)) => {
                *upload = None;
                Err(BodyError::Upload(err))
            }
        }
    }
}

/// Where a connection goes when its response is complete.
pub(crate) struct ReturnTo {
    pub(crate) pool: Arc<Pool>,
    pub(crate) authority: http::uri::Authority,
    /// False when the backend said it closes, or the request was not fully
    /// sent: the connection is then dropped instead.
    pub(crate) reusable: bool,
}

/// The body of one backend response.
pub struct BackendBody {
    conn: Option<Wire>,
    remaining: Remaining,
    return_to: Option<ReturnTo>,
}

impl BackendBody {
    pub(crate) fn new(conn: Wire, framing: ResponseFraming, return_to: ReturnTo) -> Self {
        let remaining = match framing {
            ResponseFraming::Empty | ResponseFraming::Length(0) => Remaining::Done,
            ResponseFraming::Length(n) => Remaining::Length(n),
            ResponseFraming::Chunked => Remaining::Chunked(ChunkedDecoder::new()),
            ResponseFraming::UntilClose => Remaining::UntilClose,
        };
        let mut body = BackendBody {
            conn: Some(conn),
            remaining,
            return_to: Some(return_to),
        };
        if matches!(body.remaining, Remaining::Done) {
            body.finish();
        }
        body
    }

    /// The body is complete: the connection goes back to the pool if it may.
    fn finish(&mut self) {
        self.remaining = Remaining::Done;
        if let (Some(Wire::Whole(conn)), Some(to)) = (self.conn.take(), self.return_to.take()) {
            if to.reusable {
                to.pool.put(to.authority.as_str(), conn);
            }
        }
    }

    /// The next frame from the bytes already read, if they hold one.
    fn frame_from_buffer(&mut self) -> Result<Option<Bytes>, BodyError> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(None);
        };
        let buf = conn.buf();
        if buf.is_empty() {
            return Ok(None);
        }
        match &mut self.remaining {
            Remaining::Length(left) => {
                let take = usize::try_from(*left).map_or(buf.len(), |l| l.min(buf.len()));
                *left -= take as u64;
                let data = buf.split_to(take).freeze();
                if *left == 0 {
                    self.finish();
                }
                Ok(Some(data))
            }
            Remaining::UntilClose => Ok(Some(buf.split().freeze())),
            Remaining::Chunked(decoder) => loop {
                if buf.is_empty() {
                    return Ok(None);
                }
                let step = decoder
                    .decode(buf)
                    .map_err(|v| BodyError::Chunked(v.reason()))?;
                let used = buf.split_to(step.used).freeze();
                if step.done {
                    self.finish();
                    return Ok(step.data.map(|range| used.slice(range)));
                }
                if let Some(range) = step.data {
                    return Ok(Some(used.slice(range)));
                }
            },
            Remaining::Done => Ok(None),
        }
    }

    /// Reads more from the backend; `Ok(false)` at end-of-file.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, BodyError>> {
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(Ok(false));
        };
        conn.poll_read_more(cx).map_err(BodyError::Io)
    }
}

/// One read into `buf`, with at least `room` bytes free (or as much again
/// as it holds); `Ok(false)` at end-of-file.
pub(crate) fn read_more<R: QuickRead>(
    io: &mut R,
    buf: &mut BytesMut,
    room: usize,
    cx: &mut Context<'_>,
) -> Poll<io::Result<bool>> {
    // A head's read starts from the thread's spare block (`crate::spare`);
    // a body's reads size their own.
    let lent = buf.capacity() == 0 && room <= HEAD_READ;
    if lent {
        *buf = crate::spare::take_read();
    }
    if buf.capacity() - buf.len() < crate::spare::READ_ROOM {
        buf.reserve(room.max(buf.len()));
    }
    // Tried at once first (`quick_io`): the reactor is asked only when the
    // read would wait.
    if let Some(tried) = io.try_read_now(buf) {
        return Poll::Ready(tried.map(|n| n > 0));
    }
    let polled = tokio_util::io::poll_read_buf(Pin::new(io), cx, buf);
    if lent && polled.is_pending() {
        // Nothing came: the block goes back until bytes do. Held while
        // waiting, every request awaiting its backend kept one, more than
        // the thread keeps, so most heads were read into a new block.
        if let Some(kept) = crate::spare::give_back_read(std::mem::take(buf)) {
            *buf = kept;
        }
    }
    let n = ready!(polled)?;
    Poll::Ready(Ok(n > 0))
}

impl http_body::Body for BackendBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        if let Some(Err(err)) = this.conn.as_mut().map(|wire| wire.poll_upload(cx)) {
            this.conn = None;
            this.remaining = Remaining::Done;
            return Poll::Ready(Some(Err(err)));
        }
        loop {
            if matches!(this.remaining, Remaining::Done) {
                return Poll::Ready(None);
            }
            match this.frame_from_buffer() {
                Ok(Some(data)) if !data.is_empty() => {
                    return Poll::Ready(Some(Ok(Frame::data(data))))
                }
                Ok(_) if matches!(this.remaining, Remaining::Done) => return Poll::Ready(None),
                Ok(_) => {}
                Err(err) => {
                    this.conn = None;
                    this.remaining = Remaining::Done;
                    return Poll::Ready(Some(Err(err)));
                }
            }
            match ready!(this.poll_fill(cx)) {
                Ok(true) => {}
                Ok(false) if matches!(this.remaining, Remaining::UntilClose) => {
                    this.conn = None;
                    this.remaining = Remaining::Done;
                    return Poll::Ready(None);
                }
                Ok(false) => {
                    this.conn = None;
                    this.remaining = Remaining::Done;
                    return Poll::Ready(Some(Err(BodyError::Incomplete)));
                }
                Err(err) => {
                    this.conn = None;
                    this.remaining = Remaining::Done;
                    return Poll::Ready(Some(Err(err)));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.remaining, Remaining::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            Remaining::Done => SizeHint::with_exact(0),
            Remaining::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}
