//! The PostgreSQL store against a real server: schema and versions, every
//! operation compared record by record with the file store, and the lock
//! rule between two clients. The connection's faults are in `pg_faults.rs`.
//!
//! The server is `MEMCHAT_TEST_DATABASE_URL`, else a throwaway cluster
//! ([`crate::pg_server::test_server_url`]); each test works in a schema of
//! its own ([`TestDb`]), dropped afterwards, so tests run in parallel and
//! leave nothing behind. Where PostgreSQL is not installed at all the tests
//! say SKIPPED.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use memchat::exit::{Exit, exit_for_error};
use memchat::memory::format::{Record, Role, SessionSettings, TokenCache};
use memchat::memory::{Session, StoreError};
use memchat::pg::PgStore;
use memchat::transfer;

pub const WAIT: Duration = Duration::from_secs(5);

/// A schema of its own on the test server, dropped on drop.
pub struct TestDb {
    /// The server's URL as given.
    pub base: String,
    /// The URL that puts memchat's tables in this test's schema.
    pub url: String,
    pub schema: String,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Runs SQL on the test server as its own (admin) user.
pub fn admin(base: &str, sql: &str) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(base, tokio_postgres::NoTls)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        client
            .batch_execute(sql)
            .await
            .map_err(|e| match e.as_db_error() {
                Some(db) => db.message().to_string(),
                None => e.to_string(),
            })
    })
}

/// How many advisory locks the backends that `activity` picks (a condition
/// on `pg_stat_activity`) hold.
pub fn advisory_locks(base: &str, activity: &str) -> String {
    admin_query(
        base,
        &format!(
            "SELECT count(*)::text FROM pg_locks WHERE locktype = 'advisory' AND pid IN \
             (SELECT pid FROM pg_stat_activity WHERE {activity})"
        ),
    )
    .concat()
}

/// One value from the test server (`SELECT` of one text column).
pub fn admin_query(base: &str, sql: &str) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(base, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .simple_query(sql)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => {
                    Some(row.get(0).unwrap_or("").to_string())
                }
                _ => None,
            })
            .collect()
    })
}

impl TestDb {
    /// A fresh schema, or `None` (said loudly) when there is no server.
    pub fn new(test: &str) -> Option<TestDb> {
        let base = crate::pg_server::test_server_url(test)?;
        let schema = format!(
            "memchat_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        admin(
            &base,
            &format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"),
        )
        .unwrap();
        // The schema for memchat's tables; the application name to find
        // this test's connections (and only them) in pg_stat_activity.
        let url = with_param(
            &base,
            &format!("options=-csearch_path%3D{schema}&application_name={schema}"),
        );
        Some(TestDb { base, url, schema })
    }

    pub fn store(&self) -> PgStore {
        PgStore::open(&self.url, WAIT).unwrap()
    }

    pub fn sql(&self, sql: &str) {
        admin(
            &self.base,
            &format!("SET search_path = {}; {sql}", self.schema),
        )
        .unwrap();
    }

    /// How many advisory locks this test's connections hold.
    pub fn locks_held(&self) -> String {
        advisory_locks(&self.base, &format!("application_name = '{}'", self.schema))
    }

    /// How many of this test's connections wait for an advisory lock.
    pub fn locks_waited_for(&self) -> String {
        admin_query(
            &self.base,
            &format!(
                "SELECT count(*)::text FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                 WHERE l.locktype = 'advisory' AND NOT l.granted AND a.application_name = '{}'",
                self.schema
            ),
        )
        .concat()
    }

