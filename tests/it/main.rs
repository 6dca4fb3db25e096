//! The integration tests: one test binary with one module per subject, so
//! `cargo test` links the memchat library into one test executable instead of
//! one per file. Run one module with `cargo test --test it golden::`, one
//! test with its full path (`cargo test --test it golden::one_shot`).
//!
//! A new test file goes into `tests/it/` with a `mod` line below; the layout
//! test at the end fails if a file sits outside the binary (a `tests/*.rs`
//! file would be a separate binary again, an undeclared `tests/it/*.rs` file
//! would never be compiled).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod support;

mod attachments;
mod budget_invariants;
mod colour;
mod command_line;
mod completions;
mod crash;
mod daily;
mod exit_codes;
mod faults;
mod golden;
mod io_safety;
mod log_reader;
mod long_conversation;
mod models;
mod openai;
mod pg_cluster;
mod pg_faults;
mod pg_migrate;
mod pg_pooler;
mod pg_repl;
mod pg_schema;
mod pg_server;
mod pg_store;
mod pg_turns;
mod presets;
mod recall;
mod recovery;
mod red_team;
mod repl;
mod sampling;
mod sessions;
mod store_safety;
mod tls;

use std::collections::BTreeSet;
use std::path::Path;

/// The `mod NAME;` lines of this file.
fn declared_modules() -> BTreeSet<String> {
    include_str!("main.rs")
        .lines()
        .filter_map(|l| l.strip_prefix("mod ")?.strip_suffix(';'))
        .map(str::to_string)
        .collect()
}

#[test]
fn every_test_file_is_a_module_of_this_binary() {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let stray: Vec<String> = std::fs::read_dir(&tests)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        stray.is_empty(),
        "{stray:?} would be separate test binaries: move them to tests/it/ and add a `mod` line to tests/it/main.rs"
    );
    let files: BTreeSet<String> = std::fs::read_dir(tests.join("it"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .filter(|name| name != "main")
        .collect();
    let declared = declared_modules();
    assert!(
        declared.contains("golden"),
        "the parser reads the mod lines"
    );
    assert_eq!(
        files, declared,
        "every tests/it/*.rs file needs a `mod` line in tests/it/main.rs (and every `mod` line a file)"
    );
}
