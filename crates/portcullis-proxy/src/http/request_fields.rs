//! A client request's head as the pipeline holds it. hyper's server hands
//! over an `http::HeaderMap`; the own engine keeps the fields as they came
//! (the head's bytes and where each field lies) with the gateway's edits
//! beside them, as `RawResponseHead` does for responses. Building a map from
//! a parsed head, dropping it and walking it again to write the backend's
//! head cost more than the rest of the head's handling (callgrind, issue
//! 13): a map is built from raw fields only where one is needed
//! (`[service.auth]`, a WebSocket check, hyper's client).
//!
//! Names are compared as given: a raw head's names are lowercased by the
//! engine's scan, a map's are lowercase, and the names asked for here are
//! `HeaderName`s (lowercase too).

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{request, Method, Version};

use super::headers::{
    client_forwarded_for, connection_listed, is_gateway_owned_name, is_hop_by_hop_name,
    names_no_field,
};
use super::target::RequestTarget;

/// The request head the pipeline takes from an engine.
#[derive(Debug)]
pub struct ClientHead {
    pub method: Method,
    pub target: RequestTarget,
    pub version: Version,
    pub headers: RequestFields,
}

impl ClientHead {
    /// hyper's parts (their extensions are not used past the edge).
    pub fn from_parts(parts: request::Parts) -> ClientHead {
        ClientHead {
            method: parts.method,
            target: RequestTarget::from_uri(parts.uri),
            version: parts.version,
            headers: RequestFields::Map(parts.headers),
        }
    }
}

/// A request's fields: a map, or the raw head's fields with the edits made.
#[derive(Debug)]
pub enum RequestFields {
    Map(HeaderMap),
    Raw(RawFields),
}

/// One field of a raw head: where its name and value (without surrounding
/// whitespace) lie in the head's bytes.
#[derive(Debug, Clone, Copy)]
pub struct RawField {
    name: (u32, u32),
    value: (u32, u32),
    dropped: bool,
}

impl RawField {
    pub fn new(name: (u32, u32), value: (u32, u32)) -> RawField {
        RawField {
            name,
            value,
            dropped: false,
        }
    }
}

/// The client's fields as received, and the fields the gateway set, which
/// come after them.
#[derive(Debug)]
pub struct RawFields {
    /// The whole head, names lowercased.
    bytes: Bytes,
    fields: Vec<RawField>,
    added: Vec<(HeaderName, HeaderValue)>,
}

impl RawFields {
    /// `fields` lie in `bytes` with lowercase names, in the value set
    /// `http` accepts (the engine's scan checks both).
    pub fn new(bytes: Bytes, fields: Vec<RawField>) -> RawFields {
        RawFields {
            bytes,
            fields,
            added: Vec::new(),
        }
    }

    fn name_of(&self, field: &RawField) -> &[u8] {
        &self.bytes[field.name.0 as usize..field.name.1 as usize]
    }

    fn value_of(&self, field: &RawField) -> &[u8] {
        &self.bytes[field.value.0 as usize..field.value.1 as usize]
    }

    /// Drops the client's fields named `name` and the gateway's.
    fn drop_named(&mut self, name: &[u8]) {
        for index in 0..self.fields.len() {
            let field = self.fields[index];
            if !field.dropped && self.name_of(&field) == name {
                self.fields[index].dropped = true;
            }
        }
        self.added.retain(|(n, _)| n.as_str().as_bytes() != name);
    }

