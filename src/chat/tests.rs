//! The engine, tested with the mock model and a session in a temp dir: the
//! order of a turn, append-only logs, refusals, and the session operations.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;

use super::*;
use crate::client::mock::MockModel;
use crate::memory::Session;
use crate::memory::format::MessageRecord;
use crate::sizing::History;
use crate::store::FileStore;

/// A window of 2048 tokens: `B` is 1280, `H` 1024.
fn budget() -> Budget {
    Budget::new(2048, None, None).unwrap()
}

fn counter() -> TokenCounter {
    TokenCounter::for_model("gpt-4o-mini")
}

fn open(dir: &tempfile::TempDir) -> Session {
    Session::open(dir.path(), "test", Duration::from_secs(1)).unwrap()
}

/// An engine on `session`, which lives in a memory directory.
fn engine_with(session: Session, model: Box<dyn ChatModel>) -> Engine {
    let dir = session.paths().log.parent().unwrap().to_path_buf();
    let store = Arc::new(FileStore::new(&dir, Duration::from_secs(1)));
    Engine::new(store, Box::new(session), model, counter(), budget())
}

fn engine(session: Session) -> Engine {
    engine_with(session, Box::new(MockModel::new(counter(), Duration::ZERO)))
}

fn send(engine: &mut Engine, text: &str) -> Result<TurnReport, TurnError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(engine.send(text, &mut Vec::new(), &mut Interrupt::never()))
}

/// The session's log file: `test.jsonl` in the memory directory.
fn log_path(engine: &Engine) -> PathBuf {
    PathBuf::from(engine.store().location()).join("test.jsonl")
}

fn log(engine: &Engine) -> String {
    std::fs::read_to_string(log_path(engine)).unwrap()
}

/// Reads the log at the moment the model is asked, then answers as the mock.
struct Witness {
    log: PathBuf,
    seen: Arc<Mutex<Option<String>>>,
    mock: MockModel,
}

impl ChatModel for Witness {
    fn name(&self) -> String {
        "witness".into()
    }
    fn stream(
        &self,
        request: ChatRequest,
    ) -> BoxFuture<'_, Result<crate::client::ReplyStream, ClientError>> {
        *self.seen.lock().unwrap() = std::fs::read_to_string(&self.log).ok();
        self.mock.stream(request)
    }
}

#[test]
fn the_users_words_are_in_the_log_before_the_model_is_asked() {
    let dir = tempfile::tempdir().unwrap();
    let session = open(&dir);
    let seen = Arc::new(Mutex::new(None));
    let witness = Witness {
        log: session.paths().log.clone(),
        seen: seen.clone(),
        mock: MockModel::new(counter(), Duration::ZERO),
    };
    let mut engine = engine_with(session, Box::new(witness));
    let report = send(&mut engine, "remember the blue door").unwrap();
    let seen = seen.lock().unwrap().clone().unwrap();
    assert!(seen.contains("remember the blue door"), "{seen}");
    assert!(!seen.contains(&report.reply), "the reply came after");
    let messages = engine.session().messages();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[1].content, report.reply);
    assert_eq!(messages[1].model.as_deref(), Some("witness"));
}

#[test]
fn counts_made_for_old_records_ride_on_appends_and_the_log_is_never_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let mut session = open(&dir);
    // An old exchange without counts, larger in bytes than `B` but far below
    // `H` in tokens: the next request must count it.
    session
        .append(Role::User, "word ".repeat(300), None, false, None)
        .unwrap();
    session
        .append(Role::Assistant, "ok".into(), None, false, None)
        .unwrap();
    let mut engine = engine(session);
    for text in ["hello", "again", "and again"] {
        let before = log(&engine);
        let report = send(&mut engine, text).unwrap();
        assert!(report.compaction.is_none());
        let after = log(&engine);
        assert!(
            after.starts_with(&before),
            "rewritten:\n{before}\n---\n{after}"
        );
        let added: Vec<&str> = after[before.len()..].lines().collect();
        assert_eq!(added.len(), 2, "{added:?}");
        assert!(
            added[1].contains("\"tokens\""),
            "the reply is counted as it is appended: {added:?}"
        );
    }
    let lines: Vec<String> = log(&engine).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 9, "header, four exchanges: {lines:?}");
    assert!(
        !lines[1].contains("\"tokens\"") && !lines[2].contains("\"tokens\""),
        "the old records were not rewritten: {lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("\"late_tokens\"")),
        "their counts rode on a later record: {lines:?}"
    );
    // A new run has every count from the log alone: sizing is exact without
    // the tokenizer.
    drop(engine);
    let reloaded = open(&dir);
    let c = counter();
    for message in reloaded.messages() {
        let count = c.cached(message.tokens.as_ref());
        assert_eq!(
            count,
            Some(c.count_raw(&message.content)),
            "seq {}",
            message.seq
        );
        assert!(message.late_tokens.is_none(), "folded by the loader");
    }
    let history = History {
        system: reloaded.system(),
        summary: reloaded.summary(),
        messages: reloaded.messages(),
    };
    assert!(sizing::measure(history, &c, &budget()).is_exact());
}

