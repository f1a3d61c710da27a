//! Finding the line of a key path in the source, for errors found after
//! deserialization (empty lists, duplicates, ranges).

use std::cell::OnceCell;

use toml::de::{DeTable, DeValue};

use crate::lines::LineIndex;

#[derive(Debug, PartialEq, Eq)]
enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

fn segments(path: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            out.push(Segment::Key(key));
        }
        while let Some(close) = rest.find(']') {
            if let Ok(index) = rest[1..close].parse() {
                out.push(Segment::Index(index));
            }
            rest = &rest[close + 1..];
        }
    }
    out
}

/// The source parsed once with spans and indexed by line, so that reporting
/// many errors neither re-parses nor re-scans the file for each of them. Both
/// are built at the first error: a valid file pays for neither.
pub(crate) struct Locator<'a> {
    src: &'a str,
    parsed: OnceCell<(Option<toml::Spanned<DeTable<'a>>>, LineIndex<'a>)>,
}

impl<'a> Locator<'a> {
    pub(crate) fn new(src: &'a str) -> Self {
        Locator {
            src,
            parsed: OnceCell::new(),
        }
    }

    /// Line and column of `path`: of its value when it is a plain value (where
    /// the mistake is), of its header or key when it is a table. A key that is
    /// absent (a default) reports the deepest part present, i.e. the table that
    /// should hold it.
    pub(crate) fn locate(&self, path: &str) -> Option<(usize, usize)> {
        let (root, lines) = self
            .parsed
            .get_or_init(|| (DeTable::parse(self.src).ok(), LineIndex::new(self.src)));
        let root = root.as_ref()?;
        let mut span = None;
        let mut table = Some(root.get_ref());
        let mut array: Option<&[toml::Spanned<DeValue<'_>>]> = None;
        for segment in segments(path) {
            let value = match segment {
                Segment::Key(key) => {
                    let found = table.and_then(|t| {
                        t.iter()
                            .find(|(k, _)| k.get_ref().as_ref() == key)
                            .map(|(k, v)| (k.span(), v))
                    });
                    match found {
                        Some((key_span, value)) => {
                            span = Some(key_span);
                            value
                        }
                        None => break,
                    }
                }
                Segment::Index(i) => match array.and_then(|a| a.get(i)) {
                    Some(value) => {
                        span = Some(value.span());
                        value
                    }
                    None => break,
                },
            };
            table = None;
            array = None;
            match value.get_ref() {
                DeValue::Table(t) => {
                    // A `[[service]]` header's table spans from its own header;
                    // prefer it over the key of the array for better lines.
                    if !value.span().is_empty() && matches!(segment, Segment::Index(_)) {
                        span = Some(value.span());
                    }
                    table = Some(t);
                }
                DeValue::Array(a) => {
                    if !value.span().is_empty() {
                        span = Some(value.span());
                    }
                    array = Some(a);
                }
                _ => {
                    if !value.span().is_empty() {
                        span = Some(value.span());
                    }
                }
            }
        }
        span.map(|s| lines.position(s.start))
    }
}

/// Line and column of `path` in `src`; see [`Locator::locate`].
#[cfg(test)]
fn locate(src: &str, path: &str) -> Option<(usize, usize)> {
    Locator::new(src).locate(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_paths() {
        assert_eq!(
            segments("service[1].ha.x"),
            vec![
                Segment::Key("service"),
                Segment::Index(1),
                Segment::Key("ha"),
                Segment::Key("x")
            ]
        );
        assert_eq!(segments("service[0].urls[2]").len(), 4);
    }

    #[test]
    fn finds_keys_in_arrays_of_tables() {
        let src = "[[service]]\nname = \"a\"\n\n[[service]]\nname = \"b\"\n[service.ha]\nmax_failover_attempts = 500\n";
        assert_eq!(
            locate(src, "service[1].ha.max_failover_attempts"),
            Some((7, 25))
        );
        assert_eq!(locate(src, "service[1].name").map(|p| p.0), Some(5));
        // Absent key: the nearest present parent.
        assert_eq!(locate(src, "service[0].urls").map(|p| p.0), Some(1));
    }

    #[test]
    fn finds_array_elements() {
        let src = "[[service]]\nurls = [\n  \"http://a\",\n  \"ftp://b\",\n]\n";
        assert_eq!(locate(src, "service[0].urls[1]").map(|p| p.0), Some(4));
    }
}
