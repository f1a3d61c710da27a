//! A backend's response head kept as it came: its bytes, where each field
//! lies, and the edits made to it (fields dropped, values replaced). The own
//! engine writes the client's head straight from it; an `http::HeaderMap`
//! is built only where an engine needs one (`RawResponseHead::to_header_map`,
//! `ProxyResponse::into_response`). Building the map and walking it again to
//! write cost about 4,000 instructions per response (callgrind).

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode, Version};

use super::headers::{connection_listed, names_no_field};
use crate::body::ProxyBody;

/// What the gateway does with a field, decided once from its name when the
/// head is parsed, so no edit compares names again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Other,
    ContentLength,
    TransferEncoding,
    Connection,
    /// Any other hop-by-hop name (`headers::is_hop_by_hop_name`).
    HopByHop,
    Location,
    ContentLocation,
    Date,
}

impl FieldKind {
    /// The kind of a field named `name`, in lowercase (a map's names, and a
    /// raw head's, lowercased by the engine's head scan). The hop-by-hop rule
    /// of both forms (`headers::is_hop_by_hop_name`): the fixed set of RFC
    /// 9110 §7.6.1 (Connection, TE, Trailer, Transfer-Encoding, Upgrade,
    /// Proxy-Authorization), Keep-Alive and `proxy-*`.
    pub fn of(name: &[u8]) -> FieldKind {
        // The length first, then at most two comparisons of known length
        // (word compares, no loop): this runs for every field.
        let kind = match name.len() {
            2 if name == b"te" => FieldKind::HopByHop,
            4 if name == b"date" => FieldKind::Date,
            7 if name == b"trailer" || name == b"upgrade" => FieldKind::HopByHop,
            8 if name == b"location" => FieldKind::Location,
            10 if name == b"connection" => FieldKind::Connection,
            10 if name == b"keep-alive" => FieldKind::HopByHop,
            14 if name == b"content-length" => FieldKind::ContentLength,
            16 if name == b"content-location" => FieldKind::ContentLocation,
            17 if name == b"transfer-encoding" => FieldKind::TransferEncoding,
            _ => FieldKind::Other,
        };
        if kind == FieldKind::Other && name.starts_with(b"proxy-") {
            return FieldKind::HopByHop;
        }
        kind
    }

    /// This kind's bit in a set of kinds.
    fn bit(self) -> u16 {
        1 << self as u16
    }

    pub(crate) fn is_hop_by_hop(self) -> bool {
        matches!(
            self,
            FieldKind::Connection | FieldKind::TransferEncoding | FieldKind::HopByHop
        )
    }
}

/// One field line: where its name and value (without surrounding
/// whitespace) lie in the head's bytes.
#[derive(Debug, Clone, Copy)]
pub struct RawField {
    name: (u32, u32),
    value: (u32, u32),
    kind: FieldKind,
    dropped: bool,
    /// The value is in the head's replacement list.
    replaced: bool,
}

impl RawField {
    /// The field whose lowercase name and value lie at `name` and `value`
    /// of the head's bytes, of `kind` (the engine's scan finds all three).
    pub fn new(name: (u32, u32), value: (u32, u32), kind: FieldKind) -> RawField {
        RawField {
            name,
            value,
            kind,
            dropped: false,
            replaced: false,
        }
    }

    pub fn kind(&self) -> FieldKind {
        self.kind
    }

    /// Where the name starts in the head.
    pub fn name_start(&self) -> usize {
        self.name.0 as usize
    }
}

/// A kept field of a raw head.
#[derive(Debug, Clone, Copy)]
pub struct KeptField<'a> {
    pub kind: FieldKind,
    /// In lowercase.
    pub name: &'a [u8],
    /// A replacement where there is one.
    pub value: &'a [u8],
    /// The whole line's range in `RawResponseHead::bytes` when the head
    /// holds it as the client gets it (`name: value` and CRLF).
    pub line: Option<(usize, usize)>,
}

