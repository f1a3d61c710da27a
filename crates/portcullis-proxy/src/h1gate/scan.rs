//! Byte classes and the incremental line-ending scan shared by heads and
//! trailer sections.

use super::{Violation, MAX_HEAD};

/// RFC 9110 §5.6.2 tchar, the same set httparse uses for names and methods.
/// The one definition: the tables below, the engine's head scan and
/// `http::headers::is_tchar` all read it.
const fn tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// Each byte lowercased if it is tchar, 0 if it is not: one lookup both
/// checks a field name's byte and lowercases it (the engine's head scan).
pub(crate) static LOWER_TOKEN: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        if tchar(b as u8) {
            t[b] = (b as u8).to_ascii_lowercase();
        }
        b += 1;
    }
    t
};

/// Field value bytes: HTAB, SP, VCHAR, obs-text. No other CTL, no NUL, no DEL.
static VALUE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = b == 0x09 || (b >= 0x20 && b != 0x7f);
        b += 1;
    }
    t
};

#[inline]
pub(crate) fn is_token(b: u8) -> bool {
    LOWER_TOKEN[b as usize] != 0
}

#[inline]
pub(super) fn is_value(b: u8) -> bool {
    VALUE[b as usize]
}

/// Whether every byte is a field value byte ([`is_value`]).
#[inline]
pub(super) fn all_values(bytes: &[u8]) -> bool {
    first_non_value(bytes).is_none()
}

/// Where the first byte that is not a field value byte ([`is_value`]) is;
/// `None`: all are. Eight bytes per step, as [`find_cr_or_lf`] does: a
/// bearer token is a few hundred bytes, and the byte-at-a-time check cost
/// about 7 instructions a byte. A word with a byte below SP (HTAB included)
/// or a DEL is looked at more closely.
#[inline]
pub(crate) fn first_non_value(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const SPS: u64 = u64::from_ne_bytes([b' '; 8]);
    const DELS: u64 = u64::from_ne_bytes([0x7f; 8]);
    let (words, _) = bytes.as_chunks::<8>();
    for (index, eight) in words.iter().enumerate() {
        let word = u64::from_le_bytes(*eight);
        let del = word ^ DELS;
        // Nonzero when some byte is below SP or is DEL (a zero byte of
        // `del`); bytes of 0x80 and above flag neither.
        let suspect = ((word.wrapping_sub(SPS) & !word) | (del.wrapping_sub(ONES) & !del)) & HIGHS;
        if suspect != 0 {
            // The lowest flag is always a real one (a false flag needs a
            // borrow from a real one below it; little-endian puts byte 0
            // lowest): nearly always the CR that ends a value. An HTAB
            // there is a value byte: the word is then read byte by byte.
            let first = (suspect.trailing_zeros() / 8) as usize;
            if eight[first] != b'\t' {
                return Some(index * 8 + first);
            }
            if let Some(k) = eight.iter().position(|&b| !is_value(b)) {
                return Some(index * 8 + k);
            }
        }
    }
    let done = words.len() * 8;
    bytes[done..]
        .iter()
        .position(|&b| !is_value(b))
        .map(|k| done + k)
}

/// Request-target bytes: visible ASCII only. httparse also takes obs-text here;
/// refusing it keeps the gate never more lenient than httparse.
#[inline]
pub(super) fn is_target(b: u8) -> bool {
    (0x21..=0x7e).contains(&b)
}

