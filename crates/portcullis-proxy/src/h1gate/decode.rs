//! Decoding a chunked body with the gate's own rules (RFC 9112 §7.1): the
//! same size-line, extension and CRLF checks as [`super::Gate`], but it also
//! says which bytes are data. Trailer sections are checked like a head and
//! then dropped: nothing in them reaches the other side (PRODUCT.md §9).

use std::ops::Range;

use super::chunked::{ChunkScan, ChunkStep};
use super::head::check_fields;
use super::{Violation, MAX_HEAD};

/// One step of [`ChunkedDecoder::decode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// Bytes of the input used by this step.
    pub used: usize,
    /// Body data within the input (a sub-range of `0..used`), if this step
    /// found any.
    pub data: Option<Range<usize>>,
    /// The last chunk and the trailer section are complete.
    pub done: bool,
}

/// A chunked body being decoded, fed bytes as they arrive.
#[derive(Debug)]
pub struct ChunkedDecoder {
    scan: ChunkScan,
    /// An unfinished trailer section, kept only until it is checked.
    trailers: Vec<u8>,
    done: bool,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder::new()
    }
}

impl ChunkedDecoder {
    pub fn new() -> ChunkedDecoder {
        ChunkedDecoder {
            scan: ChunkScan::new(),
            trailers: Vec::new(),
            done: false,
        }
    }

    /// True once the whole body (trailers included) was decoded.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Decodes from the start of `input`: framing bytes are consumed until
    /// data is found, and at most one run of data is returned per call.
    pub fn decode(&mut self, input: &[u8]) -> Result<Decoded, Violation> {
        let mut used = 0;
        while used < input.len() && !self.done {
            let rest = &input[used..];
            if self.scan.in_data() {
                let step = self.scan.step(rest)?;
                let len = match step {
                    ChunkStep::Partial { used, .. } | ChunkStep::Boundary(used) => used,
                    ChunkStep::Trailers(used) => used,
                };
                return Ok(Decoded {
                    used: used + len,
                    data: Some(used..used + len),
                    done: false,
                });
            }
            match self.scan.step(rest)? {
                ChunkStep::Partial { used: n, trailer } => {
                    if trailer {
                        self.keep_trailer_bytes(&rest[..n])?;
                    }
                    used += n;
                }
                ChunkStep::Boundary(n) => used += n,
                ChunkStep::Trailers(n) => {
                    self.keep_trailer_bytes(&rest[..n])?;
                    check_fields(&self.trailers)?;
                    self.trailers = Vec::new();
                    self.done = true;
                    used += n;
                }
            }
        }
        Ok(Decoded {
            used,
            data: None,
            done: self.done,
        })
    }

    fn keep_trailer_bytes(&mut self, bytes: &[u8]) -> Result<(), Violation> {
        if self.trailers.len() + bytes.len() > MAX_HEAD {
            return Err(Violation::TrailersTooLarge);
        }
        self.trailers.extend_from_slice(bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `piece` bytes; returns the data.
    fn decode_all(input: &[u8], piece: usize) -> Result<(Vec<u8>, bool, usize), Violation> {
        let mut decoder = ChunkedDecoder::new();
        let mut data = Vec::new();
        let mut fed = 0;
        let mut pending: Vec<u8> = Vec::new();
        while fed < input.len() || !pending.is_empty() {
            let end = (fed + piece).min(input.len());
            pending.extend_from_slice(&input[fed..end]);
            fed = end;
            let step = decoder.decode(&pending)?;
            if let Some(range) = step.data.clone() {
                data.extend_from_slice(&pending[range]);
            }
            pending.drain(..step.used);
            if step.done {
                return Ok((data, true, pending.len() + input.len() - fed));
            }
            if step.used == 0 && fed == input.len() {
                break;
            }
        }
        Ok((data, decoder.is_done(), 0))
    }

    #[test]
    fn decodes_data_in_any_split_and_drops_trailers() {
        let body = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\nNEXT";
        for piece in [1, 2, 3, 7, 64] {
            let (data, done, left) = decode_all(body, piece).unwrap();
            assert_eq!(data, b"hello world", "piece {piece}");
            assert!(done);
            assert_eq!(left, 4, "bytes after the body stay unread");
        }
    }

    #[test]
    fn refuses_what_the_gate_refuses() {
        let cases: [(&[u8], Violation); 6] = [
            (b"+5\r\nhello\r\n0\r\n\r\n", Violation::InvalidChunkSize),
            (b"5\nhello\r\n0\r\n\r\n", Violation::BareLf),
            (
                b"5\r\nhelloX\r\n0\r\n\r\n",
                Violation::ChunkDataNotTerminated,
            ),
            (b"11111111111111111\r\n", Violation::ChunkSizeTooLong),
            (b"0\r\nBad Name: x\r\n\r\n", Violation::InvalidFieldName),
            (b" 5\r\nhello\r\n0\r\n\r\n", Violation::InvalidChunkSize),
        ];
        for (input, want) in cases {
            assert_eq!(decode_all(input, 3).unwrap_err(), want, "{input:?}");
        }
    }

    #[test]
    fn chunk_extensions_follow_the_rfc_grammar() {
        for ext in [
            ";a",
            ";a=b",
            "; a = b",
            ";a=\"q \\\" x\";b",
            ";a;b=c",
            ";a=\"\"",
        ] {
            let body = format!("5{ext}\r\nhello\r\n0\r\n\r\n");
            let (data, done, _) = decode_all(body.as_bytes(), 1).unwrap();
            assert_eq!((data.as_slice(), done), (&b"hello"[..], true), "{ext:?}");
        }
        for ext in [
            ";", ";;", "; ", ";a ", ";a=", ";a=b ", ";=b", ";a=\"x", ";a=b c", ";a\x01",
        ] {
            let body = format!("5{ext}\r\nhello\r\n0\r\n\r\n");
            assert_eq!(
                decode_all(body.as_bytes(), 1).unwrap_err(),
                Violation::InvalidChunkExtension,
                "{ext:?}"
            );
        }
    }

    #[test]
    fn an_unfinished_body_is_not_done() {
        let (data, done, _) = decode_all(b"5\r\nhel", 2).unwrap();
        assert_eq!(data, b"hel");
        assert!(!done);
    }

    #[test]
    fn oversized_trailers_are_refused() {
        let mut body = b"0\r\n".to_vec();
        while body.len() < MAX_HEAD + 10 {
            body.extend_from_slice(b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        body.extend_from_slice(b"\r\n");
        assert_eq!(
            decode_all(&body, 4096).unwrap_err(),
            Violation::TrailersTooLarge
        );
    }
}
