//! The chunked body state machine (RFC 9112 §7.1): size lines split anywhere,
//! data counted down without scanning, the CRLF after data, and the trailer
//! section.

use super::scan::{is_token, LineScan};
use super::Violation;

/// 16 hex digits fill a u64; more would overflow (leading zeros included:
/// a size line is bounded, not normalised).
const MAX_DIGITS: u8 = 16;

/// Longest chunk extension (after `;`). hyper bounds extensions per body; the
/// gate bounds them per line, which is enough to keep the scan bounded.
const MAX_EXTENSION: u16 = 4096;

#[derive(Debug)]
enum Part {
    /// Hex digits of the size.
    Size {
        digits: u8,
        value: u64,
    },
    /// After `;`, up to the CR, following the extension grammar.
    Extension {
        len: u16,
        value: u64,
        at: Ext,
    },
    /// The CR of the size line was seen; LF must follow.
    SizeLf {
        value: u64,
    },
    Data {
        left: u64,
    },
    DataCr,
    DataLf,
    Trailers(LineScan),
}

/// Where the chunked body is, kept between feeds.
#[derive(Debug)]
pub(super) struct ChunkScan {
    part: Part,
}

/// The result of one step over the bytes.
pub(super) enum ChunkStep {
    /// `used` bytes consumed, still inside the current unit. `trailer`: they
    /// belong to an incomplete trailer section and must be buffered.
    Partial { used: usize, trailer: bool },
    /// `used` bytes consumed and a unit (size line, CRLF after data) completed.
    Boundary(usize),
    /// The trailer section ends after `used` bytes (the caller checks it); the
    /// body is complete.
    Trailers(usize),
}

impl ChunkScan {
    pub(super) fn new() -> ChunkScan {
        ChunkScan {
            part: Part::Size {
                digits: 0,
                value: 0,
            },
        }
    }

    /// True while the next bytes are chunk data.
    pub(super) fn in_data(&self) -> bool {
        matches!(self.part, Part::Data { .. })
    }

    /// One step over `rest` (non-empty).
    pub(super) fn step(&mut self, rest: &[u8]) -> Result<ChunkStep, Violation> {
        match &mut self.part {
            Part::Size { .. } | Part::Extension { .. } | Part::SizeLf { .. } => {
                self.size_line(rest)
            }
            Part::Data { left } => {
                let used = usize::try_from(*left).map_or(rest.len(), |l| l.min(rest.len()));
                *left -= used as u64;
                if *left == 0 {
                    // Data is delivered as it comes; the CRLF after it is the
                    // next unit, so a missing CRLF cuts the body right here.
                    self.part = Part::DataCr;
                    return Ok(ChunkStep::Boundary(used));
                }
                Ok(ChunkStep::Partial {
                    used,
                    trailer: false,
                })
            }
            Part::DataCr => {
                if rest[0] != b'\r' {
                    return Err(Violation::ChunkDataNotTerminated);
                }
                self.part = Part::DataLf;
                Ok(ChunkStep::Partial {
                    used: 1,
                    trailer: false,
                })
            }
            Part::DataLf => {
                if rest[0] != b'\n' {
                    return Err(Violation::ChunkDataNotTerminated);
                }
                self.part = Part::Size {
                    digits: 0,
                    value: 0,
                };
                Ok(ChunkStep::Boundary(1))
            }
            Part::Trailers(scan) => match scan.step(rest)? {
                (used, true) => Ok(ChunkStep::Trailers(used)),
                (used, false) => Ok(ChunkStep::Partial {
                    used,
                    trailer: true,
                }),
            },
        }
    }

