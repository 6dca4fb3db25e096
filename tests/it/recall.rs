//! Search and recall through the store boundary and the real binary: the
//! fidelity experiment (a smaller run of the benchmark's), the index as a
//! cache (deleted, corrupted, killed while it is written), the one-shot path
//! that never opens it, and both on PostgreSQL.

use std::path::Path;
use std::time::Duration;

use memchat::memory::format::{MessageRecord, Record, Role, SessionSettings};
use memchat::recall::Mode;
use memchat::store::{FileStore, Store};

use super::pg_store::TestDb;
use super::support::{Sandbox, StoreKind, text};

#[path = "../fidelity/mod.rs"]
mod fidelity;

#[test]
fn recall_brings_back_what_the_lossy_summary_dropped() {
    let on = fidelity::run(40, 200, 2048, Mode::Auto);
    let off = fidelity::run(40, 200, 2048, Mode::Off);
    assert!(
        on.compactions > 5,
        "the window must force compactions: {}",
        on.compactions
    );
    eprintln!(
        "fidelity: recall on {}/{}, off {}/{} ({} turns, {} compactions, {} archived)",
        on.answered, on.facts, off.answered, off.facts, on.turns, on.compactions, on.archived
    );
    assert!(
        on.answered * 100 >= on.facts * 95,
        "recall on: {}/{}",
        on.answered,
        on.facts
    );
    assert!(
        off.answered * 2 < off.facts,
        "the summary alone is lossy: {}/{}",
        off.answered,
        off.facts
    );
    assert!(
        on.largest_request <= on.budget,
        "{} > B {}",
        on.largest_request,
        on.budget
    );
}

/// A session with `n` archived messages, each holding the word `common`
/// and a word of its own (`uniqN`), made through the store boundary.
fn archived_session(dir: &Path, name: &str, n: u64) -> FileStore {
    let store = FileStore::new(dir, Duration::from_secs(5));
    let archived: Vec<Record> = (1..=n)
        .map(|seq| {
            Record::Message(MessageRecord {
                seq,
                role: if seq % 2 == 1 {
                    Role::User
                } else {
                    Role::Assistant
                },
                content: format!("message number {seq} says common things and uniq{seq}"),
                at: "2026-11-20T10:00:00Z".into(),
                model: None,
                interrupted: false,
                truncated: false,
                tokens: None,
                usage: None,
                late_tokens: None,
            })
        })
        .collect();
    store
        .create_session(name, &SessionSettings::default(), &archived, &[])
        .unwrap();
    store
}

/// The seqs `memchat search common` finds (all of them, by the JSON output).
fn found_seqs(sandbox: &Sandbox) -> Vec<u64> {
    let out = sandbox.run(&["search", "common", "--json", "-n", "10000"], &[], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let hits: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut seqs: Vec<u64> = hits
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["seq"].as_u64().unwrap())
        .collect();
    seqs.sort_unstable();
    seqs
}

#[test]
fn a_deleted_or_corrupted_index_is_rebuilt_with_nothing_lost_or_doubled() {
    let sandbox = Sandbox::new();
    archived_session(&sandbox.memory(), "big", 500);
    let all: Vec<u64> = (1..=500).collect();
    assert_eq!(found_seqs(&sandbox), all);
    let index = sandbox.memory().join(".search-index.sqlite");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&index).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the index is private like the logs");
    // Deleted: rebuilt.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", index.display()));
    }
    assert_eq!(found_seqs(&sandbox), all);
    // Garbage over the whole file: removed, rebuilt, and said so.
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", index.display()));
    }
    std::fs::write(&index, vec![0x5a; 8192]).unwrap();
    let out = sandbox.run(&["search", "uniq7"], &[], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("damaged"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("big #7 "),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(found_seqs(&sandbox), all);
    // A page damaged inside a valid database: the same.
    let mut bytes = std::fs::read(&index).unwrap();
    let len = bytes.len();
    for b in &mut bytes[len / 2..len / 2 + 4096] {
        *b ^= 0xff;
    }
    std::fs::write(&index, bytes).unwrap();
    assert_eq!(found_seqs(&sandbox), all);
    // More messages archived later are found too, once.
    let more = FileStore::new(&sandbox.memory(), Duration::from_secs(5));
    let mut session = more.open_session("big").unwrap();
    for i in 0..6 {
        session
            .append(Role::User, format!("common late {i}"), None, false, None)
            .unwrap();
    }
    session.clear().unwrap();
    drop(session);
    assert_eq!(found_seqs(&sandbox), (1..=506).collect::<Vec<_>>());
}

#[test]
fn an_index_killed_at_any_write_catches_up_with_nothing_lost_or_doubled() {
    if !super::store_safety::has_tool("strace") {
        super::support::skip(
            "recall::an_index_killed_at_any_write_catches_up_with_nothing_lost_or_doubled",
            "strace is not installed (apt-get install strace), so no kill at a chosen system call",
        );
        return;
    }
    let sandbox = Sandbox::new();
    let store = archived_session(&sandbox.memory(), "big", 3000);
    let index = sandbox.memory().join(".search-index.sqlite");
    let remove_index = || {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", index.display()));
        }
    };
    let mut expected: Vec<u64> = (1..=3000).collect();
    let mut killed = 0;
    for syscall in ["pwrite64", "fdatasync", "fsync"] {
        for n in [1, 2, 3, 5, 9, 30, 120] {
            // A fresh build killed at the n-th call...
            remove_index();
            let finished = super::store_safety::run_killed_at(
                &sandbox,
                &["search", "common", "-n", "1"],
                syscall,
                n,
            );
            killed += usize::from(!finished);
            // ...then an update of the built index killed the same way.
            let mut session = store.open_session("big").unwrap();
            session
                .append(
                    Role::User,
                    format!("common {syscall} {n}"),
                    None,
                    false,
                    None,
                )
                .unwrap();
            let seq = session.last_seq();
            session.clear().unwrap();
            drop(session);
            expected.push(seq);
            killed += usize::from(!super::store_safety::run_killed_at(
                &sandbox,
                &["search", "common", "-n", "1"],
                syscall,
                n,
            ));
            assert_eq!(found_seqs(&sandbox), expected, "{syscall} #{n}");
        }
    }
    assert!(
        killed >= 10,
        "the kills must land mid-write: only {killed} did"
    );
}

