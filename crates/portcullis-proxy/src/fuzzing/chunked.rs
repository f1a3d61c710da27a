//! Fuzz target for the engine's chunked decoder (`h1gate::ChunkedDecoder`),
//! checked against a plain reference decoder of RFC 9112 §7.1 written here.

use crate::h1gate::{ChunkedDecoder, Violation};

use super::cuts_from;

/// What feeding a whole input gave.
#[derive(Debug, PartialEq, Eq)]
struct Decoding {
    data: Vec<u8>,
    /// The last chunk and the trailer section were complete.
    done: bool,
    /// Input bytes the decoder used (all of them unless `done`).
    used: usize,
}

/// `ChunkedDecoder` on any bytes: never panics and never stalls (each call
/// with bytes uses some, until the body is done); fed whole, byte by byte
/// and at cuts drawn from the input, it decodes the same data and reaches
/// the same end or the same violation. A body it decodes completely is a
/// valid chunked body to the reference decoder (RFC 9112 §7.1, chunk
/// extensions as the grammar defines them), with the same data and the
/// same end.
pub fn engine_chunked(data: &[u8]) {
    check_chunked(data, Extensions::Ignored);
}

/// The same target with the reference reading chunk extensions by the
/// RFC 9112 §7.1.1 grammar (`;` token [`=` token / quoted-string], BWS
/// around). The decoder (the gate's size-line rules) takes any visible
/// bytes after `;` instead, so this refuses inputs such as `5;;\r\n`; the
/// engine drops extensions, so none of them reaches a backend. Kept for the
/// open case under `fuzz/regressions/engine_chunked_rfc_extensions/`.
pub fn engine_chunked_rfc_extensions(data: &[u8]) {
    check_chunked(data, Extensions::Grammar);
}

/// How the reference reads what follows a chunk size on its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Extensions {
    /// `;` then field-value bytes (HTAB, SP, VCHAR, obs-text): extensions
    /// ignored, as §7.1.1 tells recipients, but nothing that could end the
    /// line differently.
    Ignored,
    /// The full chunk-ext grammar.
    Grammar,
}

fn check_chunked(data: &[u8], extensions: Extensions) {
    let shown = || String::from_utf8_lossy(data).into_owned();
    let whole = decode_in_pieces(data, &[]);
    let bytewise: Vec<usize> = (1..data.len()).collect();
    assert_eq!(
        decode_in_pieces(data, &bytewise),
        whole,
        "byte by byte changed the decoding of {:?}",
        shown()
    );
    let cuts = cuts_from(data);
    assert_eq!(
        decode_in_pieces(data, &cuts),
        whole,
        "feeding at {cuts:?} changed the decoding of {:?}",
        shown()
    );
    if let Ok(Decoding {
        data: decoded,
        done: true,
        used,
    }) = &whole
    {
        let reference = reference_decode(data, extensions);
        assert_eq!(
            reference.as_ref().map(|(d, end)| (&d[..], *end)),
            Some((&decoded[..], *used)),
            "the decoder took {:?} as a complete body, the reference did not",
            shown()
        );
    }
}

/// Feeds `input` as the engine does on partial reads: the unused bytes stay
/// and the bytes up to the next cut are added, and the decoder is asked
/// again while it makes progress.
fn decode_in_pieces(input: &[u8], cuts: &[usize]) -> Result<Decoding, Violation> {
    let mut decoder = ChunkedDecoder::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut data = Vec::new();
    let mut used = 0;
    let mut fed = 0;
    for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
        let cut = cut.clamp(fed, input.len());
        pending.extend_from_slice(&input[fed..cut]);
        fed = cut;
        while !pending.is_empty() && !decoder.is_done() {
            let step = decoder.decode(&pending)?;
            assert!(
                step.used > 0 && step.used <= pending.len(),
                "a step used {} of {} bytes",
                step.used,
                pending.len()
            );
            if let Some(range) = step.data {
                assert!(range.end <= step.used, "data {range:?} past the used bytes");
                data.extend_from_slice(&pending[range]);
            }
            assert_eq!(step.done, decoder.is_done());
            pending.drain(..step.used);
            used += step.used;
        }
    }
    Ok(Decoding {
        data,
        done: decoder.is_done(),
        used,
    })
}

