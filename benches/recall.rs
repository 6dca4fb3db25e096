//! Search and recall, measured: the fidelity of recall (the share of
//! questions about long-gone facts whose request holds the fact, recall on
//! and off), search over 100,000 archived messages (in process, and the
//! whole `memchat search` process), what recall adds to a turn at 100,000
//! archived messages, and the index update a compaction pays.
//!
//! `cargo bench --bench recall` (release build). Figures in BENCHMARKS.md,
//! "Search and recall".

#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmarks fail loudly

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use memchat::budget::Budget;
use memchat::chat::Engine;
use memchat::client::mock::MockModel;
use memchat::interrupt::Interrupt;
use memchat::memory::format::{MessageRecord, Record, Role, SessionSettings, SummaryRecord};
use memchat::memory::{SessionPaths, archive};
use memchat::recall::Mode;
use memchat::store::index::SearchIndex;
use memchat::store::{FileStore, Scope, SearchQuery, Store};
use memchat::tokens::TokenCounter;

#[path = "../tests/fidelity/mod.rs"]
mod fidelity;

const ARCHIVED: u64 = 100_000;
const RUNS: usize = 21;
const WAIT: Duration = Duration::from_secs(5);

/// Words that make archived messages read like a conversation: a few
/// thousand distinct ones, so terms have realistic document frequencies.
fn word(i: u64) -> String {
    const PARTS: [&str; 16] = [
        "ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "zi", "pa", "do", "fu", "ge", "hi", "ja",
        "wu",
    ];
    let mut n = i % 4096;
    let mut w = String::new();
    for _ in 0..3 {
        w.push_str(PARTS[(n % 16) as usize]);
        n /= 16;
    }
    w
}

fn message(seq: u64, content: String) -> MessageRecord {
    MessageRecord {
        seq,
        role: if seq % 2 == 1 {
            Role::User
        } else {
            Role::Assistant
        },
        content,
        at: "2026-11-20T10:00:00Z".into(),
        model: None,
        interrupted: false,
        truncated: false,
        tokens: None,
        usage: None,
        late_tokens: None,
    }
}

/// A conversation's text: 30 words, a skewed pick from the vocabulary,
/// and a word of its own (`tagSEQ`), as a name or a number would be.
fn content(seq: u64) -> String {
    format!("{} tag{seq}", words(seq))
}