    /// Drops the fields whose names a Connection field lists (any case).
    fn drop_connection_listed(&mut self, keep_upgrade: bool) {
        let mut doomed = Vec::new();
        for connection in self
            .fields
            .iter()
            .filter(|f| !f.dropped && self.name_of(f) == b"connection")
        {
            for token in connection_listed(self.value_of(connection), keep_upgrade) {
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

    /// `headers::strip_hop_by_hop` on the raw fields, decision for decision.
    fn strip_hop_by_hop(&mut self, keep_upgrade: bool) {
        let (mut connection, mut more) = (false, false);
        for field in self.fields.iter().filter(|f| !f.dropped) {
            let name = self.name_of(field);
            if !is_hop_by_hop_name(name) {
                continue;
            }
            if name == b"connection" && names_no_field(self.value_of(field)) {
                connection = true;
            } else {
                more = true;
            }
        }
        if more {
            let kept = |name: &[u8]| keep_upgrade && (name == b"upgrade" || name == b"connection");
            self.drop_connection_listed(keep_upgrade);
            for index in 0..self.fields.len() {
                let name = self.name_of(&self.fields[index]);
                if is_hop_by_hop_name(name) && !kept(name) {
                    self.fields[index].dropped = true;
                }
            }
        } else if connection {
            self.drop_named(b"connection");
        }
    }
}

/// No fields. Raw rather than an empty map: the engine takes each request's
/// fields out to recycle them, and dropping the empty raw value left behind
/// costs a few instructions where an empty `HeaderMap`'s drop costs about 60
/// (callgrind).
impl Default for RequestFields {
    fn default() -> RequestFields {
        RequestFields::Raw(RawFields::new(Bytes::new(), Vec::new()))
    }
}

impl RequestFields {
    /// Every field in order: the client's kept ones, then the gateway's.
    pub fn iter(&self) -> Iter<'_> {
        match self {
            RequestFields::Map(map) => Iter::Map(map.iter()),
            RequestFields::Raw(raw) => Iter::Raw { raw, at: 0 },
        }
    }

    /// The values of the fields named `name`, in order.
    pub fn values<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> + 'a {
        let (map, raw) = match self {
            RequestFields::Map(map) => (Some(map.get_all(name).iter()), None),
            RequestFields::Raw(_) => (None, Some(self.iter())),
        };
        let wanted = name.as_str().as_bytes();
        map.into_iter().flatten().map(HeaderValue::as_bytes).chain(
            raw.into_iter()
                .flatten()
                .filter(move |(n, _)| *n == wanted)
                .map(|(_, v)| v),
        )
    }

    /// The first value of the fields named `name`.
    pub fn get(&self, name: &HeaderName) -> Option<&[u8]> {
        match self {
            RequestFields::Map(map) => map.get(name).map(HeaderValue::as_bytes),
            RequestFields::Raw(_) => {
                let wanted = name.as_str().as_bytes();
                self.iter().find(|(n, _)| *n == wanted).map(|(_, v)| v)
            }
        }
    }

    /// The first value of the fields named `name` in any case: for names
    /// from configuration.
    pub fn get_any_case(&self, name: &str) -> Option<&[u8]> {
        match self {
            RequestFields::Map(map) => map.get(name).map(HeaderValue::as_bytes),
            RequestFields::Raw(_) => self
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
                .map(|(_, v)| v),
        }
    }

    pub fn contains(&self, name: &HeaderName) -> bool {
        self.get(name).is_some()
    }

    /// Whether any field's name passes `test`: a pass over the names costs
    /// less than a map's hash of a configured name (callgrind).
    pub fn any_name(&self, test: impl Fn(&[u8]) -> bool) -> bool {
        self.iter().any(|(name, _)| test(name))
    }

    /// Removes every field named `name`.
    pub fn remove(&mut self, name: &HeaderName) {
        match self {
            RequestFields::Map(map) => {
                map.remove(name);
            }
            RequestFields::Raw(raw) => raw.drop_named(name.as_str().as_bytes()),
        }
    }

    /// `name` gets `value` alone, as `HeaderMap::insert` does. In a raw
    /// head the field goes after the client's: the order of fields with
    /// different names carries no meaning (RFC 9110 §5.3).
    pub fn insert(&mut self, name: HeaderName, value: HeaderValue) {
        match self {
            RequestFields::Map(map) => {
                map.insert(name, value);
            }
            RequestFields::Raw(raw) => {
                raw.drop_named(name.as_str().as_bytes());
                raw.added.push((name, value));
            }
        }
    }

    /// Removes the hop-by-hop fields (`headers::strip_hop_by_hop`). With
    /// `keep_upgrade`, `Connection: upgrade` and `Upgrade` stay.
    pub fn strip_hop_by_hop(&mut self, keep_upgrade: bool) {
        match self {
            RequestFields::Map(map) => super::headers::strip_hop_by_hop(map, keep_upgrade),
            RequestFields::Raw(raw) => {
                raw.strip_hop_by_hop(keep_upgrade);
                if keep_upgrade {
                    self.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
                }
            }
        }
    }

    /// Removes the client's copies of what the gateway owns and returns its
    /// X-Forwarded-For (`headers::remove_client_forwarding`).
    pub fn remove_client_forwarding(&mut self) -> Option<HeaderValue> {
        let raw = match self {
            RequestFields::Map(map) => return super::headers::remove_client_forwarding(map),
            RequestFields::Raw(raw) => raw,
        };
        // Most requests carry none: one pass over the names decides.
        if !raw
            .fields
            .iter()
            .any(|f| !f.dropped && is_gateway_owned_name(raw.name_of(f)))
        {
            return None;
        }
        let prior_for = client_forwarded_for(
            raw.fields
                .iter()
                .filter(|f| !f.dropped && raw.name_of(f) == b"x-forwarded-for")
                .map(|f| raw.value_of(f)),
        );
        for index in 0..raw.fields.len() {
            if is_gateway_owned_name(raw.name_of(&raw.fields[index])) {
                raw.fields[index].dropped = true;
            }
        }
        prior_for
    }

    /// True when the request asks for a protocol upgrade over HTTP/1.1
    /// (`headers::is_upgrade_request`).
    pub fn is_upgrade_request(&self) -> bool {
        match self {
            RequestFields::Map(map) => super::headers::is_upgrade_request(map),
            RequestFields::Raw(_) => {
                self.contains(&header::UPGRADE)
                    && self
                        .values(&header::CONNECTION)
                        .filter_map(visible_str)
                        .flat_map(|v| v.split(','))
                        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
            }
        }
    }

    /// The fields as a map with `room` for more. A raw field's value shares
    /// the head's bytes.
    pub fn to_map(&self, room: usize) -> HeaderMap {
        let raw = match self {
            RequestFields::Map(map) => {
                let mut map = map.clone();
                map.reserve(room);
                return map;
            }
            RequestFields::Raw(raw) => raw,
        };
        let mut map = HeaderMap::with_capacity(raw.fields.len() + raw.added.len() + room);
        for field in raw.fields.iter().filter(|f| !f.dropped) {
            // The scan's name and value sets are `http`'s: every field
            // converts. One that did not would be left out, never forwarded
            // in a form the checks did not see.
            let name = HeaderName::from_bytes(raw.name_of(field));
            let (start, end) = (field.value.0 as usize, field.value.1 as usize);
            let value = HeaderValue::from_maybe_shared(raw.bytes.slice(start..end));
            if let (Ok(name), Ok(value)) = (name, value) {
                map.append(name, value);
            }
        }
        for (name, value) in &raw.added {
            map.append(name.clone(), value.clone());
        }
        map
    }

    /// The fields as a map (with `room` for more), turning raw fields into
    /// one first: for the policies (`[service.auth]`), which read maps.
    pub fn map_mut(&mut self, room: usize) -> &mut HeaderMap {
        if let RequestFields::Raw(_) = self {
            let map = RequestFields::Map(self.to_map(room));
            // The raw list goes back to the thread's spares, as `recycle`
            // gives it back: an auth service's request allocates none.
            std::mem::replace(self, map).recycle();
        }
        match self {
            RequestFields::Map(map) => map,
            RequestFields::Raw(_) => unreachable!("turned into a map above"),
        }
    }

    /// Keeps a raw head's field list for the next head on this thread.
    pub fn recycle(self) {
        if let RequestFields::Raw(raw) = self {
            give_back_fields(raw.fields);
        }
    }
}

/// The fields of a `RequestFields`, in order, as name and value bytes.
pub enum Iter<'a> {
    Map(http::header::Iter<'a, HeaderValue>),
    Raw { raw: &'a RawFields, at: usize },
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Map(map) => map
                .next()
                .map(|(name, value)| (name.as_str().as_bytes(), value.as_bytes())),
            Iter::Raw { raw, at } => loop {
                let index = *at;
                *at += 1;
                match raw.fields.get(index) {
                    Some(field) if field.dropped => continue,
                    Some(field) => return Some((raw.name_of(field), raw.value_of(field))),
                    None => {
                        let (name, value) = raw.added.get(index - raw.fields.len())?;
                        return Some((name.as_str().as_bytes(), value.as_bytes()));
                    }
                }
            },
        }
    }
}