/// A chunked body at the start of `input` by RFC 9112 §7.1, read plainly:
/// the data and where the body ends, or `None` if `input` does not start
/// with a complete, valid one.
///
/// ```text
/// chunked-body = *chunk last-chunk trailer-section CRLF
/// chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
/// last-chunk   = 1*("0") [ chunk-ext ] CRLF
/// ```
fn reference_decode(input: &[u8], extensions: Extensions) -> Option<(Vec<u8>, usize)> {
    let mut data = Vec::new();
    let mut pos = 0;
    loop {
        let (line, next) = crlf_line(input, pos)?;
        let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        if digits == 0 || !chunk_ext(&line[digits..], extensions) {
            return None;
        }
        let size = line[..digits].iter().try_fold(0usize, |n, &b| {
            let digit = char::from(b).to_digit(16)? as usize;
            n.checked_mul(16)?.checked_add(digit)
        })?;
        pos = next;
        if size == 0 {
            break;
        }
        let end = pos.checked_add(size)?;
        if input.get(end..end.checked_add(2)?)? != b"\r\n" {
            return None;
        }
        data.extend_from_slice(&input[pos..end]);
        pos = end + 2;
    }
    // trailer-section CRLF: field lines, then an empty line.
    loop {
        let (line, next) = crlf_line(input, pos)?;
        pos = next;
        if line.is_empty() {
            return Some((data, pos));
        }
        if !field_line(line) {
            return None;
        }
    }
}

/// The bytes from `pos` up to the next CRLF, and where the next line starts.
/// Any other CR or LF stays in the line, where no rule allows it.
fn crlf_line(input: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let rest = input.get(pos..)?;
    let end = rest.windows(2).position(|w| w == b"\r\n")?;
    Some((&rest[..end], pos + end + 2))
}

/// RFC 9110 §5.6.2 tchar.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// field-vchar and the whitespace allowed between them.
fn is_field_byte(b: u8) -> bool {
    b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80
}

/// `field-name ":" OWS field-value OWS`.
fn field_line(line: &[u8]) -> bool {
    let name = line.iter().take_while(|&&b| is_tchar(b)).count();
    name > 0 && line.get(name) == Some(&b':') && line[name + 1..].iter().all(|&b| is_field_byte(b))
}

/// What follows the size on its line.
fn chunk_ext(ext: &[u8], extensions: Extensions) -> bool {
    match extensions {
        Extensions::Ignored => {
            ext.is_empty() || (ext[0] == b';' && ext[1..].iter().all(|&b| is_field_byte(b)))
        }
        Extensions::Grammar => chunk_ext_grammar(ext),
    }
}

/// `chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )`
/// with `chunk-ext-name = token`, `chunk-ext-val = token / quoted-string`.
fn chunk_ext_grammar(ext: &[u8]) -> bool {
    let skip_ws = |mut i: usize| {
        while matches!(ext.get(i), Some(b' ' | b'\t')) {
            i += 1;
        }
        i
    };
    let token = |i: usize| {
        ext[i.min(ext.len())..]
            .iter()
            .take_while(|&&b| is_tchar(b))
            .count()
    };
    let mut i = 0;
    while i < ext.len() {
        i = skip_ws(i);
        if ext.get(i) != Some(&b';') {
            return false;
        }
        i = skip_ws(i + 1);
        let name = token(i);
        if name == 0 {
            return false;
        }
        i += name;
        let after = skip_ws(i);
        if ext.get(after) == Some(&b'=') {
            i = skip_ws(after + 1);
            i = match ext.get(i) {
                Some(b'"') => match quoted_string_end(ext, i) {
                    Some(end) => end,
                    None => return false,
                },
                _ => match token(i) {
                    0 => return false,
                    n => i + n,
                },
            };
        }
    }
    true
}

/// Where the quoted-string that opens at `start` ends (after its DQUOTE).
fn quoted_string_end(ext: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    loop {
        match *ext.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => {
                let escaped = *ext.get(i + 1)?;
                if !is_field_byte(escaped) {
                    return None;
                }
                i += 2;
            }
            b if is_field_byte(b) => i += 1,
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_reads_valid_bodies_and_refuses_broken_ones() {
        let body = b"5;a=b;c=\"d\\\"e\" ; f\r\nhello\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        assert_eq!(
            reference_decode(body, Extensions::Grammar),
            Some((b"hello".to_vec(), body.len() - 4))
        );
        for broken in [
            &b"5\r\nhello\r\n0\r\n\r"[..],
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloX\r\n0\r\n\r\n",
            b"5;;\r\nhello\r\n0\r\n\r\n",
            b"5;a=\r\nhello\r\n0\r\n\r\n",
            b"5;a \r\nhello\r\n0\r\n\r\n",
            b"0\r\nBad Name: x\r\n\r\n",
            b"-5\r\nhello\r\n0\r\n\r\n",
        ] {
            assert_eq!(
                reference_decode(broken, Extensions::Grammar),
                None,
                "{:?}",
                String::from_utf8_lossy(broken)
            );
        }
        assert!(reference_decode(b"5;;\r\nhello\r\n0\r\n\r\n", Extensions::Ignored).is_some());
    }
}
