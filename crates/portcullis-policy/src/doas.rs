//! Knox's identity assertion: the principal as `?doAs=`, any client-supplied
//! `doAs` removed (a client must not choose whom the backend acts as).

use std::borrow::Cow;

/// The backend query for `query` (the client's, without '?') with every
/// `doAs` parameter (any case, as Hadoop services read it) removed and
/// `doAs=<principal>` appended, percent-encoded.
pub fn with_doas(query: Option<&str>, principal: &str) -> String {
    let mut out = String::with_capacity(query.map_or(0, str::len) + principal.len() + 6);
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let name = pair.split_once('=').map_or(pair, |(name, _)| name);
        let decoded: Cow<'_, str> = url::form_urlencoded::parse(name.as_bytes())
            .next()
            .map_or(Cow::Borrowed(name), |(n, _)| n);
        if decoded.eq_ignore_ascii_case("doas") {
            continue;
        }
        out.push_str(pair);
        out.push('&');
    }
    out.push_str("doAs=");
    out.extend(url::form_urlencoded::byte_serialize(principal.as_bytes()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_principal_replaces_every_client_doas() {
        assert_eq!(with_doas(None, "alice"), "doAs=alice");
        assert_eq!(with_doas(Some(""), "alice"), "doAs=alice");
        assert_eq!(
            with_doas(
                Some("op=LISTSTATUS&doAs=root&DOAS=hdfs&d%6fAs=x&user.name=x"),
                "alice"
            ),
            "op=LISTSTATUS&user.name=x&doAs=alice"
        );
    }

    #[test]
    fn the_principal_is_percent_encoded() {
        assert_eq!(
            with_doas(Some("a=1"), "bob smith&doAs=root"),
            "a=1&doAs=bob+smith%26doAs%3Droot"
        );
        assert_eq!(with_doas(None, "é/x"), "doAs=%C3%A9%2Fx");
    }
}