/// Request field lists kept per thread: one per request in flight, 20
/// bytes a field. A new list per head was an allocation per request.
const KEEP_FIELDS: usize = 16;
/// Lists with room for more fields than this are dropped, not kept.
const KEEP_FIELDS_UP_TO: usize = 128;

thread_local! {
    static FIELDS: std::cell::RefCell<Vec<Vec<RawField>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// An empty field list for a raw request head: a kept one if there is one.
pub fn take_fields() -> Vec<RawField> {
    FIELDS
        .with_borrow_mut(Vec::pop)
        .unwrap_or_else(|| Vec::with_capacity(16))
}

/// Keeps a request's field list, emptied, for the next head on this thread.
pub fn give_back_fields(mut fields: Vec<RawField>) {
    if fields.capacity() > KEEP_FIELDS_UP_TO {
        return;
    }
    fields.clear();
    FIELDS.with_borrow_mut(|kept| {
        if kept.len() < KEEP_FIELDS {
            kept.push(fields);
        }
    });
}

/// How many field lists this thread keeps (for tests).
#[cfg(test)]
pub fn kept_field_lists() -> usize {
    FIELDS.with_borrow(Vec::len)
}

/// The value as text when it is what `HeaderValue::to_str` accepts
/// (HTAB and visible ASCII).
pub fn visible_str(value: &[u8]) -> Option<&str> {
    let visible = value
        .iter()
        .all(|&b| b == b'\t' || (b' '..0x7f).contains(&b));
    visible.then(|| std::str::from_utf8(value).ok()).flatten()
}

#[cfg(test)]
#[path = "request_fields_tests.rs"]
mod tests;
