//! Moving between stores against a real server: `memchat migrate` and the
//! library's copy, both ways, verified, idempotent, never touching the
//! source. The server and the schema per test come from [`TestDb`].

use memchat::memory::format::{Record, Role};
use memchat::transfer;

use memchat::memory::Session;

use crate::pg_store::{TestDb, WAIT, the_same_steps};

/// Every file of a directory with its bytes.
fn snapshot(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    files.sort();
    files
}

fn conversation(dir: &std::path::Path, name: &str) -> Vec<Record> {
    let paths = memchat::memory::SessionPaths::new(dir, name);
    let active = memchat::memory::session::read_log(&paths, name).unwrap();
    let (archive, _) = memchat::memory::session::read_archive(&paths.archive).unwrap();
    transfer::whole_conversation(archive, &active)
}

#[test]
fn migrate_copies_every_session_both_ways_verified_idempotent_and_never_touches_the_source() {
    use memchat::pg::copy::{Outcome, Side, copy};
    let Some(db) = TestDb::new("migrate_copies_every_session_both_ways") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut s = Session::open(dir.path(), "s", WAIT).unwrap();
    the_same_steps!(&mut s);
    drop(s);
    let mut t = Session::open(dir.path(), "t", WAIT).unwrap();
    t.append(Role::User, "only one".into(), None, false, None)
        .unwrap();
    drop(t);
    let before = snapshot(dir.path());

    let store = db.store();
    let report = copy(Side::Dir(dir.path()), Side::Pg(&store), WAIT).unwrap();
    assert!(report.complete(), "{report}");
    assert!(
        matches!(report.sessions[0].1, Outcome::Copied { messages: 15, .. }),
        "{report}"
    );
    assert!(
        matches!(report.sessions[1].1, Outcome::Copied { messages: 1, .. }),
        "{report}"
    );
    assert!(
        report
            .to_string()
            .ends_with("2 copied, 0 already there, 0 failed; the source is unchanged")
    );
    // Again: nothing to do.
    let again = copy(Side::Dir(dir.path()), Side::Pg(&store), WAIT).unwrap();
    assert_eq!(
        again
            .sessions
            .iter()
            .map(|(_, o)| o.clone())
            .collect::<Vec<_>>(),
        [
            Outcome::Identical { messages: 15 },
            Outcome::Identical { messages: 1 }
        ]
    );

    // And back, into a new directory: the same records, times included.
    let back = tempfile::tempdir().unwrap();
    let report = copy(Side::Pg(&store), Side::Dir(back.path()), WAIT).unwrap();
    assert!(report.complete(), "{report}");
    for name in ["s", "t"] {
        let (a, b) = (
            conversation(dir.path(), name),
            conversation(back.path(), name),
        );
        assert_eq!(
            transfer::to_markdown(name, &a),
            transfer::to_markdown(name, &b)
        );
        assert_eq!(transfer::to_records_json(&a), transfer::to_records_json(&b));
    }

    // A session that differs is reported, and neither side changes.
    let mut t = store.open_session("t").unwrap();
    t.append(
        Role::Assistant,
        "only in postgres".into(),
        None,
        false,
        None,
    )
    .unwrap();
    drop(t);
    let report = copy(Side::Dir(dir.path()), Side::Pg(&store), WAIT).unwrap();
    assert!(!report.complete());
    let Outcome::Failed(reason) = &report.sessions[1].1 else {
        panic!("{report}");
    };
    assert!(
        reason.contains("already has a different session of this name"),
        "{reason}"
    );
    assert_eq!(store.read("t").unwrap().messages.len(), 2);
    assert_eq!(snapshot(dir.path()), before, "the source is never changed");
}

