//! The fuzz targets of this crate over the committed corpus and regressions
//! (fuzz/corpus/<target>/, fuzz/regressions/<target>/): the same functions
//! `cargo fuzz` runs, checked in each ordinary test run. See docs/fuzzing.md.

use std::path::PathBuf;

fn run_corpus(target: &str, check: fn(&[u8])) {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    portcullis_config::fuzzing::run_corpus(&fuzz, target, check);
}

#[test]
fn jwks_corpus() {
    run_corpus("jwks", portcullis_policy::fuzzing::jwks);
}

#[test]
fn jwt_claims_corpus() {
    run_corpus("jwt_claims", portcullis_policy::fuzzing::jwt_claims);
}