    /// Runs `sql` in a transaction of another connection (in this test's
    /// schema) and keeps it open until the returned sender sends, then
    /// rolls it back.
    pub fn hold_in_transaction(
        &self,
        sql: &str,
    ) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
        let (base, sql) = (
            self.base.clone(),
            format!("SET search_path = {}; BEGIN; {sql}", self.schema),
        );
        let (hold, held) = std::sync::mpsc::channel::<()>();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let (client, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(connection);
                client.batch_execute(&sql).await.unwrap();
                hold.send(()).unwrap();
                released.recv().unwrap();
                client.batch_execute("ROLLBACK").await.unwrap();
            });
        });
        held.recv().unwrap();
        (release, holder)
    }

    pub fn query(&self, sql: &str) -> Vec<String> {
        admin_query(&self.url, sql)
    }

    /// Where the test server is, from its URL (the tests need a TCP one).
    pub fn server(&self) -> Server {
        let config: tokio_postgres::Config = self.base.parse().unwrap();
        let host = match &config.get_hosts()[0] {
            tokio_postgres::config::Host::Tcp(host) => host.clone(),
            other => panic!("the tests need a TCP server, not {other:?}"),
        };
        let user = config.get_user().unwrap_or("postgres").to_string();
        Server {
            host,
            port: config.get_ports().first().copied().unwrap_or(5432),
            dbname: config.get_dbname().unwrap_or(&user).to_string(),
            user,
        }
    }
}

/// The test server's address, user and database ([`TestDb::server`]).
pub struct Server {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub dbname: String,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = admin(
            &self.base,
            &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema),
        );
    }
}

/// `url` with one more query parameter.
pub fn with_param(url: &str, param: &str) -> String {
    if url.contains('?') {
        format!("{url}&{param}")
    } else {
        format!("{url}?{param}")
    }
}

pub fn counted(count: u32) -> Option<TokenCache> {
    Some(TokenCache {
        encoding: "o200k_base".into(),
        count,
    })
}

/// Everything a session can hold, done to either store by the same steps.
macro_rules! the_same_steps {
    ($s:expr) => {{
        let s = $s;
        let wanted = memchat::memory::format::SessionSettings {
            model: Some("gpt-4o-mini".into()),
            context_limit: Some(8192),
            ..memchat::memory::format::SessionSettings::default()
        };
        assert!(s.set_settings(&wanted, false).unwrap());
        s.append(
            memchat::memory::format::Role::System,
            "You are terse.".into(),
            None,
            false,
            crate::pg_store::counted(4),
        )
        .unwrap();
        for i in 0..6 {
            s.append(
                memchat::memory::format::Role::User,
                format!("question {i} with a\0nul"),
                None,
                false,
                None,
            )
            .unwrap();
            s.append_with_usage(
                memchat::memory::format::Role::Assistant,
                format!("answer {i}"),
                Some("gpt-4o-mini".into()),
                i == 2,
                i == 3,
                crate::pg_store::counted(2),
                Some(memchat::memory::format::UsageRecord {
                    prompt_tokens: 10 + i,
                    completion_tokens: 2,
                }),
            )
            .unwrap();
        }
        // A late count, stored with the next write.
        s.messages_mut()[0].tokens = crate::pg_store::counted(7);
        s.compact(
            4,
            "The user asked four questions.".into(),
            "model",
            crate::pg_store::counted(6),
        )
        .unwrap();
        s.append(
            memchat::memory::format::Role::System,
            "You are verbose.".into(),
            None,
            false,
            None,
        )
        .unwrap();
        s.compact(2, "Six questions so far.".into(), "extractive", None)
            .unwrap();
        assert_eq!(s.archive_tail(s.messages().len() - 2).unwrap(), 2);
        let titled = memchat::memory::format::SessionSettings {
            title: Some("A title".into()),
            ..wanted
        };
        assert!(s.set_settings(&titled, true).unwrap());
        s.append(
            memchat::memory::format::Role::User,
            "last".into(),
            None,
            false,
            None,
        )
        .unwrap();
    }};
}
pub(crate) use the_same_steps;

/// Records with their times blanked (the two stores ran a moment apart).
fn timeless(records: Vec<Record>) -> Vec<Record> {
    records
        .into_iter()
        .map(|mut r| {
            match &mut r {
                Record::Message(m) => m.at = "T".into(),
                Record::Summary(s) => s.at = "T".into(),
                Record::Header(h) => h.created_at = "T".into(),
                Record::Settings(s) => s.at = "T".into(),
            }
            r
        })
        .collect()
}