#[test]
fn a_message_that_cannot_fit_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = engine(open(&dir));
    let before = log(&engine);
    let refused = send(&mut engine, &"word ".repeat(3000));
    assert!(matches!(refused, Err(TurnError::Refused(ref m)) if m.contains("nothing was saved")));
    assert!(matches!(
        send(&mut engine, "  \n"),
        Err(TurnError::Refused(_))
    ));
    assert_eq!(log(&engine), before);
}

#[test]
fn a_system_prompt_goes_through_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = engine(open(&dir));
    send(&mut engine, "hello").unwrap();
    let before = log(&engine);
    let refused = engine.set_system(&"word ".repeat(2000));
    assert!(
        matches!(refused, Err(TurnError::Refused(ref m)) if m.contains("with the newest message")),
        "{refused:?}"
    );
    assert_eq!(log(&engine), before, "nothing written");
    assert_eq!(engine.system_prompt(), None);
    engine.set_system("Be terse.").unwrap();
    engine.set_system("Be kind.").unwrap();
    assert_eq!(engine.system_prompt(), Some("Be kind."));
    let archive = std::fs::read_to_string(log_path(&engine).with_extension("archive.jsonl"))
        .unwrap_or_default();
    assert!(archive.contains("Be terse."), "the old prompt is archived");
}

#[test]
fn undo_retry_and_clear_move_records_to_the_archive() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = engine(open(&dir));
    engine.set_system("Be terse.").unwrap();
    send(&mut engine, "first").unwrap();
    send(&mut engine, "second").unwrap();
    assert_eq!(engine.undo().unwrap(), 2);
    assert_eq!(engine.session().messages().len(), 2);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let old_reply = engine.session().messages()[1].seq;
    let retried = runtime
        .block_on(engine.retry(&mut Vec::new(), &mut Interrupt::never()))
        .unwrap()
        .unwrap();
    let messages = engine.session().messages();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[1].content, retried.reply);
    assert!(messages[1].seq > old_reply, "a new reply, not the old one");

    assert_eq!(engine.clear().unwrap(), 2);
    assert!(engine.session().messages().is_empty());
    assert_eq!(
        engine.system_prompt(),
        Some("Be terse."),
        "the prompt stays"
    );
    assert_eq!(engine.undo().unwrap(), 0, "nothing left to undo");
    let nothing = runtime
        .block_on(engine.retry(&mut Vec::new(), &mut Interrupt::never()))
        .unwrap();
    assert!(nothing.is_none());
}

#[test]
fn a_long_conversation_is_compacted_and_stays_under_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = engine(open(&dir));
    let mut compactions = 0;
    for i in 0..40 {
        let report = send(
            &mut engine,
            &format!("message {i}: {}", "words ".repeat(30)),
        )
        .unwrap();
        compactions += usize::from(report.compaction.is_some());
        assert!(engine.stats().history <= u64::from(budget().cap));
    }
    assert!(compactions > 0, "the history passed H");
    assert!(engine.session().summary().is_some());
}

/// A file session that records what the engine asks of it around a turn.
struct Recording {
    inner: Session,
    events: Arc<Mutex<Vec<String>>>,
}

impl Recording {
    fn note(&self, event: String) {
        self.events.lock().unwrap().push(event);
    }
}