#[test]
fn a_one_shot_on_a_session_with_nothing_archived_never_opens_the_index() {
    let sandbox = Sandbox::new();
    for prompt in ["what is a heron?", "and a crane?"] {
        let out = sandbox.run(&["--mock", "-s", "fresh", prompt], &[], None);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            !text(&out.stderr).contains("recall"),
            "{}",
            text(&out.stderr)
        );
    }
    assert!(!sandbox.memory().join(".search-index.sqlite").exists());
}

#[test]
fn search_and_recall_work_on_postgres() {
    let Some(db) = TestDb::new("search_and_recall_work_on_postgres") else {
        return;
    };
    let sandbox = Sandbox::new();
    let env = [("MEMCHAT_STORE", db.url.as_str())];
    // The golden case's conversation: it compacts, so the facts are archived.
    let script = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/search_and_recall/run1.stdin"),
    )
    .unwrap();
    let out = sandbox.run(
        &["--mock", "--context-limit", "1200", "-s", "work"],
        &env,
        Some(&script),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = sandbox.run(&["search", "hostname", "vega", "--json"], &env, None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let hits: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(hits[0]["session"], "work");
    assert_eq!(hits[0]["seq"], 9);
    assert_eq!(
        hits[0]["content"],
        "For project vega, the hostname is build-07.internal."
    );
    let out = sandbox.run(
        &[
            "--mock",
            "--context-limit",
            "1200",
            "-s",
            "work",
            "Which hostname does project vega use?",
        ],
        &env,
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("recall: 1 passage from the archive (#9)"),
        "{}",
        text(&out.stderr)
    );
    // Nothing was stored as a message by recall: the log holds the question
    // and the reply, and the archive is unchanged.
    let out = sandbox.run(
        &["search", "hostname", "vega", "-s", "work", "--json"],
        &env,
        None,
    );
    let hits: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let contents: Vec<&str> = hits
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        contents
            .iter()
            .filter(|c| c.contains("build-07.internal"))
            .count(),
        2,
        "the fact and the mock's echo of it, once each: {contents:?}"
    );
}

/// `search -s NAME` with a name no session has says so (the store-error
/// exit), on either store, instead of "no message matches".
fn a_search_in_a_missing_session_names_it(kind: StoreKind, test: &str) {
    let Some(sandbox) = Sandbox::on(kind, test) else {
        return;
    };
    let out = sandbox.run(&["--mock", "-s", "work", "the hostname is vega"], &[], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = sandbox.run(&["search", "hostname", "-s", "wrok"], &[], None);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("no session named \"wrok\""), "{stderr}");
    assert!(!stderr.contains("no message matches"), "{stderr}");
    // The session that exists is still searched.
    let out = sandbox.run(&["search", "hostname", "-s", "work"], &[], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("vega"));
}

#[test]
fn a_search_in_a_missing_session_names_it_on_files() {
    a_search_in_a_missing_session_names_it(StoreKind::Files, "search_missing_files");
}

#[test]
fn a_search_in_a_missing_session_names_it_on_postgres() {
    a_search_in_a_missing_session_names_it(StoreKind::Postgres, "search_missing_postgres");
}

/// A message holding a NUL character (JSON can, PostgreSQL's text cannot:
/// it is kept exactly beside its text) is found and shown whole, on either
/// store; PostgreSQL's search failed on it.
fn a_message_with_a_nul_is_found(kind: StoreKind, test: &str) {
    let Some(sandbox) = Sandbox::on(kind, test) else {
        return;
    };
    let out = sandbox.run(
        &["--mock", "-s", "work"],
        &[],
        Some(b"a kiwiword\0beside a NUL\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = sandbox.run(&["search", "kiwiword", "--json"], &[], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("kiwiword\\u0000beside"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn a_message_with_a_nul_is_found_on_files() {
    a_message_with_a_nul_is_found(StoreKind::Files, "nul_search_files");
}

#[test]
fn a_message_with_a_nul_is_found_on_postgres() {
    a_message_with_a_nul_is_found(StoreKind::Postgres, "nul_search_postgres");
}