#[test]
fn memchat_migrate_moves_a_directory_to_postgres_and_back_with_identical_exports() {
    use crate::support::{Sandbox, text};
    let Some(db) = TestDb::new("memchat_migrate_moves_a_directory_to_postgres_and_back") else {
        return;
    };
    let sandbox = Sandbox::new();
    for (session, prompt) in [("alpha", "hello there"), ("beta", "second one")] {
        let out = sandbox.run(&["--mock", "-s", session, prompt], &[], None);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let dir = sandbox.memory();
    // A creation time no migration could make up.
    let log = dir.join("alpha.jsonl");
    let written = std::fs::read_to_string(&log).unwrap();
    let created = written.split("\"created_at\":\"").nth(1).unwrap()[..20].to_string();
    std::fs::write(&log, written.replacen(&created, "2020-01-02T03:04:05Z", 1)).unwrap();
    let dir = dir.to_str().unwrap();
    // The password is never shown, whatever happens.
    let url = db
        .url
        .replace("postgres://postgres@", "postgres://postgres:topsecret@");
    let out = sandbox.run(&["migrate", "--from", dir, "--to", &url], &[], None);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains("copied  alpha: 2 messages, verified (sha256 "),
        "{stdout}"
    );
    assert!(stdout.ends_with("2 copied, 0 already there, 0 failed; the source is unchanged\n"));
    let again = sandbox.run(&["migrate", "--from", dir, "--to", &url], &[], None);
    assert!(
        text(&again.stdout).contains("0 copied, 2 already there"),
        "{}",
        text(&again.stdout)
    );

    let back = tempfile::tempdir().unwrap();
    let back_dir = back.path().join("m");
    let back_dir = back_dir.to_str().unwrap();
    let out = sandbox.run(&["migrate", "--from", &url, "--to", back_dir], &[], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for format in ["json", "md"] {
        let export = |from: &str| {
            let out = sandbox.run(
                &["--memory-dir", from, "export", "alpha", "--format", format],
                &[],
                None,
            );
            assert!(out.status.success(), "{}", text(&out.stderr));
            out.stdout
        };
        assert_eq!(export(dir), export(back_dir), "{format}");
    }
    // The log's header too: its creation time is the source's, not the
    // migration's (it was reset on the way back to files; red team).
    let header = |from: &str| {
        let log = std::fs::read_to_string(std::path::Path::new(from).join("alpha.jsonl")).unwrap();
        let first: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
        first["created_at"].clone()
    };
    assert_eq!(header(dir), "2020-01-02T03:04:05Z");
    assert_eq!(header(back_dir), "2020-01-02T03:04:05Z");

    let out = sandbox.run(&["migrate", "--from", dir, "--to", back_dir], &[], None);
    assert_eq!(out.status.code(), Some(2), "two directories: a usage error");
    let out = sandbox.run(
        &[
            "migrate",
            "--from",
            dir,
            "--to",
            "postgres://u:topsecret@127.0.0.1:1/x",
        ],
        &[],
        None,
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("u:***@127.0.0.1:1") && !stderr.contains("topsecret"),
        "{stderr}"
    );
}

/// A copy keeps when each session was last used: `--continue` picks the
/// same session, and `sessions` lists them in the same order, on either
/// side (the last session copied was taken for the most recent).
#[test]
fn migrate_keeps_when_each_session_was_last_used() {
    use crate::support::{Sandbox, text};
    let Some(db) = TestDb::new("migrate_keeps_when_each_session_was_last_used") else {
        return;
    };
    let sandbox = Sandbox::new();
    for (session, prompt) in [
        ("zeta", "one"),
        ("alpha", "two"),
        ("mid", "three"),
        ("alpha", "four"),
    ] {
        // Apart in time, on any clock.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let out = sandbox.run(&["--mock", "-s", session, prompt], &[], None);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let dir = sandbox.memory();
    let dir = dir.to_str().unwrap();
    let order = |args: &[&str]| {
        let out = sandbox.run(&[args, &["sessions"]].concat(), &[], None);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect::<Vec<_>>()
    };
    let continued = |args: &[&str]| {
        let out = sandbox.run(&[args, &["--mock", "-c", "/tokens"]].concat(), &[], None);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stderr)
    };
    let on_files = order(&["--memory-dir", dir]);
    assert!(
        continued(&["--memory-dir", dir]).contains("continuing session \"alpha\""),
        "{on_files:?}"
    );
    let out = sandbox.run(&["migrate", "--from", dir, "--to", &db.url], &[], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(order(&["--store", &db.url]), on_files);
    assert!(continued(&["--store", &db.url]).contains("continuing session \"alpha\""));

    let back = tempfile::tempdir().unwrap();
    let back_dir = back.path().join("m");
    let back_dir = back_dir.to_str().unwrap();
    let out = sandbox.run(&["migrate", "--from", &db.url, "--to", back_dir], &[], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(order(&["--memory-dir", back_dir]), on_files);
    assert!(continued(&["--memory-dir", back_dir]).contains("continuing session \"alpha\""));

    // A time neither side can hold is carried as the nearest one they can
    // (the sessions keep their order), and does not fail the copy.
    let odd = tempfile::tempdir().unwrap();
    let odd_dir = odd.path().to_str().unwrap();
    let out = sandbox.run(
        &["--memory-dir", odd_dir, "--mock", "-s", "odd", "hi"],
        &[],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    std::fs::File::options()
        .append(true)
        .open(odd.path().join("odd.jsonl"))
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH - std::time::Duration::from_secs(86_400))
        .unwrap();
    let out = sandbox.run(&["migrate", "--from", odd_dir, "--to", &db.url], &[], None);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert_eq!(
        db.query(
            "SELECT extract(epoch FROM updated_at)::text FROM memchat_sessions \
             WHERE name = 'odd'"
        ),
        ["1.000000"]
    );
}

/// A hand-made log with a NUL outside a message's content (its model, its
/// title): PostgreSQL cannot store it, and the import says which record
/// and field, in one line, instead of "unsupported Unicode escape
/// sequence (SQLSTATE 22P05)"; nothing is created.
#[test]
fn an_import_pg_cannot_store_is_refused_naming_the_record() {
    let Some(db) = TestDb::new("an_import_pg_cannot_store") else {
        return;
    };
    let files = crate::support::Sandbox::new();
    let out = files.run(&["--mock", "-s", "s", "hi"], &[], None);
    assert!(out.status.success(), "{}", text_of(&out.stderr));
    let log = std::fs::read_to_string(files.memory().join("s.jsonl")).unwrap();
    assert!(log.contains("\"model\":\""), "{log}");
    // The settings' model (the first), then the reply's (the last).
    let first = log.find("\"model\":\"").unwrap();
    let last = log.rfind("\"model\":\"").unwrap();
    assert_ne!(first, last);
    for (at, why) in [
        (first, "the session's settings hold a NUL character"),
        (last, "record #2: its model holds a NUL character"),
    ] {
        let cut = at + "\"model\":\"".len();
        let broken = format!("{}mo\\u0000{}", &log[..cut], &log[cut..]);
        let file = files.dir.path().join("broken.jsonl");
        std::fs::write(&file, broken).unwrap();
        let pg = crate::support::Sandbox::new();
        let out = pg.run(
            &["import", file.to_str().unwrap(), "--as", "t"],
            &[("MEMCHAT_STORE", db.url.as_str())],
            None,
        );
        let stderr = text_of(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(why), "{stderr}");
        assert!(stderr.contains("which PostgreSQL cannot store"), "{stderr}");
        assert_eq!(
            db.query("SELECT count(*)::text FROM memchat_sessions"),
            ["0"]
        );
    }
}

fn text_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
