//! Buffers lent per thread. A connection between requests holds no buffer
//! (idle memory), but allocating a fresh one for every request cost two
//! allocations per read buffer (the buffer, then the shared block its first
//! split makes) and one per response buffer. Given back when a connection
//! goes idle, a buffer waits here for the next request on the same thread.

use bytes::BytesMut;
use std::cell::{Cell, RefCell};

/// The block a head is read into (the engine's `HEAD_READ` is this).
pub(crate) const HEAD_READ: usize = 4 * 1024;

/// Read buffers kept per thread (4 KiB each, unless one grew): with 8, a
/// fifth of the requests under ten busy connections found none free and
/// read into a new block.
const KEEP_READ: usize = 16;
/// Buffers that grew past this are dropped, not kept.
const KEEP_UP_TO: usize = 64 * 1024;

thread_local! {
    static READ: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
    static WRITE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Room a read wants before it makes more (the engine's `read_more`).
pub(crate) const READ_ROOM: usize = 1024;

/// A read buffer: a kept one with a read's room left, or whose block is
/// free again, if there is one, else a new, empty one.
pub(crate) fn take_read() -> BytesMut {
    READ.with_borrow_mut(|kept| {
        // Newest first: the most recently used block is likely in cache. A
        // block is moved back to its start only when its room runs out: the
        // move (checking that no head shares it, then copying) was about 60
        // instructions for every head.
        let free = kept.iter_mut().rposition(|b| b.try_reclaim(READ_ROOM))?;
        Some(kept.swap_remove(free))
    })
    .unwrap_or_default()
}

/// Keeps an empty `buffer` for the next reader on this thread, even while
/// heads or bodies cut from it still share its block: a backend
/// connection's buffer comes back when its body ends, while that body's
/// last bytes are still being written, and is free again by the next
/// request (`take_read` checks). The oldest kept buffer makes room when the
/// list is full. A buffer still holding unread bytes, or a big one, is
/// handed back to the caller, who may keep or drop it.
pub(crate) fn give_back_read(mut buffer: BytesMut) -> Option<BytesMut> {
    if !buffer.is_empty() || buffer.capacity() > KEEP_UP_TO {
        return Some(buffer);
    }
    // No room left: a buffer never allocated (kept, it would only push a
    // useful one out), or a block used to its end, kept only when free.
    if buffer.capacity() == 0 && !buffer.try_reclaim(HEAD_READ) {
        return Some(buffer);
    }
    READ.with_borrow_mut(|kept| {
        if kept.len() >= KEEP_READ {
            kept.remove(0);
        }
        kept.push(buffer);
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

    fn empty_read_spares() {
        READ.with_borrow_mut(Vec::clear);
    }

    #[test]
    fn a_read_buffer_is_lent_again_only_when_its_block_is_free() {
        empty_read_spares();
        let mut buffer = BytesMut::with_capacity(HEAD_READ);
        buffer.extend_from_slice(&[b'x'; HEAD_READ - 100]);
        let head = buffer.split_to(buffer.len()).freeze();
        // The head still shares the block: kept, but not lent out.
        assert!(give_back_read(buffer).is_none());
        assert_eq!(take_read().capacity(), 0);
        drop(head);
        let reused = take_read();
        assert!(reused.is_empty() && reused.capacity() >= HEAD_READ);
        // A block with a read's room left is lent as it is, shared or not.
        let mut roomy = BytesMut::with_capacity(HEAD_READ);
        roomy.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let head = roomy.split().freeze();
        assert!(give_back_read(roomy).is_none());
        let lent = take_read();
        assert!(lent.capacity() >= READ_ROOM && lent.capacity() < HEAD_READ);
        drop(head);
        // Bytes not yet read are never kept, nor a buffer never allocated.
        assert!(give_back_read(BytesMut::new()).is_some());
        let mut pending = BytesMut::with_capacity(HEAD_READ);
        pending.extend_from_slice(b"x");
        assert!(give_back_read(pending).is_some());
        assert_eq!(take_read().capacity(), 0);
    }

    #[test]
    fn the_oldest_kept_read_buffer_makes_room() {
        empty_read_spares();
        let mut heads = Vec::new();
        for _ in 0..=KEEP_READ {
            let mut buffer = BytesMut::with_capacity(HEAD_READ);
            buffer.extend_from_slice(&[b'x'; HEAD_READ - 100]);
            heads.push(buffer.split().freeze());
            assert!(give_back_read(buffer).is_none());
        }
        assert_eq!(READ.with_borrow(Vec::len), KEEP_READ);
        // The first buffer's block was let go: freeing it lends nothing.
        drop(heads.remove(0));
        assert_eq!(take_read().capacity(), 0);
        drop(heads.remove(0));
        assert!(take_read().capacity() >= HEAD_READ);
    }
}
