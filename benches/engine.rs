//! Micro-benchmarks of memchat's own work, the parts that run on every turn
//! or start-up, at 1k, 10k and 100k messages where size applies:
//! loading an active log, appending a message with fsync, counting tokens on
//! a full window, planning the request window and a compaction, performing a
//! compaction on disk (without the model call), and one whole local turn.
//!
//! `cargo bench --bench engine`; figures are in BENCHMARKS.md.

#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmarks fail loudly

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use memchat::budget::{Budget, HistorySizes, plan_eviction, plan_window};
use memchat::chat::Engine;
use memchat::client::mock::MockModel;
use memchat::interrupt::Interrupt;
use memchat::memory::Session;
use memchat::memory::format::{self, Header, MessageRecord, Record, Role, TokenCache};
use memchat::memory::session::parse_log;
use memchat::tokens::TokenCounter;

const SIZES: [usize; 3] = [1_000, 10_000, 100_000];

fn text(i: usize) -> String {
    format!(
        "Message {i}: the parcel for order {} goes to warehouse {} and needs a signature.",
        i * 13 % 101,
        i % 7
    )
}

/// An active log of `n` messages with cached counts, as memchat writes it.
fn log_bytes(n: usize) -> Vec<u8> {
    let counter = TokenCounter::for_model("gpt-4o-mini");
    let mut bytes = format::to_line(&Record::Header(Header::new("bench", format::now())));
    for i in 0..n {
        let content = text(i);
        let record = MessageRecord {
            seq: i as u64 + 1,
            role: if i % 2 == 0 {
                Role::User
            } else {
                Role::Assistant
            },
            tokens: Some(counter.cache(&content)),
            content,
            at: format::now(),
            model: None,
            interrupted: false,
            truncated: false,
            usage: None,
            late_tokens: None,
        };
        bytes.extend(format::to_line(&Record::Message(record)));
    }
    bytes
}

fn roles(n: usize) -> Vec<Role> {
    (0..n)
        .map(|i| {
            if i % 2 == 0 {
                Role::User
            } else {
                Role::Assistant
            }
        })
        .collect()
}

fn load(c: &mut Criterion) {
    let mut group = c.benchmark_group("load_active_log");
    for n in SIZES {
        let bytes = log_bytes(n);
        group.bench_with_input(BenchmarkId::from_parameter(n), &bytes, |b, bytes| {
            b.iter(|| parse_log(black_box(bytes), Path::new("bench.jsonl"), "bench").unwrap())
        });
    }
    group.finish();
}

fn append(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut session = Session::open(dir.path(), "bench", Duration::from_secs(1)).unwrap();
    let content = "x".repeat(500);
    c.bench_function("append_fsync_500_bytes", |b| {
        b.iter(|| {
            session
                .append(Role::User, content.clone(), None, false, None)
                .unwrap();
        })
    });
}

fn count(c: &mut Criterion) {
    let counter = TokenCounter::for_model("gpt-4o-mini");
    let budget = Budget::new(128_000, None, None).unwrap();
    // A window's worth of text: about B tokens.
    let mut window = String::new();
    let mut i = 0;
    while counter.count_raw(&window) < budget.cap - 2_000 {
        for _ in 0..200 {
            window.push_str(&text(i));
            window.push('\n');
            i += 1;
        }
    }
    let tokens = counter.count_raw(&window);
    let mut group = c.benchmark_group("count_tokens");
    group.sample_size(20);
    group.bench_function(format!("full_window_{tokens}_tokens"), |b| {
        b.iter(|| counter.count_raw(black_box(&window)))
    });
    group.bench_function("one_word", |b| {
        b.iter(|| counter.count_raw(black_box("hello")))
    });
    // What the first count of a process pays: the rank tables indexed
    // (memchat::bpe), once per encoding.
    group.sample_size(10);
    group.bench_function("load_tables_o200k", |b| {
        b.iter(memchat::bpe::Bpe::o200k_base)
    });
    group.bench_function("load_tables_cl100k", |b| {
        b.iter(memchat::bpe::Bpe::cl100k_base)
    });
    group.finish();
}