fn words(seq: u64) -> String {
    let mut x = seq.wrapping_mul(2_654_435_761);
    (0..30)
        .map(|_| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            // Squaring skews the pick toward common words, as language does.
            let r = (x >> 40) % 4096;
            word(r * r / 4096)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// A session of `ARCHIVED` archived messages, a summary covering them all
/// and two active turns.
fn big_session(dir: &Path) -> FileStore {
    let store = FileStore::new(dir, WAIT);
    let archived: Vec<Record> = (1..=ARCHIVED)
        .map(|seq| Record::Message(message(seq, content(seq))))
        .collect();
    let summary = Record::Summary(SummaryRecord {
        seq: ARCHIVED + 1,
        content: "Earlier: a long conversation.".into(),
        covers: [1, ARCHIVED],
        at: "2026-11-20T10:00:00Z".into(),
        method: "model".into(),
        tokens: None,
    });
    let active: Vec<Record> = std::iter::once(summary)
        .chain((ARCHIVED + 2..ARCHIVED + 6).map(|seq| Record::Message(message(seq, content(seq)))))
        .collect();
    store
        .create_session("big", &SessionSettings::default(), &archived, &active)
        .unwrap();
    store
}

fn fidelity_figures() {
    for mode in [Mode::Auto, Mode::Off] {
        let start = Instant::now();
        let o = fidelity::run(200, 1000, 2048, mode);
        println!(
            "fidelity, recall {mode}: {}/{} questions answered ({:.1}%), {} turns, {} compactions, \
             {} archived records, largest request {} of B {} ({:.1} s)",
            o.answered,
            o.facts,
            100.0 * o.answered as f64 / o.facts as f64,
            o.turns,
            o.compactions,
            o.archived,
            o.largest_request,
            o.budget,
            start.elapsed().as_secs_f64()
        );
    }
}

fn search_figures(dir: &Path, store: &FileStore) {
    // The first search builds the index from the archive.
    let query = |terms: &[&str], scope| SearchQuery {
        terms: terms.iter().map(|t| t.to_string()).collect(),
        session: None,
        scope,
        limit: 20,
    };
    let start = Instant::now();
    store
        .search(&query(&[&word(7)], Scope::Everything))
        .unwrap();
    println!(
        "index built from {ARCHIVED} archived messages: {} (once; later searches read only what is new)",
        ms(start.elapsed())
    );
    let index = std::fs::metadata(dir.join(".search-index.sqlite"))
        .map(|m| m.len())
        .unwrap_or(0)
        + std::fs::metadata(dir.join(".search-index.sqlite-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
    let archive = std::fs::metadata(dir.join("big.archive.jsonl"))
        .unwrap()
        .len();
    println!(
        "index size: {:.1} MB for an archive of {:.1} MB",
        index as f64 / 1e6,
        archive as f64 / 1e6
    );
    for terms in [
        vec![word(3)],
        vec![word(40), word(900), word(2500)],
        vec![word(4000), word(4001)],
    ] {
        let terms: Vec<&str> = terms.iter().map(String::as_str).collect();
        let times: Vec<Duration> = (0..RUNS)
            .map(|_| {
                let start = Instant::now();
                let found = store.search(&query(&terms, Scope::Everything)).unwrap();
                std::hint::black_box(found);
                start.elapsed()
            })
            .collect();
        println!(
            "search {terms:?} over {ARCHIVED} archived, in process (sync check + query): median {}",
            ms(median(times))
        );
    }
    let binary = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/memchat");
    if binary.exists() {
        let times: Vec<Duration> = (0..RUNS)
            .map(|_| {
                let start = Instant::now();
                let out = Command::new(&binary)
                    .args(["search", &word(40), &word(900), "--memory-dir"])
                    .arg(dir)
                    .output()
                    .unwrap();
                assert!(out.status.success());
                start.elapsed()
            })
            .collect();
        println!(
            "`memchat search` whole process over {ARCHIVED} archived: median {}",
            ms(median(times))
        );
    }
}

fn turn_figures(dir: &Path, store: FileStore) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let counter = TokenCounter::for_model("gpt-4o-mini");
    counter.count_raw("warm the tokenizer");
    let store: Arc<dyn Store> = Arc::new(store);
    let mut medians = Vec::new();
    for mode in [Mode::Off, Mode::Auto] {
        let session = store.open_session("big").unwrap();
        let model = MockModel::new(counter, Duration::ZERO);
        let budget = Budget::new(128_000, None, None).unwrap();
        let mut engine = Engine::new(store.clone(), session, Box::new(model), counter, budget);
        engine.set_recall(mode, memchat::recall::DEFAULT_PERCENT);
        let mut recalled = 0;
        let times: Vec<Duration> = (0..RUNS)
            .map(|i| {
                // A question about an archived message: a few of its words
                // and its own word, so recall finds it among 100,000.
                let target = 1 + (i as u64 * 4_567) % ARCHIVED;
                let start_words: Vec<String> = words(target)
                    .split(' ')
                    .take(4)
                    .map(str::to_string)
                    .collect();
                let text = format!(
                    "what did we say about tag{target} and {}?",
                    start_words.join(" ")
                );
                let start = Instant::now();
                let report = runtime
                    .block_on(engine.send(&text, &mut std::io::sink(), &mut Interrupt::never()))
                    .unwrap();
                recalled += report
                    .notices
                    .iter()
                    .filter(|n| n.starts_with("recall:"))
                    .count();
                start.elapsed()
            })
            .collect();
        // Undo the turns so the next mode starts from the same history.
        while engine.session().messages().len() > 4 {
            engine.undo().unwrap();
        }
        let m = median(times);
        println!(
            "turn at {ARCHIVED} archived, recall {mode}: median {} ({recalled} of {RUNS} turns recalled)",
            ms(m)
        );
        medians.push(m);
    }
    println!(
        "recall adds {} to a turn at {ARCHIVED} archived messages",
        ms(medians[1].saturating_sub(medians[0]))
    );
    // The index update a compaction pays: 8 messages (4 turns) archived.
    let paths = SessionPaths::new(dir, "big");
    let mut next = 10 * ARCHIVED;
    let times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let batch: Vec<Record> = (0..8)
                .map(|k| Record::Message(message(next + k, content(next + k))))
                .collect();
            next += 8;
            archive::append(&paths, "big", &batch).unwrap();
            let start = Instant::now();
            let mut index = SearchIndex::open(dir).unwrap();
            index.sync_archive("big", &paths).unwrap();
            start.elapsed()
        })
        .collect();
    println!(
        "index update after a compaction (8 messages into an archive of {ARCHIVED}): median {}",
        ms(median(times))
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    fidelity_figures();
    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let store = big_session(dir.path());
    println!(
        "made a session of {ARCHIVED} archived messages in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    search_figures(dir.path(), &store);
    turn_figures(dir.path(), store);
}
