//! Buffers lent per thread. A connection between requests holds no buffer
//! (idle memory), but allocating a fresh one for every request cost two
//! allocations per read buffer (the buffer, then the shared block its first
//! split makes) and one per response buffer. Given back when a connection
//! goes idle, a buffer waits here for the next request on the same thread.

use std::cell::{Cell, RefCell};

use bytes::BytesMut;

/// The block a head is read into (the engine's `HEAD_READ` is this).
pub(crate) const HEAD_READ: usize = 4 * 1024;

/// Read buffers kept per thread.
const KEEP_READ: usize = 4;
/// Buffers that grew past this are dropped, not kept.
const KEEP_UP_TO: usize = 64 * 1024;

thread_local! {
    static READ: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
    static WRITE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// A read buffer: a kept one if there is one, else a new, empty one.
pub(crate) fn take_read() -> BytesMut {
    READ.with_borrow_mut(Vec::pop).unwrap_or_default()
}

/// Keeps `buffer` for the next reader on this thread when it is empty and
/// its whole block is free again (no head cut from it is still alive);
/// otherwise gives it back to the caller, who may keep or drop it.
pub(crate) fn give_back_read(mut buffer: BytesMut) -> Option<BytesMut> {
    if !buffer.is_empty() || buffer.capacity() > KEEP_UP_TO || !buffer.try_reclaim(HEAD_READ) {
        return Some(buffer);
    }
    READ.with_borrow_mut(|kept| {
        if kept.len() < KEEP_READ {
            kept.push(buffer);
        }
    });
    None
}

/// A response buffer: this thread's, or a new one when it is lent out.
pub(crate) fn take_write() -> Vec<u8> {
    WRITE.take()
}

pub(crate) fn give_back_write(mut buffer: Vec<u8>) {
    if buffer.capacity() <= KEEP_UP_TO {
        buffer.clear();
        WRITE.set(buffer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_buffer_comes_back_empty_and_a_big_one_is_dropped() {
        let mut lent = take_write();
        lent.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        let capacity = lent.capacity();
        give_back_write(lent);
        let again = take_write();
        assert!(again.is_empty());
        assert_eq!(again.capacity(), capacity);
        // Lent out: the next taker gets a new, empty one.
        assert_eq!(take_write().capacity(), 0);
        give_back_write(Vec::with_capacity(KEEP_UP_TO + 1));
        assert_eq!(take_write().capacity(), 0);
    }

    #[test]
    fn a_read_buffer_is_kept_only_when_its_block_is_free() {
        while !READ.with_borrow(Vec::is_empty) {
            take_read();
        }
        let mut buffer = BytesMut::with_capacity(HEAD_READ);
        buffer.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let head = buffer.split_to(buffer.len()).freeze();
        // The head still shares the block: not kept, handed back.
        let buffer = give_back_read(buffer).expect("a block in use is not kept");
        drop(head);
        assert!(give_back_read(buffer).is_none());
        let reused = take_read();
        assert!(reused.is_empty() && reused.capacity() >= HEAD_READ);
        // Bytes not yet read are never kept.
        let mut pending = BytesMut::with_capacity(HEAD_READ);
        pending.extend_from_slice(b"x");
        assert!(give_back_read(pending).is_some());
        assert_eq!(take_read().capacity(), 0);
    }
}