    /// Scans the size line byte by byte: `1*16HEXDIG [ ";" extension ] CRLF`,
    /// with no sign, no `0x`, and no whitespace around the size.
    fn size_line(&mut self, rest: &[u8]) -> Result<ChunkStep, Violation> {
        for (i, &b) in rest.iter().enumerate() {
            match &mut self.part {
                Part::Size { digits, value } => {
                    let Some(d) = hex_digit(b) else {
                        let (digits, value) = (*digits, *value);
                        self.part = match b {
                            _ if digits == 0 => return Err(hex_error(b)),
                            b';' => Part::Extension {
                                len: 0,
                                value,
                                at: Ext::AfterSemicolon,
                            },
                            b'\r' => Part::SizeLf { value },
                            _ => return Err(hex_error(b)),
                        };
                        continue;
                    };
                    if *digits == MAX_DIGITS {
                        return Err(Violation::ChunkSizeTooLong);
                    }
                    *digits += 1;
                    *value = (*value << 4) | u64::from(d);
                }
                Part::Extension { len, value, at } => match b {
                    b'\n' => return Err(Violation::BareLf),
                    b'\r' if at.may_end() => self.part = Part::SizeLf { value: *value },
                    _ if *len < MAX_EXTENSION => {
                        *at = at.next(b).ok_or(Violation::InvalidChunkExtension)?;
                        *len += 1;
                    }
                    _ => return Err(Violation::InvalidChunkExtension),
                },
                Part::SizeLf { value } => {
                    if b != b'\n' {
                        return Err(Violation::BareCr);
                    }
                    self.part = match *value {
                        0 => Part::Trailers(LineScan::trailers()),
                        left => Part::Data { left },
                    };
                    return Ok(ChunkStep::Boundary(i + 1));
                }
                // Not reached: only size-line parts get here, and SizeLf returns.
                _ => return Ok(ChunkStep::Boundary(i)),
            }
        }
        Ok(ChunkStep::Partial {
            used: rest.len(),
            trailer: false,
        })
    }
}

/// Where a chunk extension is, by RFC 9112 §7.1.1:
/// `*( BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] )`.
/// Whitespace is allowed only around `;` and `=`, not before the CR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ext {
    AfterSemicolon,
    Name,
    /// Whitespace after a name: `=` or `;` must follow.
    AfterName,
    AfterEquals,
    TokenValue,
    Quoted,
    QuotedEscape,
    /// Just after a closing quote.
    AfterQuoted,
    /// Whitespace after a value: `;` must follow.
    AfterValue,
}

impl Ext {
    /// The line may end here.
    fn may_end(self) -> bool {
        matches!(self, Ext::Name | Ext::TokenValue | Ext::AfterQuoted)
    }

    /// The state after byte `b`, or `None` when the grammar refuses it.
    fn next(self, b: u8) -> Option<Ext> {
        let ws = b == b' ' || b == b'\t';
        let text = b == b'\t' || (0x20..=0x7e).contains(&b) || b >= 0x80;
        Some(match self {
            Ext::AfterSemicolon if ws => Ext::AfterSemicolon,
            Ext::AfterSemicolon | Ext::Name if is_token(b) => Ext::Name,
            Ext::Name | Ext::AfterName if ws => Ext::AfterName,
            Ext::Name | Ext::AfterName if b == b'=' => Ext::AfterEquals,
            Ext::AfterEquals if ws => Ext::AfterEquals,
            Ext::AfterEquals if b == b'"' => Ext::Quoted,
            Ext::AfterEquals | Ext::TokenValue if is_token(b) => Ext::TokenValue,
            Ext::Quoted if b == b'"' => Ext::AfterQuoted,
            Ext::Quoted if b == b'\\' => Ext::QuotedEscape,
            Ext::Quoted | Ext::QuotedEscape if text => Ext::Quoted,
            Ext::TokenValue | Ext::AfterQuoted | Ext::AfterValue if ws => Ext::AfterValue,
            Ext::Name | Ext::AfterName | Ext::TokenValue | Ext::AfterQuoted | Ext::AfterValue
                if b == b';' =>
            {
                Ext::AfterSemicolon
            }
            _ => return None,
        })
    }
}

/// The value of one hex digit; also used by the path rule's percent-decoding.
pub(crate) fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// A byte that cannot continue a size: a bare LF is named as such, everything
/// else (sign, `x`, whitespace, a missing size) is a bad size.
fn hex_error(b: u8) -> Violation {
    if b == b'\n' {
        Violation::BareLf
    } else {
        Violation::InvalidChunkSize
    }
}
