//! The PostgreSQL store against the file store, as one one-shot turn uses
//! them: open the store and the session, take the turn, store the user's
//! message and the reply (each durable: fsync / commit), end the turn. Also
//! the time per committed message, and the turn at 100,000 archived
//! messages against none (the archive must stay off the hot path).
//!
//! `MEMCHAT_TEST_DATABASE_URL=postgres://… cargo bench --bench pg_store`
//! (default: the local server at 127.0.0.1:5432, database `test`); it works
//! in a schema of its own, dropped at the end. Figures in BENCHMARKS.md.

#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmarks fail loudly

use std::time::{Duration, Instant};

use memchat::memory::Session;
use memchat::memory::format::{self, MessageRecord, Record, Role, SessionSettings};
use memchat::pg::PgStore;

const WAIT: Duration = Duration::from_secs(5);
const RUNS: usize = 40;

fn admin(base: &str, sql: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(base, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client.batch_execute(sql).await.unwrap();
    });
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn message(seq: u64, role: Role) -> Record {
    Record::Message(MessageRecord {
        seq,
        role,
        content: format!(
            "Message {seq}: the parcel for order {} goes to warehouse {}.",
            seq * 13 % 101,
            seq % 7
        ),
        at: format::now(),
        model: None,
        interrupted: false,
        truncated: false,
        tokens: None,
        usage: None,
        late_tokens: None,
    })
}

fn conversation(from: u64, n: u64) -> Vec<Record> {
    (from..from + n)
        .map(|seq| {
            message(
                seq,
                if seq % 2 == 1 {
                    Role::User
                } else {
                    Role::Assistant
                },
            )
        })
        .collect()
}

/// One one-shot turn's store work on the PostgreSQL store.
fn pg_turn(url: &str, name: &str) -> Duration {
    let start = Instant::now();
    let store = PgStore::open(url, WAIT).unwrap();
    let mut session = store.open_session(name).unwrap();
    session.begin_turn().unwrap();
    session
        .append(Role::User, "What is 2 + 2?".into(), None, false, None)
        .unwrap();
    session
        .append(Role::Assistant, "4".into(), Some("m".into()), false, None)
        .unwrap();
    session.end_turn().unwrap();
    drop(session);
    drop(store);
    start.elapsed()
}

/// The same on the file store.
fn file_turn(dir: &std::path::Path, name: &str) -> Duration {
    let start = Instant::now();
    let mut session = Session::open(dir, name, WAIT).unwrap();
    session
        .append(Role::User, "What is 2 + 2?".into(), None, false, None)
        .unwrap();
    session
        .append(Role::Assistant, "4".into(), Some("m".into()), false, None)
        .unwrap();
    drop(session);
    start.elapsed()
}

fn main() {
    let base = std::env::var("MEMCHAT_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
    let schema = format!("memchat_bench_{}", std::process::id());
    admin(&base, &format!("CREATE SCHEMA {schema}"));
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-csearch_path%3D{schema}&sslmode=disable");
    let dir = tempfile::tempdir().unwrap();
    PgStore::open(&url, WAIT).unwrap().check().unwrap();

    // Fresh sessions, one per run, interleaved so load hits both alike.
    let (mut pg, mut file) = (Vec::new(), Vec::new());
    for i in 0..RUNS {
        pg.push(pg_turn(&url, &format!("fresh{i}")));
        file.push(file_turn(dir.path(), &format!("fresh{i}")));
    }
    let (pg_fresh, file_fresh) = (median(pg), median(file));
    println!(
        "one-shot turn, fresh session: postgres {} file {} = {:.2}x",
        ms(pg_fresh),
        ms(file_fresh),
        pg_fresh.as_secs_f64() / file_fresh.as_secs_f64()
    );

    // 100,000 archived messages vs none, same active history (20 messages).
    let store = PgStore::open(&url, WAIT).unwrap();
    let none = SessionSettings::default();
    store
        .create_session(
            "big",
            "t",
            &none,
            &conversation(1, 100_000),
            &conversation(100_001, 20),
        )
        .unwrap();
    store
        .create_session("small", "t", &none, &[], &conversation(100_001, 20))
        .unwrap();
    memchat::memory::session::create_session(
        dir.path(),
        "big",
        "t",
        &none,
        &conversation(1, 100_000),
        &conversation(100_001, 20),
        WAIT,
    )
    .unwrap();
    memchat::memory::session::create_session(
        dir.path(),
        "small",
        "t",
        &none,
        &[],
        &conversation(100_001, 20),
        WAIT,
    )
    .unwrap();
    drop(store);
    let (mut big, mut small, mut fbig, mut fsmall) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        big.push(pg_turn(&url, "big"));
        small.push(pg_turn(&url, "small"));
        fbig.push(file_turn(dir.path(), "big"));
        fsmall.push(file_turn(dir.path(), "small"));
    }
    let (big, small, fbig, fsmall) = (median(big), median(small), median(fbig), median(fsmall));
    println!(
        "turn at 100,000 archived vs none: postgres {} vs {} = {:.2}x; file {} vs {} = {:.2}x",
        ms(big),
        ms(small),
        big.as_secs_f64() / small.as_secs_f64(),
        ms(fbig),
        ms(fsmall),
        fbig.as_secs_f64() / fsmall.as_secs_f64()
    );

    // Time per committed message, one open session, inside one turn.
    let store = PgStore::open(&url, WAIT).unwrap();
    let mut session = store.open_session("appends").unwrap();
    session.begin_turn().unwrap();
    let mut file_session = Session::open(dir.path(), "appends", WAIT).unwrap();
    let (mut pg, mut file) = (Vec::new(), Vec::new());
    for i in 0..400 {
        let start = Instant::now();
        session
            .append(Role::User, format!("message {i}"), None, false, None)
            .unwrap();
        pg.push(start.elapsed());
        let start = Instant::now();
        file_session
            .append(Role::User, format!("message {i}"), None, false, None)
            .unwrap();
        file.push(start.elapsed());
    }
    session.end_turn().unwrap();
    println!(
        "per committed message (median of 400): postgres {} file {}",
        ms(median(pg)),
        ms(median(file))
    );
    drop(session);
    drop(store);
    admin(&base, &format!("DROP SCHEMA {schema} CASCADE"));
}