#[test]
fn postgres_holds_exactly_what_the_file_store_holds_and_exports_the_same() {
    let Some(db) = TestDb::new("postgres_holds_exactly_what_the_file_store_holds") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut file = Session::open(dir.path(), "s", WAIT).unwrap();
    the_same_steps!(&mut file);
    drop(file);
    let store = db.store();
    let mut pg = store.open_session("s").unwrap();
    assert!(pg.is_new());
    the_same_steps!(&mut pg);
    drop(pg);

    let paths = memchat::memory::SessionPaths::new(dir.path(), "s");
    let file_active = memchat::memory::session::read_log(&paths, "s").unwrap();
    let (file_archive, _) = memchat::memory::session::read_archive(&paths.archive).unwrap();
    let file_all = transfer::whole_conversation(file_archive.clone(), &file_active);

    // A fresh connection reads back what was committed.
    let again = db.store();
    let pg_active = again.read("s").unwrap();
    let pg_archive = again.read_archive("s").unwrap();
    assert_eq!(
        again.open_session("s").unwrap().read_archive().unwrap(),
        pg_archive,
        "the open session reads the same archive"
    );
    assert_eq!(timeless(pg_archive.clone()), timeless(file_archive));
    assert_eq!(
        timeless(transfer::active_records(&pg_active)),
        timeless(transfer::active_records(&file_active))
    );
    let pg_all = transfer::whole_conversation(pg_archive, &pg_active);
    assert_eq!(timeless(pg_all.clone()), timeless(file_all.clone()));
    assert_eq!(pg_active.last_seq, file_active.last_seq);
    assert_eq!(pg_active.settings, file_active.settings);
    assert_eq!(pg_active.settings.title.as_deref(), Some("A title"));
    let (pg_all, file_all) = (timeless(pg_all), timeless(file_all));
    assert_eq!(
        transfer::to_openai_json(&pg_all),
        transfer::to_openai_json(&file_all)
    );
    assert_eq!(
        transfer::to_markdown("s", &pg_all),
        transfer::to_markdown("s", &file_all)
    );
    // The late count reached its row, the NUL survived exactly.
    let reopened = again.open_session("s").unwrap();
    assert!(!reopened.is_new());
    assert!(
        pg_all
            .iter()
            .any(|r| matches!(r, Record::Message(m) if m.content.contains('\0'))),
        "a NUL is kept"
    );
    let late = pg_all.iter().find_map(|r| match r {
        Record::Message(m) if m.content.starts_with("question 0") => m.tokens.clone(),
        _ => None,
    });
    assert_eq!(late, counted(7));
    // Full-text search works on the content column.
    let hits = db.query(
        "SELECT seq::text FROM memchat_records WHERE search @@ to_tsquery('simple', 'verbose')",
    );
    assert_eq!(hits.len(), 1);
}

#[test]
fn the_schema_is_created_once_and_a_newer_one_is_refused() {
    let Some(db) = TestDb::new("the_schema_is_created_once") else {
        return;
    };
    db.store().check().unwrap();
    assert_eq!(db.query("SELECT version::text FROM memchat_schema"), ["3"]);
    db.store().open_session("a").unwrap();
    db.store().check().unwrap();
    db.sql("UPDATE memchat_schema SET version = 99");
    let error = db.store().open_session("a").unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("schema version 99, newer than this memchat's (3)"),
        "{text}"
    );
    assert!(text.contains("upgrade memchat"), "{text}");
    assert_eq!(exit_for_error(&error.into()), Exit::Store);
    assert_eq!(
        db.query("SELECT version::text FROM memchat_schema"),
        ["99"],
        "untouched"
    );
}

