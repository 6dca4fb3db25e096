//! Crash safety with real SIGKILLs: memchat runs a script against a slow
//! (mock) model with a small context window, so kills land mid-append,
//! mid-reply and mid-compaction, and is killed at a random instant, over and
//! over, on the same session. After every kill the session must open, every
//! user message whose turn started must be there exactly once and in order,
//! `seq` must rise strictly, and active log + archive must agree.
//!
//! 200 kills per `cargo test`; `MEMCHAT_CRASH_KILLS=5000 cargo test --test
//! crash -- --nocapture` for a long run. The seed is printed and can be
//! replayed with `MEMCHAT_CRASH_SEED`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use memchat::memory::Session;
use memchat::memory::format::{Record, Role};
use memchat::memory::session::read_archive;
use support::Sandbox;

/// xorshift64*: deterministic for a seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn line(i: usize) -> String {
    format!(
        "Crash line {i}: the parcel for order {} goes to warehouse {} and needs a signature from the night shift before noon.",
        i * 13 % 101,
        i % 7
    )
}

/// Opens the session as memchat would, checks every invariant, and returns
/// how many user messages (a prefix of the script) are stored.
fn verify(sandbox: &Sandbox, kill: usize) -> usize {
    let session = Session::open(&sandbox.memory(), "default", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("kill {kill}: the session does not open: {e}"));
    let (archived, _torn) = read_archive(&session.paths().archive).unwrap();
    let mut by_seq: BTreeMap<u64, Record> = BTreeMap::new();
    for record in archived {
        by_seq.insert(record.seq().unwrap(), record);
    }
    let mut active: Vec<Record> = Vec::new();
    active.extend(session.summary().cloned().map(Record::Summary));
    active.extend(session.messages().iter().cloned().map(Record::Message));
    let mut last = 0;
    for record in session.messages() {
        assert!(
            record.seq > last,
            "kill {kill}: seq does not rise in the active log"
        );
        last = record.seq;
    }
    for record in active {
        let seq = record.seq().unwrap();
        if let Some(archived) = by_seq.get(&seq) {
            assert_eq!(
                archived, &record,
                "kill {kill}: seq {seq} differs between archive and active log"
            );
        }
        by_seq.insert(seq, record);
    }
    let users: Vec<String> = by_seq
        .values()
        .filter_map(|r| match r {
            Record::Message(m) if m.role == Role::User => Some(m.content.clone()),
            _ => None,
        })
        .collect();
    for (i, content) in users.iter().enumerate() {
        assert_eq!(
            content,
            &line(i),
            "kill {kill}: user message {i} is missing, doubled or changed"
        );
    }
    users.len()
}

#[test]
fn sigkill_at_random_instants_never_loses_a_started_turn() {
    let kills: usize = std::env::var("MEMCHAT_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let seed: u64 = std::env::var("MEMCHAT_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("crash test: {kills} kills, MEMCHAT_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let sandbox = Sandbox::new();
    let mut stored = 0usize;
    let started = Instant::now();
    let mut killed_mid_run = 0;
    for kill in 0..kills {
        let mut command = sandbox.command(&[
            "--mock",
            "--model",
            "gpt-4",
            "--mock-delay-ms",
            "1",
            "--context-limit",
            "1100",
        ]);
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = command.spawn().unwrap();
        let script: String = (stored..stored + 12).map(|i| line(i) + "\n").collect();
        let mut stdin = child.stdin.take().unwrap();
        std::thread::spawn(move || {
            let _ = stdin.write_all(script.as_bytes());
        });
        // Mostly mid-run, sometimes right at start-up (recovery, open).
        let wait = match rng.below(5) {
            0 => rng.below(4_000),
            // Long enough to load the tokenizer and finish compactions.
            1 => 100_000 + rng.below(400_000),
            _ => rng.below(60_000),
        };
        std::thread::sleep(Duration::from_micros(wait));
        if child.try_wait().unwrap().is_none() {
            killed_mid_run += 1;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let now = verify(&sandbox, kill);
        assert!(
            now >= stored,
            "kill {kill}: stored messages went from {stored} to {now}"
        );
        stored = now;
    }
    let archive = sandbox.records("default.archive.jsonl");
    println!(
        "crash test: {kills} kills ({killed_mid_run} mid-run) in {:.1}s; {stored} turns stored, {} archived records",
        started.elapsed().as_secs_f64(),
        archive.len()
    );
    assert!(
        killed_mid_run > kills / 2,
        "most kills must land while memchat runs"
    );
    assert!(stored > 20, "the runs made progress");
    assert!(!archive.is_empty(), "compaction ran between kills");
}
