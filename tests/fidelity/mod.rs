//! The recall fidelity experiment, shared by its test (a smaller run) and
//! its benchmark (the full run whose figures are in BENCHMARKS.md).
//!
//! A conversation with the mock model in a small window, whose summarizer
//! (the extractive fallback) keeps only the newest notes: lossy by design.
//! Facts are planted among filler turns; later each fact is asked about in
//! other words that share only its subject (entity and attribute, never the
//! value or the planting sentence's other words). A question counts as
//! answered when the request the model receives contains the fact's value.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use memchat::budget::Budget;
use memchat::chat::Engine;
use memchat::client::mock::MockModel;
use memchat::client::{ChatModel, ChatRequest, ClientError, ReplyStream};
use memchat::interrupt::Interrupt;
use memchat::recall::Mode;
use memchat::store::{FileStore, Store};
use memchat::tokens::TokenCounter;

const ATTRIBUTES: [&str; 20] = [
    "database",
    "deadline",
    "budget",
    "hostname",
    "license",
    "framework",
    "region",
    "owner",
    "codename",
    "backup schedule",
    "port",
    "mascot",
    "color scheme",
    "vendor",
    "font",
    "queue",
    "cache",
    "compiler",
    "timezone",
    "logo",
];
const SYLLABLES: [&str; 16] = [
    "kel", "vor", "tam", "sin", "bri", "dax", "orm", "lun", "pey", "zar", "qui", "nod", "fen",
    "rho", "gat", "wix",
];
const FILLER: [&str; 24] = [
    "lunch", "weather", "meeting", "coffee", "train", "music", "garden", "movie", "book", "walk",
    "dinner", "email", "weekend", "holiday", "sports", "recipe", "podcast", "news", "bicycle",
    "museum", "concert", "puzzle", "painting", "market",
];

/// A fact: its entity and attribute (the subject), and its value.
pub struct Fact {
    pub entity: String,
    pub attribute: &'static str,
    pub value: String,
}

/// Deterministic pseudo-random numbers (a 64-bit LCG): the same run every time.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

pub fn facts(count: usize) -> Vec<Fact> {
    let mut rng = Lcg(7);
    (0..count)
        .map(|i| {
            // Entity names are distinct: two syllables and the fact's number
            // in letters-only form, so no two share a word.
            let entity = format!(
                "{}{}{}",
                SYLLABLES[i % 16],
                SYLLABLES[(i / 16) % 16],
                SYLLABLES[rng.next(16)]
            );
            let value = format!(
                "{}-{}{}",
                FILLER[rng.next(24)],
                SYLLABLES[rng.next(16)],
                100 + i
            );
            Fact {
                entity,
                attribute: ATTRIBUTES[i % ATTRIBUTES.len()],
                value,
            }
        })
        .collect()
}

/// Records every request's text, answering as the mock.
struct Recorder {
    inner: MockModel,
    last: Arc<Mutex<String>>,
    /// The largest reply request, in tokens as memchat counts them.
    largest: Arc<Mutex<u64>>,
    counter: TokenCounter,
}

impl ChatModel for Recorder {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn stream(&self, request: ChatRequest) -> BoxFuture<'_, Result<ReplyStream, ClientError>> {
        if request.purpose == memchat::client::Purpose::Reply {
            let text: Vec<&str> = request
                .messages
                .iter()
                .map(|m| m.content.as_str())
                .collect();
            if let Ok(mut last) = self.last.lock() {
                *last = text.join("\n");
            }
            let size: u64 = u64::from(memchat::tokens::REPLY_PRIMING)
                + text
                    .iter()
                    .map(|t| u64::from(self.counter.message_tokens(t)))
                    .sum::<u64>();
            if let Ok(mut largest) = self.largest.lock() {
                *largest = (*largest).max(size);
            }
        }
        self.inner.stream(request)
    }
}

/// The outcome of one run.
pub struct Outcome {
    pub facts: usize,
    pub turns: usize,
    pub answered: usize,
    pub compactions: usize,
    pub archived: usize,
    /// The largest request sent, and the budget `B` it must stay under.
    pub largest_request: u64,
    pub budget: u64,
}

/// Plants `fact_count` facts over `turns - fact_count` turns (facts and
/// filler), then asks about each fact once; `window` is the model's window.
pub fn run(fact_count: usize, turns: usize, window: u32, recall: Mode) -> Outcome {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> = Arc::new(FileStore::new(dir.path(), Duration::from_secs(5)));
    let session = store.open_session("fidelity").expect("session");
    let counter = TokenCounter::for_model("gpt-4o-mini");
    let last = Arc::new(Mutex::new(String::new()));
    let largest = Arc::new(Mutex::new(0));
    let model = Recorder {
        inner: MockModel::new(counter, Duration::ZERO),
        last: last.clone(),
        largest: largest.clone(),
        counter,
    };
    let budget = Budget::new(window, None, None).expect("budget");
    let mut engine = Engine::new(store, session, Box::new(model), counter, budget);
    engine.set_recall(recall, memchat::recall::DEFAULT_PERCENT);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let facts = facts(fact_count);
    let planting = turns - fact_count;
    let every = (planting / fact_count).max(1);
    let mut rng = Lcg(11);
    let mut compactions = 0;
    let mut say = |engine: &mut Engine, text: &str| {
        let report = runtime
            .block_on(engine.send(text, &mut std::io::sink(), &mut Interrupt::never()))
            .expect("turn");
        compactions += usize::from(report.compaction.is_some());
    };
    let mut planted = 0;
    for turn in 0..planting {
        if turn % every == 0 && planted < fact_count {
            let f = &facts[planted];
            say(
                &mut engine,
                &format!(
                    "Note this down: for {}, the {} is {}. Thanks!",
                    f.entity, f.attribute, f.value
                ),
            );
            planted += 1;
        } else {
            let a = FILLER[rng.next(24)];
            let b = FILLER[rng.next(24)];
            say(
                &mut engine,
                &format!("Just chatting: I enjoyed the {a} today, and later the {b} was fun."),
            );
        }
    }
    let mut answered = 0;
    let mut order: Vec<usize> = (0..fact_count).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.next(i + 1));
    }
    for &i in &order {
        let f = &facts[i];
        say(
            &mut engine,
            &format!(
                "Remind me, which {} did we settle on for {}?",
                f.attribute, f.entity
            ),
        );
        let seen = last.lock().map(|s| s.clone()).unwrap_or_default();
        answered += usize::from(seen.contains(&f.value));
        if !seen.contains(&f.value) && std::env::var_os("MEMCHAT_FIDELITY_MISSES").is_some() {
            eprintln!("MISS {} {} {}\n{seen}\n", f.entity, f.attribute, f.value);
        }
    }
    let archived = engine
        .session()
        .read_archive()
        .map(|a| a.len())
        .unwrap_or(0);
    Outcome {
        facts: fact_count,
        turns: planting + fact_count,
        answered,
        compactions,
        archived,
        largest_request: largest.lock().map(|l| *l).unwrap_or(u64::MAX),
        budget: u64::from(budget.cap),
    }
}
