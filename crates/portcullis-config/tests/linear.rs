//! Validation must be linear in the size of the input (PRODUCT.md §9, "Control
//! plane"): a topology with tens of thousands of urls or errors must not take
//! seconds to refuse. An absolute time limit would depend on the machine, so
//! these tests compare a document with its four-times-larger sibling: linear
//! work takes about 4 times as long, quadratic work 16 times. Each size keeps
//! the fastest of several runs, which filters out a busy machine.

use std::time::{Duration, Instant};

/// Fastest of up to five runs, fewer when one run alone is slow (a quadratic
/// validator would otherwise keep the test busy for minutes).
fn fastest(src: &str) -> Duration {
    let started = Instant::now();
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let run = Instant::now();
        let result = portcullis_config::parse_topology("t", "t.toml", src);
        best = best.min(run.elapsed());
        assert!(result.is_err(), "the document must be refused");
        if started.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    best
}

fn assert_linear(what: &str, make: impl Fn(usize) -> String, small: usize) {
    let (a, b) = (make(small), make(small * 4));
    // Warm up allocator and caches so the first measurement is not penalised.
    let _ = portcullis_config::parse_topology("t", "t.toml", &a);
    let (ta, tb) = (fastest(&a), fastest(&b));
    let ratio = tb.as_secs_f64() / ta.as_secs_f64().max(1e-6);
    eprintln!(
        "{what}: {small} -> {ta:?}, {} -> {tb:?}, ratio {ratio:.1}",
        small * 4
    );
    assert!(
        ratio < 8.0,
        "{what}: 4x the input took {ratio:.1}x the time ({ta:?} -> {tb:?}); validation is not linear"
    );
}

/// One service whose urls are all the same (one error per repeat), on one
/// line: column numbers on a long line must not be recounted from its start.
fn duplicate_urls(n: usize) -> String {
    let urls = vec!["\"http://127.0.0.1:9/x\""; n].join(", ");
    format!("[[service]]\nname = \"s\"\nurls = [{urls}]\n")
}

/// As above, one url per line: line numbers must not be recounted from the
/// start of the file for each error.
fn duplicate_urls_on_lines(n: usize) -> String {
    let urls = vec!["  \"http://127.0.0.1:9/x\",\n"; n].concat();
    format!("[[service]]\nname = \"s\"\nurls = [\n{urls}]\n")
}

/// Many services, each with one out-of-range value.
fn one_error_per_service(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "[[service]]\nname = \"s{i}\"\nurls = [\"http://127.0.0.1:9/x\"]\n[service.ha]\nmax_failover_attempts = 500\n\n"
            )
        })
        .collect()
}

#[test]
fn duplicate_urls_on_one_line_are_refused_in_linear_time() {
    assert_linear("duplicate urls on one line", duplicate_urls, 5_000);
}

#[test]
fn duplicate_urls_on_many_lines_are_refused_in_linear_time() {
    assert_linear("duplicate urls, one a line", duplicate_urls_on_lines, 5_000);
}

#[test]
fn one_error_per_service_is_reported_in_linear_time() {
    assert_linear("one error per service", one_error_per_service, 2_500);
}

#[test]
fn every_error_of_a_large_document_is_reported_with_its_line() {
    let errors = portcullis_config::parse_topology("t", "t.toml", &one_error_per_service(1000))
        .expect_err("refused");
    assert_eq!(errors.0.len(), 1000);
    for (i, error) in errors.0.iter().enumerate() {
        assert_eq!(error.path, format!("service[{i}].ha.max_failover_attempts"));
        // Six lines per service; the value is on the fifth.
        assert_eq!(error.line, Some(i * 6 + 5), "{error}");
        assert_eq!(error.column, Some(25), "{error}");
    }
}