impl crate::store::SessionStore for Recording {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn is_new(&self) -> bool {
        crate::store::SessionStore::is_new(&self.inner)
    }
    fn take_notices(&mut self) -> Vec<String> {
        crate::store::SessionStore::take_notices(&mut self.inner)
    }
    fn system(&self) -> Option<&MessageRecord> {
        crate::store::SessionStore::system(&self.inner)
    }
    fn summary(&self) -> Option<&crate::memory::format::SummaryRecord> {
        crate::store::SessionStore::summary(&self.inner)
    }
    fn messages(&self) -> &[MessageRecord] {
        crate::store::SessionStore::messages(&self.inner)
    }
    fn messages_mut(&mut self) -> &mut [MessageRecord] {
        crate::store::SessionStore::messages_mut(&mut self.inner)
    }
    fn system_mut(&mut self) -> Option<&mut MessageRecord> {
        crate::store::SessionStore::system_mut(&mut self.inner)
    }
    fn summary_mut(&mut self) -> Option<&mut crate::memory::format::SummaryRecord> {
        crate::store::SessionStore::summary_mut(&mut self.inner)
    }
    fn last_seq(&self) -> u64 {
        crate::store::SessionStore::last_seq(&self.inner)
    }
    fn settings(&self) -> &crate::memory::format::SessionSettings {
        crate::store::SessionStore::settings(&self.inner)
    }
    fn set_settings(
        &mut self,
        wanted: &crate::memory::format::SessionSettings,
        now: bool,
    ) -> Result<bool, StoreError> {
        crate::store::SessionStore::set_settings(&mut self.inner, wanted, now)
    }
    fn append_message(&mut self, m: NewMessage) -> Result<&MessageRecord, StoreError> {
        self.note(format!("append {}", m.role.as_str()));
        crate::store::SessionStore::append_message(&mut self.inner, m)
    }
    fn compact(
        &mut self,
        evict: usize,
        summary: String,
        method: &str,
        tokens: Option<TokenCache>,
    ) -> Result<(), StoreError> {
        self.note("compact".into());
        crate::store::SessionStore::compact(&mut self.inner, evict, summary, method, tokens)
    }
    fn clear(&mut self) -> Result<usize, StoreError> {
        crate::store::SessionStore::clear(&mut self.inner)
    }
    fn archive_tail(&mut self, from: usize) -> Result<usize, StoreError> {
        crate::store::SessionStore::archive_tail(&mut self.inner, from)
    }
    fn read_archive(&self) -> Result<Vec<crate::memory::format::Record>, StoreError> {
        crate::store::SessionStore::read_archive(&self.inner)
    }
    fn begin_turn(&mut self) -> Result<(), StoreError> {
        self.note("begin_turn".into());
        Ok(())
    }
    fn end_turn(&mut self) {
        self.note("end_turn".into());
    }
    fn end_turn_with_next_write(&mut self) {
        self.note("last write next".into());
    }
}

/// The engine tells the store that the reply ends the turn (so PostgreSQL
/// releases the turn lock with it) only when nothing follows it: every
/// "last write next" is followed by the reply and then the turn's end, never
/// by a compaction; a turn whose reply passes the trigger compacts under
/// the lock instead.
#[test]
fn the_reply_ends_the_turn_only_when_no_compaction_follows() {
    let dir = tempfile::tempdir().unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let recording = Recording {
        inner: open(&dir),
        events: events.clone(),
    };
    let store = Arc::new(FileStore::new(dir.path(), Duration::from_secs(1)));
    let model = Box::new(MockModel::new(counter(), Duration::ZERO));
    let mut engine = Engine::new(store, Box::new(recording), model, counter(), budget());
    for i in 0..40 {
        send(
            &mut engine,
            &format!("message {i}: {}", "words ".repeat(30)),
        )
        .unwrap();
    }
    let events = events.lock().unwrap().clone();
    let marked = events.iter().filter(|e| *e == "last write next").count();
    assert!(marked > 0, "{events:?}");
    assert!(events.iter().any(|e| e == "compact"), "{events:?}");
    for (i, event) in events.iter().enumerate() {
        if event == "last write next" {
            assert_eq!(
                events.get(i + 1..i + 3),
                Some(&["append assistant".to_string(), "end_turn".to_string()][..]),
                "at {i}: {events:?}"
            );
        }
        if event == "compact" {
            let turn = events[..i].iter().rposition(|e| e == "begin_turn").unwrap();
            assert!(
                !events[turn..i].iter().any(|e| e == "last write next"),
                "a compaction after the turn's last write, at {i}: {events:?}"
            );
        }
    }
}
