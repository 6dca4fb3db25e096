//! The PostgreSQL schema's versions, against a real server: a database of
//! an older memchat is upgraded in place with every record kept, and what
//! the upgrade to version 2 is for, a record too large for PostgreSQL's
//! full-text index, is stored whole and exported as the file store exports
//! it.

use crate::pg_store::TestDb;
use crate::support::{Sandbox, text};

/// A prompt of about 2 MiB of distinct words: as a `tsvector`, more than
/// the 1 MiB PostgreSQL allows, which made it impossible to store.
fn huge_prompt() -> String {
    (0..300_000).map(|i| format!("w{i:x}q ")).collect()
}

#[test]
fn a_record_too_large_for_the_search_index_is_stored_whole_on_both_stores() {
    let Some(db) = TestDb::new("a_record_too_large_for_the_search_index") else {
        return;
    };
    let prompt = huge_prompt();
    assert!(prompt.len() > 2 * 1024 * 1024);
    let sandbox = Sandbox::new();
    let pg = [("MEMCHAT_STORE", db.url.as_str())];
    for env in [&pg[..], &[]] {
        let out = sandbox.run(
            &["--mock", "--context-limit", "2000000", "-s", "big"],
            env,
            Some(prompt.as_bytes()),
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let export = |env: &[(&str, &str)]| {
        let out = sandbox.run(&["export", "big", "--format", "jsonl"], env, None);
        assert!(out.status.success(), "{}", text(&out.stderr));
        out.stdout
    };
    let (from_pg, from_files) = (export(&pg), export(&[]));
    assert!(String::from_utf8_lossy(&from_pg).contains("w3f7ffq"));
    assert_eq!(
        String::from_utf8_lossy(&from_pg).replace(char::is_numeric, "#"),
        String::from_utf8_lossy(&from_files).replace(char::is_numeric, "#"),
        "the same records, times aside"
    );
    // Hyphenated words of four-byte characters: each is indexed whole and
    // in its parts (an index of the first 200,000 characters overflowed).
    let cjk: Vec<char> = (0x20000..0x2A6E0)
        .chain(0x2A700..0x2EBE0)
        .chain(0x30000..0x3134B)
        .filter_map(char::from_u32)
        .collect();
    let hyphenated: String = (0..50_000)
        .map(|i| {
            format!(
                "{}-{} ",
                cjk[2 * i % cjk.len()],
                cjk[(2 * i + 1) % cjk.len()]
            )
        })
        .collect();
    let out = sandbox.run(
        &["--mock", "--context-limit", "2000000", "-s", "cjk"],
        &pg,
        Some(hyphenated.as_bytes()),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Its beginning is searchable; the index stops at SEARCHED_CHARS.
    let out = sandbox.run(&["search", "w10q", "-s", "big"], &pg, None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("big"), "{}", text(&out.stdout));
}

#[test]
fn a_version_1_database_is_upgraded_with_every_record_kept() {
    let Some(db) = TestDb::new("a_version_1_database_is_upgraded") else {
        return;
    };
    let sandbox = Sandbox::new();
    let pg = [("MEMCHAT_STORE", db.url.as_str())];
    for prompt in ["apples and pears", "plums"] {
        let out = sandbox.run(&["--mock", "-s", "old", prompt], &pg, None);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    // The tables as memchat's schema version 1 made them.
    db.sql(
        "ALTER TABLE memchat_records DROP COLUMN search; \
         ALTER TABLE memchat_records ADD COLUMN search tsvector \
         GENERATED ALWAYS AS (to_tsvector('simple', content)) STORED; \
         CREATE INDEX memchat_records_search ON memchat_records USING gin (search); \
         UPDATE memchat_schema SET version = 1",
    );
    let before = db.query("SELECT seq::text || ':' || content FROM memchat_records ORDER BY seq");
    let out = sandbox.run(&["sessions"], &pg, None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(db.query("SELECT version::text FROM memchat_schema"), ["3"]);
    assert_eq!(
        db.query("SELECT seq::text || ':' || content FROM memchat_records ORDER BY seq"),
        before
    );
    let expression = db.query(
        "SELECT generation_expression FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = 'memchat_records' \
         AND column_name = 'search'",
    );
    assert!(expression.concat().contains("100000"), "{expression:?}");
    let out = sandbox.run(&["search", "pears"], &pg, None);
    assert!(text(&out.stdout).contains("old"), "{}", text(&out.stdout));
}

/// Words inside file names, paths, e-mail addresses, hosts and version
/// numbers are found on PostgreSQL as on the file store (PostgreSQL's
/// `simple` parser kept `config.yaml` or `/usr/local/bin/redis-server`
/// whole; red team). A database of schema version 2 is upgraded to it,
/// every record kept and searchable so.
#[test]
fn words_inside_names_paths_and_addresses_are_found_on_both_stores() {
    let Some(db) = TestDb::new("words_inside_names_paths_and_addresses") else {
        return;
    };
    let sandbox = Sandbox::new();
    let pg = [("MEMCHAT_STORE", db.url.as_str())];
    let said = "edit config.yaml then restart /usr/local/bin/redis-server; mail \
                alice@corp.io about v1.2.3 on 192.168.1.20 (x_y [brackets]{braces})";
    for env in [&pg[..], &[]] {
        let out = sandbox.run(&["--mock", "-s", "paths", said], env, None);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let found = |env: &[(&str, &str)], word: &str| {
        let out = sandbox.run(&["search", word], env, None);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).contains("paths")
    };
    for word in [
        "config", "yaml", "redis", "server", "alice", "corp", "168", "brackets", "braces",
    ] {
        assert!(found(&[], word), "{word} on files");
        assert!(found(&pg, word), "{word} on PostgreSQL");
    }
    // The tables as schema version 2 made them: upgraded, and the record
    // already there searchable by the new rule.
    db.sql(
        "ALTER TABLE memchat_records DROP COLUMN search; \
         ALTER TABLE memchat_records ADD COLUMN search tsvector \
         GENERATED ALWAYS AS (to_tsvector('simple', left(content, 100000))) STORED; \
         CREATE INDEX memchat_records_search ON memchat_records USING gin (search); \
         UPDATE memchat_schema SET version = 2",
    );
    assert!(found(&pg, "redis"));
    assert_eq!(db.query("SELECT version::text FROM memchat_schema"), ["3"]);
}
