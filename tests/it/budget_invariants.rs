//! The budget's invariants, over random conversations (proptest): random
//! window sizes, random message sizes (including messages larger than the
//! whole budget) and random reply sizes, driven through the real engine and
//! store with a model that records every request it is sent.
//!
//! - no request ever exceeds B tokens (replies and summary calls alike);
//! - after every completed turn the active log is at most B tokens;
//! - active log + archive hold every message ever appended, in `seq` order,
//!   none twice (after dedup), none changed;
//! - turns are never split (the active history starts at a user message);
//! - the K = 2 newest turns stay verbatim in the active log when they fit.
//!
//! The properties run on both stores from one definition (fewer cases on
//! PostgreSQL, where each case makes a schema).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use memchat::budget::Budget;
use memchat::chat::{Engine, TurnError};
use memchat::client::mock::MockModel;
use memchat::client::{ChatModel, ChatRequest, ClientError, Purpose, ReplyStream, StreamEvent};
use memchat::interrupt::Interrupt;
use memchat::memory::Session;
use memchat::memory::format::{Record, Role};
use memchat::tokens::{REPLY_PRIMING, TokenCounter};

use crate::support::{Sandbox, StoreKind};
use proptest::prelude::*;

/// Replies with queued sizes (in words, capped by max_tokens as a server
/// would), summarizes like the mock, records the size of every request.
struct RecordingModel {
    counter: TokenCounter,
    replies: Mutex<VecDeque<usize>>,
    requests: Arc<Mutex<Vec<(Purpose, u64)>>>,
    fail_summaries: bool,
}

fn words(n: usize, seed: usize) -> String {
    (0..n)
        .map(|i| format!("w{} ", (i * 7 + seed) % 97))
        .collect()
}

impl ChatModel for RecordingModel {
    fn name(&self) -> String {
        "recording".into()
    }

    fn stream(&self, request: ChatRequest) -> BoxFuture<'_, Result<ReplyStream, ClientError>> {
        let size: u64 = request
            .messages
            .iter()
            .map(|m| u64::from(self.counter.message_tokens(&m.content)))
            .sum::<u64>()
            + u64::from(REPLY_PRIMING);
        self.requests.lock().unwrap().push((request.purpose, size));
        let text = match request.purpose {
            Purpose::Summary if self.fail_summaries => {
                return Box::pin(async {
                    Err(ClientError::Server {
                        status: 500,
                        attempts: 1,
                        message: "down".into(),
                    })
                });
            }
            Purpose::Summary => MockModel::new(self.counter, Duration::ZERO).reply_text(&request),
            Purpose::Reply => {
                let n = self.replies.lock().unwrap().pop_front().unwrap_or(5);
                let text = words(n, 3);
                self.counter.truncate_to(&text, request.max_tokens)
            }
        };
        Box::pin(async move {
            let events = vec![
                Ok(StreamEvent::Text(text)),
                Ok(StreamEvent::Finished("stop".into())),
            ];
            Ok(futures::stream::iter(events).boxed())
        })
    }
}

