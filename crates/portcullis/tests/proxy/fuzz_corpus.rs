//! The fuzz targets of this crate over the committed corpus and regressions
//! (fuzz/corpus/<target>/, fuzz/regressions/<target>/): the same functions
//! `cargo fuzz` runs, so every input the fuzzer kept is checked in each
//! ordinary test run, without nightly. See docs/fuzzing.md.

use std::path::PathBuf;

fn run_corpus(target: &str, check: fn(&[u8])) {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    portcullis_config::fuzzing::run_corpus(&fuzz, target, check);
}

#[test]
fn sticky_cookie_corpus() {
    run_corpus(
        "sticky_cookie",
        portcullis_proxy::balancer::fuzzing::sticky_cookie,
    );
}