fn planners(c: &mut Criterion) {
    let budget = Budget::new(128_000, None, None).unwrap();
    let mut window = c.benchmark_group("plan_window");
    for n in SIZES {
        let messages = vec![30u32; n];
        let roles = roles(n);
        let sizes = HistorySizes {
            fixed: 50,
            summary: 900,
            full_summary: 2100,
            messages: &messages,
            roles: &roles,
        };
        window.bench_with_input(BenchmarkId::from_parameter(n), &sizes, |b, sizes| {
            b.iter(|| plan_window(black_box(sizes), &budget, 880, |r| r + 60).unwrap())
        });
    }
    window.finish();
    let mut evict = c.benchmark_group("plan_eviction");
    for n in SIZES {
        let messages = vec![30u32; n];
        let roles = roles(n);
        let sizes = HistorySizes {
            fixed: 50,
            summary: 900,
            full_summary: 2100,
            messages: &messages,
            roles: &roles,
        };
        evict.bench_with_input(BenchmarkId::from_parameter(n), &sizes, |b, sizes| {
            b.iter(|| plan_eviction(black_box(sizes), &budget, budget.target, 2))
        });
    }
    evict.finish();
}

/// A session directory holding an active log of `n` messages.
fn session_dir(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.jsonl");
    std::fs::write(&path, log_bytes(n)).unwrap();
    // As in real use, the log is already on disk: otherwise the turn's first
    // fsync would pay for flushing the whole freshly written file.
    std::fs::File::open(&path).unwrap().sync_all().unwrap();
    dir
}

fn compaction(c: &mut Criterion) {
    let counter = TokenCounter::for_model("gpt-4o-mini");
    let mut group = c.benchmark_group("compaction_on_disk");
    group.sample_size(20);
    // 3,000 messages of ~25 tokens is about H for a 128k window.
    for n in [1_000usize, 3_000, 10_000] {
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_batched(
                || {
                    let dir = session_dir(n);
                    let session =
                        Session::open(dir.path(), "bench", Duration::from_secs(1)).unwrap();
                    (dir, session)
                },
                |(dir, mut session)| {
                    let summary =
                        "The user ships parcels; orders go to seven warehouses.".repeat(20);
                    let cache = Some(TokenCache {
                        encoding: counter.encoding().name().into(),
                        count: 200,
                    });
                    session
                        .compact(n * 45 / 100, summary, "model", cache)
                        .unwrap();
                    (dir, session)
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

fn local_turn(c: &mut Criterion) {
    // One whole turn with a model that answers at once: validate, append +
    // fsync, plan the window, "stream", append + fsync, check the trigger.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let counter = TokenCounter::for_model("gpt-4o-mini");
    let budget = Budget::new(128_000, None, None).unwrap();
    let mut group = c.benchmark_group("local_turn");
    group.sample_size(30);
    for n in [10usize, 1_000, 3_000] {
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_batched(
                || {
                    let dir = session_dir(n);
                    let session =
                        Session::open(dir.path(), "bench", Duration::from_secs(1)).unwrap();
                    let store = std::sync::Arc::new(memchat::store::FileStore::new(
                        dir.path(),
                        Duration::from_secs(1),
                    ));
                    let engine = Engine::new(
                        store,
                        Box::new(session),
                        Box::new(MockModel::new(counter, Duration::ZERO)),
                        counter,
                        budget,
                    );
                    (dir, engine)
                },
                |(dir, mut engine)| {
                    let mut sink = Vec::new();
                    runtime
                        .block_on(engine.send(
                            "What goes to warehouse 3?",
                            &mut sink,
                            &mut Interrupt::never(),
                        ))
                        .unwrap();
                    // Returned, so the session is freed outside the timing,
                    // as in the REPL where it lives on.
                    (dir, engine)
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(
    benches, load, append, count, planners, compaction, local_turn
);
criterion_main!(benches);