/// Position of the first CR or LF. Every head byte passes here twice (the
/// line scan, then the head check), so it looks at eight bytes per step: a
/// byte-at-a-time loop took about 7 instructions a byte, this about 2. No
/// dependency: lines are short, and the word trick needs no set-up.
#[inline]
pub(super) fn find_cr_or_lf(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const CRS: u64 = u64::from_ne_bytes([b'\r'; 8]);
    const LFS: u64 = u64::from_ne_bytes([b'\n'; 8]);
    let mut words = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut words {
        let Ok(eight) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let word = u64::from_le_bytes(eight);
        let (cr, lf) = (word ^ CRS, word ^ LFS);
        // A zero byte in `cr` or `lf` is a CR or LF in `word`. The lowest
        // flagged byte of each is always a real zero (a false flag needs a
        // borrow from a real zero below it), so the lowest of both is the
        // first CR or LF; little-endian puts byte 0 lowest.
        let found = ((cr.wrapping_sub(ONES) & !cr) | (lf.wrapping_sub(ONES) & !lf)) & HIGHS;
        if found != 0 {
            return Some(offset + (found.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    let tail = &bytes[offset..];
    tail.iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .map(|k| offset + k)
}

/// Follows line endings of a head (or trailer section) across feeds: every LF
/// must follow a CR and every CR must precede an LF, checked at the byte that
/// breaks the rule. It finds the blank line that ends the section; the content
/// of the lines is checked once the section is complete.
#[derive(Debug, Clone)]
pub(super) struct LineScan {
    /// Trailer sections have no request line, so no leading empty lines either.
    trailers: bool,
    /// Complete non-empty lines so far.
    lines: u32,
    /// Bytes of the current line so far (0: at the start of a line).
    line_len: usize,
    /// The last byte was a CR; the next must be LF.
    cr: bool,
    /// Empty lines seen before the request line.
    blanks: u8,
    /// Bytes of this section consumed in earlier steps.
    total: usize,
}

/// RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the
/// request line. Two covers clients that end a body with an extra CRLF.
const MAX_BLANKS: u8 = 2;

impl LineScan {
    pub(super) fn head() -> LineScan {
        LineScan {
            trailers: false,
            lines: 0,
            line_len: 0,
            cr: false,
            blanks: 0,
            total: 0,
        }
    }

    pub(super) fn trailers() -> LineScan {
        LineScan {
            trailers: true,
            ..LineScan::head()
        }
    }

    /// No byte consumed yet.
    pub(super) fn is_fresh(&self) -> bool {
        self.total == 0
    }

    /// Scans `rest`; returns the bytes used and whether the section ended (the
    /// used bytes then end with its blank line's CRLF).
    pub(super) fn step(&mut self, rest: &[u8]) -> Result<(usize, bool), Violation> {
        let too_large = if self.trailers {
            Violation::TrailersTooLarge
        } else {
            Violation::HeadTooLarge
        };
        // Never look further than the limit allows: a flood of line bytes is
        // refused after 64 KiB, not after the whole read.
        let room = MAX_HEAD - self.total;
        let window = &rest[..rest.len().min(room)];
        let mut i = 0;
        while i < window.len() {
            if self.cr {
                if window[i] != b'\n' {
                    return Err(Violation::BareCr);
                }
                i += 1;
                self.cr = false;
                if self.line_len > 0 {
                    self.lines += 1;
                    self.line_len = 0;
                } else if self.lines == 0 && !self.trailers {
                    self.blanks += 1;
                    if self.blanks > MAX_BLANKS {
                        return Err(Violation::TooManyEmptyLines);
                    }
                } else {
                    self.total += i;
                    return Ok((i, true));
                }
                continue;
            }
            match find_cr_or_lf(&window[i..]) {
                None => {
                    self.line_len += window.len() - i;
                    i = window.len();
                }
                Some(k) if window[i + k] == b'\n' => return Err(Violation::BareLf),
                Some(k) => {
                    self.line_len += k;
                    self.cr = true;
                    i += k + 1;
                }
            }
        }
        self.total += i;
        if self.total >= MAX_HEAD {
            return Err(too_large);
        }
        Ok((i, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lowercase_token_table_is_tchar_lowercased() {
        let listed = b"!#$%&'*+-.^_`|~";
        for b in 0..=255u8 {
            let is_tchar = b.is_ascii_alphanumeric() || listed.contains(&b);
            let expected = if is_tchar { b.to_ascii_lowercase() } else { 0 };
            assert_eq!(LOWER_TOKEN[b as usize], expected, "{b:#04x}");
        }
    }

    fn bytewise(bytes: &[u8]) -> Option<usize> {
        bytes.iter().position(|&b| !is_value(b))
    }

    #[test]
    fn all_values_agrees_with_the_byte_check_for_every_byte_at_every_position() {
        let mut line = *b"Bearer abcdefghijklmnopqrstuvwxyz0123";
        for position in 0..line.len() {
            let kept = line[position];
            for b in 0..=255u8 {
                line[position] = b;
                assert_eq!(
                    first_non_value(&line),
                    bytewise(&line),
                    "byte {b:#04x} at {position}"
                );
                assert_eq!(all_values(&line), bytewise(&line).is_none());
            }
            line[position] = kept;
        }
    }

    #[test]
    fn first_non_value_agrees_on_mixed_words() {
        // Pseudo-random lines over the interesting bytes, lengths 0..40.
        let alphabet = [0x00, 0x09, 0x0a, 0x1f, 0x20, 0x41, 0x7e, 0x7f, 0x80, 0xff];
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 40) as usize;
            let line: Vec<u8> = (0..len)
                .map(|i| alphabet[((seed >> (i % 60)) % 10) as usize])
                .collect();
            assert_eq!(first_non_value(&line), bytewise(&line), "{line:?}");
        }
    }
}