fn run_conversation(
    kind: StoreKind,
    window: u32,
    turns: &[(usize, usize)],
    system: bool,
    fail_summaries: bool,
) {
    let Some(sandbox) = Sandbox::on(kind, "budget_invariants::run_conversation") else {
        return;
    };
    let store = sandbox.store();
    let counter = TokenCounter::for_model("gpt-4o-mini");
    let budget = Budget::new(window, None, None).unwrap();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let model = RecordingModel {
        counter,
        replies: Mutex::new(turns.iter().map(|&(_, r)| r).collect()),
        requests: requests.clone(),
        fail_summaries,
    };
    let mut session = store.open_session("prop").unwrap();
    if system {
        session
            .append(
                Role::System,
                "You are a careful assistant.".into(),
                None,
                false,
                None,
            )
            .unwrap();
    }
    let mut engine = Engine::new(store, session, Box::new(model), counter, budget);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut interrupt = Interrupt::never();
    let mut sent: Vec<(Role, String)> = Vec::new();
    for (i, &(user_words, _)) in turns.iter().enumerate() {
        let message = words(user_words, i);
        let mut out = Vec::new();
        match runtime.block_on(engine.send(&message, &mut out, &mut interrupt)) {
            Ok(report) => {
                sent.push((Role::User, message.clone()));
                sent.push((Role::Assistant, report.reply.clone()));
            }
            Err(TurnError::Refused(_)) => {
                // Refused before anything was written.
                assert!(
                    engine
                        .session()
                        .messages()
                        .iter()
                        .all(|m| m.content != message || sent.iter().any(|(_, s)| s == &message))
                );
                continue;
            }
            Err(e) => panic!("turn {i}: {e}"),
        }
        // After every completed turn the active log is within B.
        let stats = engine.stats();
        assert!(
            stats.history <= u64::from(budget.cap),
            "turn {i}: history {} > B {}",
            stats.history,
            budget.cap
        );
        // Turns are never split.
        if let Some(first) = engine.session().messages().first() {
            assert_eq!(
                first.role,
                Role::User,
                "turn {i}: the active history starts mid-turn"
            );
        }
        // The K = 2 newest turns stay verbatim whenever they fit under B
        // beside a full-size summary and the system prompt.
        let kept = sent.len().min(4);
        let newest = &sent[sent.len() - kept..];
        let newest_cost: u64 = newest
            .iter()
            .map(|(_, c)| u64::from(counter.message_tokens(c)))
            .sum();
        if newest_cost + u64::from(budget.summary_cap) + 100 <= u64::from(budget.cap) {
            let active = engine.session().messages();
            assert!(active.len() >= kept, "turn {i}: a kept turn was evicted");
            let tail: Vec<(Role, String)> = active[active.len() - kept..]
                .iter()
                .map(|m| (m.role, m.content.clone()))
                .collect();
            assert_eq!(tail, newest, "turn {i}: the newest turns are not verbatim");
        }
    }
    // No request ever exceeded B.
    for (purpose, size) in requests.lock().unwrap().iter() {
        assert!(
            *size <= u64::from(budget.cap),
            "{purpose:?} request of {size} tokens > B {}",
            budget.cap
        );
    }
    // Active + archive = everything, in order, once, unchanged.
    let mut all: Vec<Record> = engine.session().read_archive().unwrap();
    all.extend(
        engine
            .session()
            .messages()
            .iter()
            .cloned()
            .map(Record::Message),
    );
    all.sort_by_key(Record::seq);
    let before = all.len();
    all.dedup_by_key(|r| r.seq());
    assert_eq!(before, all.len(), "a record is both archived and active");
    let conversation: Vec<(Role, String)> = all
        .iter()
        .filter_map(|r| match r {
            Record::Message(m) if m.role != Role::System => Some((m.role, m.content.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(conversation, sent);
}

proptest! {
    #![proptest_config(crate::support::proptest_config(40))]

    #[test]
    fn no_request_exceeds_the_budget_and_nothing_is_lost(
        window in 1024u32..6000,
        turns in prop::collection::vec((1usize..700, 1usize..500), 1..40),
        system in any::<bool>(),
    ) {
        run_conversation(StoreKind::Files, window, &turns, system, false);
    }

    #[test]
    fn the_extractive_fallback_keeps_the_same_promises(
        window in 1024u32..4000,
        turns in prop::collection::vec((1usize..400, 1usize..300), 5..30),
    ) {
        run_conversation(StoreKind::Files, window, &turns, true, true);
    }
}

proptest! {
    #![proptest_config(crate::support::proptest_config(8))]

    #[test]
    fn no_request_exceeds_the_budget_and_nothing_is_lost_on_postgres(
        window in 1024u32..6000,
        turns in prop::collection::vec((1usize..700, 1usize..500), 1..30),
        system in any::<bool>(),
    ) {
        run_conversation(StoreKind::Postgres, window, &turns, system, false);
    }

    #[test]
    fn the_extractive_fallback_keeps_the_same_promises_on_postgres(
        window in 1024u32..4000,
        turns in prop::collection::vec((1usize..400, 1usize..300), 5..20),
    ) {
        run_conversation(StoreKind::Postgres, window, &turns, true, true);
    }
}

#[test]
fn a_message_larger_than_the_budget_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let counter = TokenCounter::for_model("gpt-4o-mini");
    let budget = Budget::new(2000, None, None).unwrap();
    let session = Session::open(dir.path(), "big", Duration::from_secs(1)).unwrap();
    let model = MockModel::new(counter, Duration::ZERO);
    let mut engine = Engine::new(
        file_store(dir.path()),
        Box::new(session),
        Box::new(model),
        counter,
        budget,
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let error = runtime
        .block_on(engine.send(&words(3000, 1), &mut Vec::new(), &mut Interrupt::never()))
        .unwrap_err();
    assert!(
        matches!(error, TurnError::Refused(ref m) if m.contains("at most 1244")),
        "{error}"
    );
    assert!(engine.session().messages().is_empty());
    // Nothing at all: a new log's header waits for its first record.
    let log = std::fs::read_to_string(dir.path().join("big.jsonl")).unwrap();
    assert_eq!(log, "", "nothing written");
}

#[test]
fn a_failing_summarizer_falls_back_to_an_extractive_summary() {
    let dir = tempfile::tempdir().unwrap();
    let counter = TokenCounter::for_model("gpt-4o-mini");
    let budget = Budget::new(2000, None, None).unwrap();
    let session = Session::open(dir.path(), "fallback", Duration::from_secs(1)).unwrap();
    let model = RecordingModel {
        counter,
        replies: Mutex::new(VecDeque::new()),
        requests: Arc::new(Mutex::new(Vec::new())),
        fail_summaries: true,
    };
    let mut engine = Engine::new(
        file_store(dir.path()),
        Box::new(session),
        Box::new(model),
        counter,
        budget,
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut compacted = None;
    for i in 0..20 {
        let report = runtime
            .block_on(engine.send(&words(60, i), &mut Vec::new(), &mut Interrupt::never()))
            .unwrap();
        if report.compaction.is_some() {
            compacted = report.compaction;
            break;
        }
    }
    let report = compacted.expect("the history passed the trigger");
    assert_eq!(report.method.as_str(), "extractive");
    assert!(report.fallback_reason.unwrap().contains("HTTP 500"));
    let summary = engine.session().summary().unwrap();
    assert_eq!(summary.method, "extractive");
    assert!(
        !summary.content.contains("HTTP 500"),
        "an error text is never a summary"
    );
    assert!(counter.count_raw(&summary.content) <= budget.summary_cap);
}

/// The file store of `dir`, for an engine on one of its sessions.
fn file_store(dir: &std::path::Path) -> std::sync::Arc<dyn memchat::store::Store> {
    std::sync::Arc::new(memchat::store::FileStore::new(dir, Duration::from_secs(1)))
}