/// A field's name or value was not what `http` accepts. The strict parse
/// (httparse's token and value sets, which are `http`'s) lets none through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a response field is not a valid HTTP field")]
pub struct BadField;

/// A response head as the backend sent it, with the edits made since.
#[derive(Debug, Clone)]
pub struct RawResponseHead {
    pub status: StatusCode,
    pub version: Version,
    /// The whole head, status line to blank line.
    bytes: Bytes,
    fields: Vec<RawField>,
    /// The kinds of the fields as received (`FieldKind::bit`): a kind not
    /// in it is not looked for field by field.
    kinds: u16,
    /// Values that replace a field's own, by field index. Rare (a repeated
    /// Content-Length collapsed, a Location rewritten): empty, it costs no
    /// allocation.
    replaced: Vec<(usize, HeaderValue)>,
    /// The whole body, when all of it came with the head (nearly every
    /// small response): it is relayed from here, without a body stream.
    whole_body: Option<Bytes>,
}

impl RawResponseHead {
    /// `fields` lie in `bytes`, classified (`RawField::classify`).
    pub fn new(
        status: StatusCode,
        version: Version,
        bytes: Bytes,
        fields: Vec<RawField>,
    ) -> RawResponseHead {
        let kinds = fields.iter().fold(0, |kinds, f| kinds | f.kind.bit());
        RawResponseHead {
            status,
            version,
            bytes,
            fields,
            kinds,
            replaced: Vec::new(),
            whole_body: None,
        }
    }

    /// Keeps `body` as the response's whole body: the response then needs
    /// no body stream (`engine::backend` leaves its body empty).
    pub fn set_whole_body(&mut self, body: Bytes) {
        self.whole_body = Some(body);
    }

    pub fn has_whole_body(&self) -> bool {
        self.whole_body.is_some()
    }

    pub fn take_whole_body(&mut self) -> Option<Bytes> {
        self.whole_body.take()
    }

    fn name_of(&self, field: &RawField) -> &[u8] {
        &self.bytes[field.name.0 as usize..field.name.1 as usize]
    }

    fn value_at(&self, index: usize, field: &RawField) -> &[u8] {
        if field.replaced {
            if let Some((_, value)) = self.replaced.iter().find(|(i, _)| *i == index) {
                return value.as_bytes();
            }
        }
        &self.bytes[field.value.0 as usize..field.value.1 as usize]
    }

