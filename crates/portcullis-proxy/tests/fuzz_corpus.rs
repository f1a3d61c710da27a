//! The fuzz targets of this crate over the committed corpus and regressions
//! (fuzz/corpus/<target>/, fuzz/regressions/<target>/): the same functions
//! `cargo fuzz` runs, so every input the fuzzer kept is checked in each
//! ordinary test run, without nightly. See docs/fuzzing.md.

use std::path::PathBuf;

/// The input under fuzz/regressions/ at `path` (`TARGET/NAME`).
fn regression(path: &str) -> Vec<u8> {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions");
    std::fs::read(fuzz.join(path)).expect("regression input")
}

fn run_corpus(target: &str, check: fn(&[u8])) {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    portcullis_config::fuzzing::run_corpus(&fuzz, target, check);
}

#[test]
fn sticky_cookie_corpus() {
    run_corpus("sticky_cookie", portcullis_proxy::fuzzing::sticky_cookie);
}

#[test]
fn path_rule_corpus() {
    run_corpus("path_rule", portcullis_proxy::fuzzing::path_rule);
}

#[test]
fn host_value_corpus() {
    run_corpus("host_value", portcullis_proxy::fuzzing::host_value);
}

#[test]
fn client_address_corpus() {
    run_corpus("client_address", portcullis_proxy::fuzzing::client_address);
}

#[test]
fn forwarded_headers_corpus() {
    run_corpus(
        "forwarded_headers",
        portcullis_proxy::fuzzing::forwarded_headers,
    );
}

#[test]
fn request_head_corpus() {
    run_corpus("request_head", portcullis_proxy::fuzzing::request_head);
}

#[test]
fn engine_request_head_corpus() {
    run_corpus(
        "engine_request_head",
        portcullis_proxy::fuzzing::engine_request_head,
    );
}

#[test]
fn engine_response_head_corpus() {
    run_corpus(
        "engine_response_head",
        portcullis_proxy::fuzzing::engine_response_head,
    );
}

#[test]
fn engine_chunked_corpus() {
    run_corpus("engine_chunked", portcullis_proxy::fuzzing::engine_chunked);
}

// Bugs the fuzz targets found (docs/fuzzing.md), fixed; each test runs the
// target on the input under fuzz/regressions/ that reproduced it.

/// A request without Host (HTTP/1.0, origin-form) gives `add_forwarded` no
/// host, and the client's own `X-Forwarded-Host: evil.example` reaches the
/// backend, against §9 ("X-Forwarded-* are overwritten").
#[test]
fn no_host_keeps_client_x_forwarded_host() {
    let data = regression("forwarded_headers/no-host-keeps-client-x-forwarded-host");
    portcullis_proxy::fuzzing::forwarded_headers_strict(&data);
}

/// A Host with obs-text before its port (`[\xff…::1}:8080`): the check
/// read such a Host as text, found none and expected the listener's port,
/// while the gateway reads the digits after the last colon from the bytes
/// and forwards `X-Forwarded-Port: 8080`. The check was wrong, not the
/// gateway: it now reads the port from the bytes too.
#[test]
fn obs_text_host_names_its_port() {
    let data = regression("forwarded_headers/obs-text-host-names-its-port");
    portcullis_proxy::fuzzing::forwarded_headers_strict(&data);
}

/// `request_cookie` skips a Cookie header that is not visible ASCII, so a
/// sticky tag in the same header as a UTF-8 cookie (`lang=français`, as
/// browsers send it) is not seen: the client loses its backend on every
/// request (the balancer's affinity cookie likewise).
#[test]
fn sticky_tag_beside_non_ascii_cookie() {
    let data = regression("sticky_cookie/tag-beside-non-ascii-cookie");
    portcullis_proxy::fuzzing::sticky_cookie_strict(&data);
}

/// Chunk extensions follow RFC 9112 §7.1.1's grammar (`;` token [`=` token
/// / quoted-string], whitespace only around `;` and `=`): the inputs that
/// showed the gate taking any visible bytes after `;` (`5;;`, `5;a=\xff`).
#[test]
fn chunk_extensions_follow_the_rfc_grammar() {
    run_corpus(
        "engine_chunked_rfc_extensions",
        portcullis_proxy::fuzzing::engine_chunked_rfc_extensions,
    );
}
