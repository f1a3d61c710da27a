//! The corpus: every case is a name, the bytes a client writes (in one or
//! more pieces), the backend's script, and what must hold on both engines
//! beside their equality. Requests name the service as `/gateway/t/svc`;
//! the runner gives each case a service of its own.
//!
//! - `requests`: valid requests of every shape;
//! - `attacks`: the classes of the strict-edges suite (PRODUCT.md §9);
//! - `responses`: backend answers, well-formed and not.

mod attacks;
mod requests;
mod responses;

use portcullis_testkit::raw_backend::Reply;

/// The service prefix in case bytes, replaced per case by the runner.
pub const SERVICE: &str = "/gateway/t/svc";

/// What must hold on each engine, beside both engines agreeing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// A valid request: at least one complete request reaches the backend.
    Forwarded,
    /// Refused by the gateway with this status, the connection closed, and
    /// no complete request at the backend (PRODUCT.md §9 "Requests").
    Refused(u16),
    /// Answered by the gateway with this status and no complete request at
    /// the backend; the connection may stay open (PRODUCT.md §9 "Paths").
    Rejected(u16),
    /// Only the comparison (backend misbehaviour, gateway errors).
    Compared,
}

pub struct Case {
    pub name: String,
    /// Written in order, with a short pause between two pieces.
    pub pieces: Vec<Vec<u8>>,
    pub replies: Vec<Reply>,
    pub expect: Expect,
}

impl Case {
    pub fn new(
        name: impl Into<String>,
        request: Vec<u8>,
        replies: Vec<Reply>,
        expect: Expect,
    ) -> Case {
        Case {
            name: name.into(),
            pieces: vec![request],
            replies,
            expect,
        }
    }

    /// A valid request the backend answers with `200 ok` (head only for HEAD).
    pub fn forwarded(name: impl Into<String>, request: Vec<u8>) -> Case {
        let reply = if request.starts_with(b"HEAD ") {
            ok_head()
        } else {
            ok()
        };
        Case::new(name, request, vec![reply], Expect::Forwarded)
    }

    pub fn refused(name: impl Into<String>, request: Vec<u8>, status: u16) -> Case {
        Case::new(name, request, vec![ok()], Expect::Refused(status))
    }

    /// The bytes cut at `cuts` (offsets, ascending) into pieces.
    pub fn split_at(mut self, cuts: &[usize]) -> Case {
        let whole: Vec<u8> = self.pieces.concat();
        let mut pieces = Vec::new();
        let mut from = 0;
        for &cut in cuts.iter().filter(|&&c| c > 0 && c < whole.len()) {
            pieces.push(whole[from..cut].to_vec());
            from = cut;
        }
        pieces.push(whole[from..].to_vec());
        self.pieces = pieces;
        self
    }

    /// The whole request as one byte string.
    pub fn bytes(&self) -> Vec<u8> {
        self.pieces.concat()
    }
}

/// `METHOD /gateway/t/svc{path} HTTP/1.1`, Host `gw.test`, then `headers`
/// (each ending in CRLF), an empty line and `body`.
pub fn request(method: &str, path: &str, headers: &str, body: &str) -> Vec<u8> {
    format!("{method} {SERVICE}{path} HTTP/1.1\r\nHost: gw.test\r\n{headers}\r\n{body}")
        .into_bytes()
}

pub fn ok() -> Reply {
    Reply::keep(&b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"[..])
}

pub fn ok_head() -> Reply {
    Reply::keep(&b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n"[..])
}

/// Every case of the corpus, in a fixed order.
pub fn all() -> Vec<Case> {
    let mut cases = requests::cases();
    cases.extend(attacks::cases());
    cases.extend(responses::cases());
    cases
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_corpus_is_large_and_every_name_is_unique() {
        let cases = all();
        assert!(cases.len() >= 300, "{} cases", cases.len());
        let mut names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before, "duplicate case names");
    }

    #[test]
    fn every_case_names_the_service_and_has_a_script() {
        for case in all() {
            let text = String::from_utf8_lossy(&case.bytes()).to_string();
            assert!(
                text.contains("/gateway/")
                    || text.contains("CONNECT ")
                    || text.contains(" * HTTP")
                    || text.contains(" /other/"),
                "{}",
                case.name
            );
            assert!(!case.replies.is_empty(), "{}", case.name);
        }
    }
}
