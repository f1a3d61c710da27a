//! The fuzz targets of this crate over the committed corpus and regressions
//! (fuzz/corpus/<target>/, fuzz/regressions/<target>/): the same functions
//! `cargo fuzz` runs, so every input the fuzzer kept is checked in each
//! ordinary test run, without nightly. See docs/fuzzing.md.

use std::path::PathBuf;

fn run_corpus(target: &str, check: fn(&[u8])) {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut ran = 0;
    for kind in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(kind).join(target)) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.map(|e| e.expect("corpus entry").path()).collect();
        paths.sort();
        for path in paths.into_iter().filter(|p| p.is_file()) {
            let data = std::fs::read(&path).expect("corpus file");
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{target} failed on {}", path.display());
            ran += 1;
        }
    }
    assert!(ran > 0, "no corpus for {target} under {}", fuzz.display());
}

#[test]
fn config_node_corpus() {
    run_corpus("config_node", portcullis_config::fuzzing::config_node);
}

#[test]
fn config_topology_corpus() {
    run_corpus(
        "config_topology",
        portcullis_config::fuzzing::config_topology,
    );
}