#[test]
fn sessions_are_listed_renamed_deleted_and_imported() {
    let Some(db) = TestDb::new("sessions_are_listed_renamed_deleted_and_imported") else {
        return;
    };
    let store = db.store();
    let mut a = store.open_session("a").unwrap();
    a.append(Role::User, "hello".into(), None, false, None)
        .unwrap();
    drop(a);
    let mut b = store.open_session("b").unwrap();
    b.append(Role::User, "newer".into(), None, false, None)
        .unwrap();
    drop(b);
    assert_eq!(store.names().unwrap(), ["a", "b"]);
    assert_eq!(store.most_recent().unwrap().as_deref(), Some("b"));
    let (a_time, b_time) = (store.last_used("a").unwrap(), store.last_used("b").unwrap());
    assert!(a_time.unwrap() <= b_time.unwrap());
    assert_eq!(store.last_used("nope").unwrap(), None);
    let infos = store.infos().unwrap();
    assert_eq!(infos[0].name, "b");
    assert_eq!(infos[1].contents.messages.len(), 1);

    store.rename("a", "c").unwrap();
    assert!(matches!(store.rename("c", "b"), Err(StoreError::Exists(n)) if n == "b"));
    assert!(matches!(
        store.rename("zz", "y"),
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.names().unwrap(), ["b", "c"]);
    assert_eq!(store.read("c").unwrap().messages[0].content, "hello");

    let records =
        transfer::whole_conversation(store.read_archive("c").unwrap(), &store.read("c").unwrap());
    store
        .create_session(
            "d",
            "2026-11-22T10:00:00Z",
            &SessionSettings::default(),
            &[],
            &records,
        )
        .unwrap();
    assert!(matches!(
        store.create_session("d", "x", &SessionSettings::default(), &[], &records),
        Err(StoreError::Exists(_))
    ));
    assert_eq!(store.read("d").unwrap().messages[0].content, "hello");
    store.delete("c").unwrap();
    assert!(matches!(store.delete("c"), Err(StoreError::NotFound(_))));
    assert_eq!(store.names().unwrap(), ["b", "d"]);
    assert_eq!(
        db.query("SELECT count(*)::text FROM memchat_records"),
        ["2"],
        "c's rows went with it"
    );
    assert!(
        store.open_session("bad.name").is_err(),
        "a new name with a dot"
    );
}

#[test]
fn a_second_client_waits_for_the_turn_then_fails_clearly_and_never_interleaves() {
    let Some(db) = TestDb::new("a_second_client_waits_for_the_turn") else {
        return;
    };
    let (one, two) = (
        db.store(),
        PgStore::open(&db.url, Duration::from_millis(300)).unwrap(),
    );
    let mut a = one.open_session("s").unwrap();
    let mut b = two.open_session("s").unwrap();
    a.begin_turn().unwrap();
    a.append(Role::User, "from a".into(), None, false, None)
        .unwrap();
    let error = b.begin_turn().unwrap_err();
    assert!(matches!(error, StoreError::Locked { .. }), "{error}");
    assert!(
        error.to_string().contains("in use by another memchat"),
        "{error}"
    );
    // A write outside a turn waits for a's turn too, and then fails.
    let error = b
        .append(Role::User, "from b".into(), None, false, None)
        .unwrap_err();
    assert!(matches!(error, StoreError::Locked { .. }), "{error}");
    a.append(Role::Assistant, "reply to a".into(), None, false, None)
        .unwrap();
    a.end_turn().unwrap();

    // b's copy is stale: a write from it is refused and stores nothing.
    let error = b
        .append(Role::User, "stale".into(), None, false, None)
        .unwrap_err();
    assert!(
        error.to_string().contains("changed by another memchat"),
        "{error}"
    );
    assert_eq!(exit_for_error(&error.into()), Exit::Store);
    // Its next turn reloads, then goes on after a's messages.
    assert!(b.begin_turn().unwrap(), "reloaded");
    assert_eq!(b.messages().len(), 2);
    b.append(Role::User, "from b".into(), None, false, None)
        .unwrap();
    b.end_turn().unwrap();
    let seqs = db.query("SELECT seq::text FROM memchat_records ORDER BY seq");
    assert_eq!(seqs, ["1", "2", "3"]);
    // A REPL left open between turns holds nothing.
    a.begin_turn().unwrap();
    a.end_turn().unwrap();
    b.begin_turn().unwrap();
    b.end_turn().unwrap();
}

#[test]
fn the_store_boundary_traits_work_on_postgres() {
    let Some(db) = TestDb::new("the_store_boundary_traits_work_on_postgres") else {
        return;
    };
    let store = memchat::pg::store_impl::open_store(&db.url, WAIT, None).unwrap();
    assert!(store.location().starts_with("postgres://"));
    let mut session = store.open_session("s").unwrap();
    assert!(session.is_new());
    session.begin_turn().unwrap();
    session
        .append(Role::User, "hi".into(), None, false, None)
        .unwrap();
    session
        .append(Role::Assistant, "hello".into(), None, false, None)
        .unwrap();
    assert_eq!(session.archive_tail(1).unwrap(), 1);
    session.end_turn();
    assert_eq!(session.read_archive().unwrap().len(), 1);
    drop(session);
    assert_eq!(store.list_sessions().unwrap(), ["s"]);
    assert!(store.exists("s").unwrap() && !store.exists("t").unwrap());
    let contents = store.read_session("s", true).unwrap();
    assert_eq!(
        (contents.active.messages.len(), contents.archived.len()),
        (1, 1)
    );
    assert!(contents.last_used.is_some());
    let error = store.repair("s").unwrap_err().to_string();
    assert!(error.contains("repair is for the file store"), "{error}");
    store.rename_session("s", "t").unwrap();
    store.delete_session("t").unwrap();
    assert!(store.list_sessions().unwrap().is_empty());
}

/// The same conversation, driven through the binary in all three modes on
/// the memory directory and on PostgreSQL (`--store`), ends the same: the
/// same export, the same listing, compaction and archive included.
#[test]
fn the_binary_chats_on_postgres_in_every_mode_exactly_as_on_files() {
    use crate::support::{Sandbox, text};
    let Some(db) = TestDb::new("the_binary_chats_on_postgres_in_every_mode") else {
        return;
    };
    let url = db
        .url
        .replace("postgres://postgres@", "postgres://postgres:topsecret@");
    let script: String = (1..=14)
        .map(|i| {
            format!(
                "fact {i}: the warehouse number {i} holds {} crates\n",
                i * 7
            )
        })
        .collect::<String>()
        + "/undo\nthe last line again\n";
    let drive = |store: Option<&str>| {
        let sandbox = Sandbox::new();
        let env: Vec<(&str, &str)> = store.map(|u| ("MEMCHAT_STORE", u)).into_iter().collect();
        let run = |args: &[&str], stdin: Option<&[u8]>| {
            let out = sandbox.run(args, &env, stdin);
            let stderr = text(&out.stderr);
            assert!(out.status.success(), "{args:?}: {stderr}");
            assert!(!stderr.contains("topsecret"), "{stderr}");
            text(&out.stdout)
        };
        let limit = ["--mock", "--context-limit", "1200", "-s", "alpha"];
        run(&[&limit[..], &["hello there"]].concat(), None);
        run(&limit, Some(script.as_bytes()));
        run(&["--mock", "--context-limit", "1200", "-c", "and on"], None);
        run(&["--mock", "-s", "beta", "another session"], None);
        let export = run(&["export", "alpha", "--format", "json"], None);
        let listing = run(&["sessions"], None);
        let listing: Vec<String> = listing
            .lines()
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .collect();
        (export, listing)
    };
    let (file_export, file_listing) = drive(None);
    let (pg_export, pg_listing) = drive(Some(&url));
    assert!(file_export.contains("warehouse number 14"), "{file_export}");
    assert_eq!(pg_export, file_export);
    assert_eq!(pg_listing, file_listing);
    let archived = admin_query(
        &db.base,
        &format!(
            "SELECT count(*)::text FROM {}.memchat_records WHERE archived",
            db.schema
        ),
    );
    assert_ne!(
        archived,
        vec!["0".to_string()],
        "compaction archived on PostgreSQL"
    );
}
