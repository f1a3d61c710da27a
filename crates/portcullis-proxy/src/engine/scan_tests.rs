use super::*;

/// Status code, fields as (name, value), head length.
type Read = (u16, Vec<(String, String)>, usize);

fn whole_response(head: &[u8]) -> Scan<Read> {
    let mut buf = head.to_vec();
    let Some(line) = status_line(&buf)? else {
        return Ok(None);
    };
    let mut found = Vec::new();
    let end = fields(&mut buf, line.end, |buf, f| {
        let text = |span: Span| String::from_utf8_lossy(in_buf(buf, span)).into_owned();
        found.push((text(f.name), text(f.value)));
        Ok(())
    })?;
    Ok(end.map(|len| (line.code, found, len)))
}

#[test]
fn a_response_head_is_read_with_lowercase_names_and_trimmed_values() {
    let head = b"HTTP/1.1 200 OK\r\nServer: nginx \r\nX-Empty:\r\nContent-Length:\t19\r\n\r\nbody";
    let (code, fields, len) = whole_response(head).unwrap().unwrap();
    assert_eq!(code, 200);
    assert_eq!(len, head.len() - 4);
    let expected = [
        ("server", "nginx"),
        ("x-empty", ""),
        ("content-length", "19"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    assert_eq!(fields, expected);
    for line in [&b"HTTP/1.0 404\r\n\r\n"[..], b"HTTP/1.1 204 \r\n\r\n"] {
        assert!(whole_response(line).unwrap().is_some(), "{line:?}");
    }
}

#[test]
fn every_prefix_of_a_valid_head_asks_for_more_and_every_bad_byte_is_refused() {
    let head = b"HTTP/1.1 200 OK\r\nA: b\r\nC-d: e f\r\n\r\n";
    for cut in 0..head.len() {
        assert_eq!(whole_response(&head[..cut]), Ok(None), "cut at {cut}");
    }
    let cases: [(&[u8], Flaw); 9] = [
        // httparse skips empty lines before a status line; this scan does not.
        (b"\r\nHTTP/1.1 200 OK\r\n\r\n", Flaw::StartLine),
        (b"HTTP/1.1 200 OK\nA: b\r\n\r\n", Flaw::BareLf),
        (b"HTTP/1.1 200 OK\r\nA: b\n\r\n", Flaw::BareLf),
        (b"HTTP/1.1 200 OK\r\nA: b\r\n\n", Flaw::BareLf),
        (b"HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n", Flaw::BareCr),
        (b"HTTP/1.1 200 OK\r\nA : b\r\n\r\n", Flaw::FieldName),
        (b"HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n", Flaw::ObsFold),
        (b"HTTP/1.1 200 OK\r\nA: b\x7f\r\n\r\n", Flaw::FieldValue),
        (b"HTTP/1.2 200 OK\r\n\r\n", Flaw::StartLine),
    ];
    for (head, flaw) in cases {
        assert_eq!(
            whole_response(head),
            Err(flaw),
            "{:?}",
            String::from_utf8_lossy(head)
        );
    }
}

#[test]
fn a_request_line_allows_two_empty_lines_before_it_and_no_more() {
    let bytes = b"\r\n\r\nGET /a?b HTTP/1.0\r\n";
    let line = request_line(bytes).unwrap().unwrap();
    assert_eq!(
        (line.method, line.target, line.http10),
        ((4, 7), (8, 12), true)
    );
    assert_eq!(line.end, bytes.len());
    assert_eq!(
        request_line(b"\r\n\r\n\r\nGET / HTTP/1.1\r\n").unwrap_err(),
        Flaw::StartLine
    );
    for bad in [
        &b"GET  / HTTP/1.1\r\n"[..],
        b"GET /\x80 HTTP/1.1\r\n",
        b"GET / HTTP/1.1 \r\n",
    ] {
        assert!(request_line(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn a_field_past_the_hundredth_is_refused() {
    let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..MAX_HEADERS {
        head.extend_from_slice(format!("x-{i}: v\r\n").as_bytes());
    }
    let mut full = head.clone();
    full.extend_from_slice(b"\r\n");
    assert!(whole_response(&full).unwrap().is_some());
    head.extend_from_slice(b"x-last: v\r\n\r\n");
    assert_eq!(whole_response(&head), Err(Flaw::TooManyFields));
}
