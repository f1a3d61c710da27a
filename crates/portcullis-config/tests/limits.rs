//! Limits the data plane enforces are enforced by validation too (PRODUCT.md
//! §9, "Control plane"): a topology that `check` or the admin API accepts is
//! one every member can apply.

use std::path::Path;

use portcullis_config::{load_topology, parse_topology, MAX_BACKENDS};

fn urls(n: usize, port: u16) -> String {
    (0..n)
        .map(|i| format!("\"http://127.0.0.1:{port}/b{i}\""))
        .collect::<Vec<_>>()
        .join(",\n  ")
}

#[test]
fn more_than_64_urls_are_refused_with_key_and_line() {
    let src = format!(
        "[[service]]\nname = \"ok\"\nurls = [\"http://127.0.0.1:1\"]\n\n[[service]]\nname = \"big\"\nurls = [\n  {}\n]\n",
        urls(MAX_BACKENDS + 1, 1)
    );
    let errors = parse_topology("t", "t.toml", &src).expect_err("65 urls are refused");
    assert_eq!(errors.0.len(), 1, "{errors}");
    let error = &errors.0[0];
    assert_eq!(error.path, "service[1].urls");
    assert_eq!(error.line, Some(7), "{error}");
    assert!(
        error.message.contains("at most 64") && error.message.contains("65"),
        "{error}"
    );
}

#[test]
fn urls_and_backup_urls_count_together() {
    let exactly = format!(
        "[[service]]\nname = \"s\"\nurls = [{}]\nbackup_urls = [{}]\n",
        urls(60, 1),
        urls(4, 2)
    );
    parse_topology("t", "t.toml", &exactly).expect("64 backends are fine");
    let over = format!(
        "[[service]]\nname = \"s\"\nurls = [{}]\nbackup_urls = [{}]\n",
        urls(60, 1),
        urls(5, 2)
    );
    let error = parse_topology("t", "t.toml", &over)
        .expect_err("65 are not")
        .0
        .remove(0);
    assert_eq!(error.path, "service[0].backup_urls");
    // After the 60 urls, one a line.
    assert_eq!(error.line, Some(63), "{error}");
}

fn with_ca(ca: &str, verify: bool) -> String {
    format!(
        "[[service]]\nname = \"s\"\nurls = [\"https://127.0.0.1:1\"]\ntls_ca = {ca:?}\ntls_verify = {verify}\n"
    )
}

fn ca_pem() -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["ca.test".to_string()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.self_signed(&key).unwrap().pem()
}

#[test]
fn an_unreadable_tls_ca_is_refused_with_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let src = with_ca("missing.pem", true);
    // Syntax and values alone are fine...
    parse_topology("t", "t.toml", &src).expect("no file check without a base directory");
    // ...but the member could not build its TLS client.
    let error = load_topology("t", "t.toml", &src, dir.path())
        .expect_err("a missing CA file is refused")
        .0
        .remove(0);
    assert_eq!(error.path, "service[0].tls_ca");
    assert_eq!(error.line, Some(4), "{error}");
    assert!(error.message.contains("missing.pem"), "{error}");

    std::fs::write(dir.path().join("junk.pem"), "not a certificate").unwrap();
    let error = load_topology("t", "t.toml", &with_ca("junk.pem", true), dir.path())
        .expect_err("a file without a certificate is refused")
        .0
        .remove(0);
    assert_eq!(error.path, "service[0].tls_ca");
    assert!(
        error.message.contains("no usable PEM certificate"),
        "{error}"
    );
}

#[test]
fn a_readable_tls_ca_relative_to_the_base_directory_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca_pem()).unwrap();
    load_topology("t", "t.toml", &with_ca("ca.pem", true), dir.path()).expect("usable CA");
    load_topology(
        "t",
        "t.toml",
        &with_ca(&ca_pem(), true),
        Path::new("/nonexistent"),
    )
    .expect("inline PEM needs no file");
    // Not verifying: the CA is never read, by the data plane either.
    load_topology("t", "t.toml", &with_ca("missing.pem", false), dir.path())
        .expect("unused CA is not checked");
}