    /// The fields still kept, in the order received.
    pub fn kept(&self) -> impl Iterator<Item = KeptField<'_>> {
        self.fields
            .iter()
            .enumerate()
            .filter(|(_, field)| !field.dropped)
            .map(|(index, field)| KeptField {
                kind: field.kind,
                name: self.name_of(field),
                value: self.value_at(index, field),
                line: self.line_of(field),
            })
    }

    /// Where the field's whole line lies in `bytes()` when it is exactly
    /// `name: value` and CRLF (one space, the value its own): the client's
    /// line then is a copy of it.
    fn line_of(&self, field: &RawField) -> Option<(usize, usize)> {
        let (name_end, value_start) = (field.name.1 as usize, field.value.0 as usize);
        let value_end = field.value.1 as usize;
        let plain = !field.replaced
            && value_start == name_end + 2
            && self.bytes.get(name_end..value_start) == Some(b": ")
            && self.bytes.get(value_end..value_end + 2) == Some(b"\r\n");
        plain.then_some((field.name.0 as usize, value_end + 2))
    }

    /// The head's bytes (names lowercased), which `KeptField::line` indexes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The fields of `kind` as received, with their indices; none at all
    /// when no field had that kind.
    fn of_kind(&self, kind: FieldKind) -> impl Iterator<Item = (usize, &RawField)> {
        let fields = match self.kinds & kind.bit() {
            0 => &[][..],
            _ => &self.fields[..],
        };
        fields
            .iter()
            .enumerate()
            .filter(move |(_, field)| field.kind == kind)
    }

    /// The kept values of the fields of `kind`, in order.
    pub fn values(&self, kind: FieldKind) -> impl Iterator<Item = &[u8]> {
        self.of_kind(kind)
            .filter(|(_, field)| !field.dropped)
            .map(|(index, field)| self.value_at(index, field))
    }

    /// Whether a field of `kind` is kept.
    pub fn has(&self, kind: FieldKind) -> bool {
        self.of_kind(kind).any(|(_, field)| !field.dropped)
    }

    /// Drops every field of `kind`.
    pub fn drop_kind(&mut self, kind: FieldKind) {
        if self.kinds & kind.bit() == 0 {
            return;
        }
        for field in &mut self.fields {
            field.dropped |= field.kind == kind;
        }
    }

    /// The first kept field of `kind` gets `value`, the others of its kind
    /// go (what `HeaderMap::insert` does to a name that has fields). Nothing
    /// happens when no field of `kind` is kept.
    pub fn set(&mut self, kind: FieldKind, value: HeaderValue) {
        let mut first = None;
        for (index, field) in self.fields.iter_mut().enumerate() {
            if field.kind != kind || field.dropped {
                continue;
            }
            match first {
                None => first = Some(index),
                Some(_) => field.dropped = true,
            }
        }
        if let Some(index) = first {
            self.fields[index].replaced = true;
            self.replaced.retain(|(i, _)| *i != index);
            self.replaced.push((index, value));
        }
    }

    /// Drops the hop-by-hop fields and the ones Connection lists, by the
    /// rules `headers::strip_hop_by_hop` applies to a map (never keeping an
    /// upgrade: a `101` head goes on as a map).
    pub fn strip_hop_by_hop(&mut self) {
        const HOP_BY_HOP: u16 = (1 << FieldKind::Connection as u16)
            | (1 << FieldKind::TransferEncoding as u16)
            | (1 << FieldKind::HopByHop as u16);
        if self.kinds & HOP_BY_HOP == 0 {
            return;
        }
        let mut listed = false;
        for field in &mut self.fields {
            if !field.kind.is_hop_by_hop() {
                continue;
            }
            if field.kind == FieldKind::Connection {
                let value = &self.bytes[field.value.0 as usize..field.value.1 as usize];
                listed |= !names_no_field(value);
            }
            field.dropped = true;
        }
        if listed {
            self.drop_connection_listed();
        }
    }

    /// Drops the fields whose names a Connection field lists (any case).
    fn drop_connection_listed(&mut self) {
        let mut doomed = Vec::new();
        for connection in self
            .fields
            .iter()
            .filter(|f| f.kind == FieldKind::Connection)
        {
            let value = &self.bytes[connection.value.0 as usize..connection.value.1 as usize];
            for token in connection_listed(value, false) {
                for (index, field) in self.fields.iter().enumerate() {
                    if self.name_of(field).eq_ignore_ascii_case(token) {
                        doomed.push(index);
                    }
                }
            }
        }
        for index in doomed {
            self.fields[index].dropped = true;
        }
    }

    /// The kept fields as a map, in the order received, with `room` for
    /// more: for an engine that takes a map (hyper's server, an interim
    /// head). Values share the head's bytes.
    pub fn to_header_map(&self, room: usize) -> Result<HeaderMap, BadField> {
        let mut headers = HeaderMap::with_capacity(self.fields.len() + room);
        for (index, field) in self.fields.iter().enumerate() {
            if field.dropped {
                continue;
            }
            let name = HeaderName::from_bytes(self.name_of(field)).map_err(|_| BadField)?;
            let replacement = self.replaced.iter().find(|(i, _)| *i == index);
            let value = match replacement.filter(|_| field.replaced) {
                Some((_, value)) => value.clone(),
                None => {
                    let (start, end) = (field.value.0 as usize, field.value.1 as usize);
                    HeaderValue::from_maybe_shared(self.bytes.slice(start..end))
                        .map_err(|_| BadField)?
                }
            };
            headers.append(name, value);
        }
        Ok(headers)
    }
}

