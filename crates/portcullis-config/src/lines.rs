//! Byte offsets to 1-based (line, column), in time independent of the offset.
//!
//! Validation can report one error per url or per service, tens of thousands
//! of them; counting lines and characters from the start of the text for each
//! one made refusing such a document quadratic (issue 11). The text is indexed
//! once instead: where each line starts, and how many characters precede every
//! `STRIDE`-th byte, so a lookup is a binary search plus a scan of at most
//! `STRIDE` bytes, even on a single megabyte-long line.

/// Distance in bytes between character-count checkpoints.
const STRIDE: usize = 64;

pub(crate) struct LineIndex<'a> {
    src: &'a str,
    /// Byte offset where each line starts; the first is 0.
    line_starts: Vec<usize>,
    /// Characters in `src[..k * STRIDE]`, for every k.
    chars_before: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub(crate) fn new(src: &'a str) -> Self {
        let bytes = src.as_bytes();
        let mut line_starts = vec![0];
        line_starts.extend(
            bytes
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i + 1),
        );
        let mut chars_before = Vec::with_capacity(bytes.len() / STRIDE + 1);
        let mut count = 0;
        for chunk in bytes.chunks(STRIDE) {
            chars_before.push(count);
            count += chars_in(chunk);
        }
        chars_before.push(count);
        LineIndex {
            src,
            line_starts,
            chars_before,
        }
    }

    /// 1-based line and column (in characters) of byte `offset`; an offset
    /// inside a character counts as that character, one past the end as the
    /// position after the last character.
    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        let offset = floor_char_boundary(self.src, offset.min(self.src.len()));
        // The last line starting at or before `offset`.
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let start = self.line_starts[line - 1];
        let column = self.chars_up_to(offset) - self.chars_up_to(start) + 1;
        (line, column)
    }

    /// Characters in `src[..offset]`.
    fn chars_up_to(&self, offset: usize) -> usize {
        let checkpoint = offset / STRIDE;
        self.chars_before[checkpoint] + chars_in(&self.src.as_bytes()[checkpoint * STRIDE..offset])
    }
}

/// Characters in a byte range of UTF-8: every byte that does not continue a
/// character starts one, wherever the range begins.
fn chars_in(bytes: &[u8]) -> usize {
    bytes.iter().filter(|b| (**b & 0xC0) != 0x80).count()
}

fn floor_char_boundary(src: &str, mut offset: usize) -> usize {
    while offset > 0 && !src.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// 1-based line and column of one byte offset (indexes the text: for many
/// lookups keep a [`LineIndex`]).
pub(crate) fn line_col(src: &str, offset: usize) -> (usize, usize) {
    LineIndex::new(src).position(offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The obvious definition, to check the index against.
    fn naive(src: &str, offset: usize) -> (usize, usize) {
        let before = &src[..floor_char_boundary(src, offset.min(src.len()))];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    }

    #[test]
    fn positions_are_one_based() {
        let src = "a = 1\nbb = 2\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 6), (2, 1));
        assert_eq!(line_col(src, 9), (2, 4));
        assert_eq!(line_col(src, 999), (3, 1));
        assert_eq!(line_col("", 0), (1, 1));
    }

    #[test]
    fn columns_count_characters_on_long_lines() {
        let src = format!("x\n{}é = 1", "ü".repeat(200));
        let index = LineIndex::new(&src);
        let eq = src.find('=').unwrap();
        assert_eq!(index.position(eq), (2, 203));
        assert_eq!(index.position(eq), naive(&src, eq));
    }

    proptest! {
        #[test]
        fn agrees_with_counting_from_the_start(src in "[a\né€\r]{0,300}", offsets in proptest::collection::vec(0usize..400, 1..20)) {
            let index = LineIndex::new(&src);
            for offset in offsets {
                prop_assert_eq!(index.position(offset), naive(&src, offset));
            }
        }
    }
}