/// How many boxed heads a thread keeps for reuse: a worker has at most a
/// few responses between parse and write at once.
const KEEP_HEADS: usize = 16;
/// A field list grown past this by an unusual head is freed, not kept.
const KEEP_FIELDS_UP_TO: usize = 64;

thread_local! {
    /// Written heads, emptied, each with its field list's room. A
    /// response's head box and field list were two allocations and two
    /// frees per response, about 190 instructions (callgrind).
    // The boxes are what is reused: a response carries its head boxed.
    #[allow(clippy::vec_box)]
    static KEPT_HEADS: std::cell::RefCell<Vec<Box<RawResponseHead>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// An empty field list for a response head: the room of a kept head's if
/// this thread has one (that head's box then takes the head, `boxed`).
pub fn take_fields() -> Vec<RawField> {
    KEPT_HEADS
        .with_borrow_mut(|kept| kept.last_mut().map(|head| std::mem::take(&mut head.fields)))
        .filter(|fields| fields.capacity() > 0)
        .unwrap_or_else(|| Vec::with_capacity(12))
}

impl RawResponseHead {
    /// The head in a box, a kept one if this thread has one.
    pub fn boxed(self) -> Box<RawResponseHead> {
        match KEPT_HEADS.with_borrow_mut(Vec::pop) {
            Some(mut kept) => {
                *kept = self;
                kept
            }
            None => Box::new(self),
        }
    }

    /// Done with: the box and its field list's room are kept for the next
    /// response on this thread; the head's bytes are released now.
    pub fn recycle(mut self: Box<Self>) {
        if self.fields.capacity() > KEEP_FIELDS_UP_TO {
            return;
        }
        self.fields.clear();
        if !self.replaced.is_empty() {
            self.replaced = Vec::new();
        }
        self.bytes = Bytes::new();
        self.whole_body = None;
        KEPT_HEADS.with_borrow_mut(|kept| {
            if kept.len() < KEEP_HEADS {
                kept.push(self);
            }
        });
    }
}

/// How many heads this thread keeps (for tests).
#[cfg(test)]
pub(crate) fn kept_heads() -> usize {
    KEPT_HEADS.with_borrow(Vec::len)
}

/// The response the client gets. When the backend's head was kept raw
/// (the own engine's HTTP/1 client side), `raw_head` holds its fields and
/// `response`'s map only the fields the gateway added after them (a sticky
/// cookie, `Connection: close`). Boxed: the response is held in the
/// request's futures, whose size is bounded (`engine::server`'s size test).
pub struct ProxyResponse {
    pub response: Response<ProxyBody>,
    pub raw_head: Option<Box<RawResponseHead>>,
}

impl ProxyResponse {
    pub fn status(&self) -> StatusCode {
        self.response.status()
    }

    /// One `http` response, the raw head's fields first and then the map's:
    /// for engines that take one.
    pub fn into_response(self) -> Response<ProxyBody> {
        let ProxyResponse {
            mut response,
            raw_head,
        } = self;
        let Some(mut raw) = raw_head else {
            return response;
        };
        if let Some(body) = raw.take_whole_body() {
            *response.body_mut() = crate::body::full(body);
        }
        let added = std::mem::take(response.headers_mut());
        // A field the strict parse let through always converts; one that
        // did not would be left out rather than fail the response.
        let mut headers = raw.to_header_map(added.len()).unwrap_or_default();
        let mut last = None;
        for (name, value) in added {
            last = name.or(last);
            if let Some(name) = &last {
                headers.append(name.clone(), value);
            }
        }
        *response.headers_mut() = headers;
        response
    }
}

impl From<Response<ProxyBody>> for ProxyResponse {
    fn from(response: Response<ProxyBody>) -> ProxyResponse {
        ProxyResponse {
            response,
            raw_head: None,
        }
    }
}

#[cfg(test)]
#[path = "response_head_tests.rs"]
mod tests;
