//! Signals as data: SIGINT (Ctrl-C), SIGTERM and SIGHUP (the terminal closed).
//! Once a handler is installed none of them kills the process any more, so
//! every front-end must look here.
//!
//! - SIGINT stops the reply in progress (its partial text is saved, marked
//!   interrupted); the REPL goes on, one-shot and script modes exit 130.
//! - SIGTERM and SIGHUP end memchat. While a turn is being saved (a
//!   [`Hold`] is alive) they stop the reply like SIGINT, the partial text is
//!   saved, and the front-end then exits 143 (SIGTERM) or 129 (SIGHUP), the
//!   shell's 128 + signal number. Anywhere else (at the prompt, waiting for
//!   stdin) nothing is unsaved, and memchat exits at once with that status.
//!
//! The handlers run on a thread of their own: script mode reads stdin with a
//! blocking read on the runtime's thread, and SIGTERM must still end it. The
//! thread (and its runtime) starts early, while the store opens, but the
//! handlers are registered only when the front-end arms them
//! ([`Starting::arm`]): until then every signal keeps its default action,
//! and a Ctrl-C kills memchat as it kills any program (a shell loop that
//! runs memchat stops on it).

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;

/// A signal that ends memchat once the reply in progress is saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    /// SIGHUP: the terminal went away.
    Hangup,
    /// SIGTERM: asked to stop (`kill`, a shutdown, a supervisor).
    Terminate,
}

impl Termination {
    pub fn signal_name(self) -> &'static str {
        match self {
            Termination::Hangup => "SIGHUP",
            Termination::Terminate => "SIGTERM",
        }
    }

    /// The exit status: 128 + the signal number, as a shell reports it.
    pub fn exit_status(self) -> u8 {
        match self {
            Termination::Hangup => 129,
            Termination::Terminate => 143,
        }
    }
}

/// What the handlers have seen.
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    /// Signals that stop a reply (all three kinds).
    count: u64,
    /// The first SIGTERM or SIGHUP, if any.
    termination: Option<Termination>,
}

/// A handle on the signals received.
#[derive(Clone)]
pub struct Interrupt {
    rx: watch::Receiver<Seen>,
    seen: u64,
    /// How many [`Hold`]s are alive; the handler thread reads it under the
    /// lock, so no hold can start while it decides to exit.
    holds: Arc<Mutex<usize>>,
    // Keeps the channel open for handles that never fire (tests, pipes).
    _tx: Option<Arc<watch::Sender<Seen>>>,
}

/// The handlers' thread, started ([`Interrupt::start`]) but not armed: the
/// signals keep their default actions until [`Starting::arm`].
pub struct Starting {
    interrupt: Interrupt,
    /// Receives the handle of the thread's runtime; disconnected if the
    /// thread could not start or build it.
    runtime: std::sync::mpsc::Receiver<tokio::runtime::Handle>,
    /// Hands the registered streams to the thread.
    arm: std::sync::mpsc::Sender<Streams>,
}

/// SIGINT, SIGTERM and SIGHUP, registered with the handlers' runtime.
type Streams = (Signal, Signal, Signal);

/// What the armed handlers have seen, for work that waits off the main
/// thread and must give up on a signal ([`next_signal`]).
static ARMED: std::sync::OnceLock<watch::Receiver<Seen>> = std::sync::OnceLock::new();

/// How many signals had come when a front-end last forgot them
/// ([`Interrupt::reset`], as a turn starts).
static FORGOTTEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Resolves when a signal that stops a turn (SIGINT, SIGTERM, SIGHUP) has
/// come since the front-end last forgot them (at once if one has: it may
/// have come between the turn's start and this call); never before the
/// handlers are armed. For waits the main thread cannot break off itself,
/// because it is blocked on them: the PostgreSQL store's attempt to connect
/// again, on its own thread.
pub async fn next_signal() {
    let Some(armed) = ARMED.get() else {
        return std::future::pending().await;
    };
    let mut rx = armed.clone();
    let forgotten = FORGOTTEN.load(std::sync::atomic::Ordering::SeqCst);
    if rx.wait_for(|s| s.count > forgotten).await.is_err() {
        std::future::pending::<()>().await;
    }
}

impl Starting {
    /// Registers the handlers (on the calling thread, with the handlers'
    /// runtime) and returns once they are: each signal is data from here
    /// on (see the module doc). Nothing waits for the thread to run.
    pub fn arm(self) -> Interrupt {
        // Built by now unless start-up was very quick; if the thread could
        // not start, the default actions stay.
        if let Ok(runtime) = self.runtime.recv()
            && let Some(streams) = register(&runtime)
            && self.arm.send(streams).is_ok()
        {
            let _ = ARMED.set(self.interrupt.rx.clone());
        }
        self.interrupt
    }
}

/// While alive, SIGTERM and SIGHUP let the holder save its work before
/// memchat exits (see the module doc).
pub struct Hold {
    holds: Arc<Mutex<usize>>,
}

impl Drop for Hold {
    fn drop(&mut self) {
        *self.holds.lock().unwrap_or_else(PoisonError::into_inner) -= 1;
    }
}

impl Interrupt {
    /// Starts the handlers' thread and its runtime (they take a while to
    /// start), so that the rest of start-up (reading the prompt, opening the
    /// store, connecting to PostgreSQL) runs meanwhile. Nothing is
    /// registered until [`Starting::arm`].
    pub fn start() -> Starting {
        let (interrupt, tx, holds) = Interrupt::unarmed();
        let (runtime_tx, runtime) = std::sync::mpsc::channel();
        let (arm, arm_rx) = std::sync::mpsc::channel::<Streams>();
        let _ = std::thread::Builder::new()
            .name("memchat-signals".into())
            .spawn(move || {
                let Some(built) = handlers_runtime() else {
                    return;
                };
                if runtime_tx.send(built.handle().clone()).is_ok()
                    && let Ok(streams) = arm_rx.recv()
                {
                    watch_signals(&built, streams, &tx, &holds);
                }
            });
        Starting {
            interrupt,
            runtime,
            arm,
        }
    }

    /// Registers the handlers at once and starts their thread: each signal
    /// is data from here on. When nothing can run while the thread starts,
    /// this spares the wait for it that [`Interrupt::start`] then
    /// [`Starting::arm`] would cost.
    pub fn start_armed() -> Interrupt {
        let (interrupt, tx, holds) = Interrupt::unarmed();
        // The thread first, waiting for its runtime: a runtime built here
        // and dropped here (the spawn failed) would panic, as this thread
        // runs memchat's own runtime.
        let (arm, arm_rx) = std::sync::mpsc::channel::<(tokio::runtime::Runtime, Streams)>();
        let spawned = std::thread::Builder::new()
            .name("memchat-signals".into())
            .spawn(move || {
                if let Ok((runtime, streams)) = arm_rx.recv() {
                    watch_signals(&runtime, streams, &tx, &holds);
                }
            });
        if spawned.is_err() {
            return interrupt;
        }
        let Some(built) = handlers_runtime() else {
            return interrupt;
        };
        match register(built.handle()) {
            Some(streams) => match arm.send((built, streams)) {
                Ok(()) => {
                    let _ = ARMED.set(interrupt.rx.clone());
                }
                Err(std::sync::mpsc::SendError((built, streams))) => {
                    drop(streams);
                    built.shutdown_background();
                }
            },
            None => built.shutdown_background(),
        }
        interrupt
    }

    /// A handle whose sender goes to the handlers' thread.
    fn unarmed() -> (Interrupt, watch::Sender<Seen>, Arc<Mutex<usize>>) {
        let (tx, rx) = watch::channel(Seen::default());
        let holds = Arc::new(Mutex::new(0usize));
        let interrupt = Interrupt {
            rx,
            seen: 0,
            holds: holds.clone(),
            _tx: None,
        };
        (interrupt, tx, holds)
    }

    /// A handle that never fires.
    pub fn never() -> Interrupt {
        let (tx, rx) = watch::channel(Seen::default());
        Interrupt {
            rx,
            seen: 0,
            holds: Arc::new(Mutex::new(0)),
            _tx: Some(Arc::new(tx)),
        }
    }

    /// Marks work that SIGTERM and SIGHUP must let finish (a turn being
    /// saved) until the returned guard drops.
    pub fn hold(&self) -> Hold {
        *self.holds.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        Hold {
            holds: self.holds.clone(),
        }
    }

    /// Forgets interrupts received so far (e.g. a Ctrl-C at the prompt).
    /// A termination is never forgotten.
    pub fn reset(&mut self) {
        self.seen = self.rx.borrow().count;
        FORGOTTEN.store(self.seen, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether an interrupt arrived since the last reset.
    pub fn fired(&self) -> bool {
        self.rx.borrow().count > self.seen
    }

    /// The SIGTERM or SIGHUP received, if any: the front-end must exit.
    pub fn termination(&self) -> Option<Termination> {
        self.rx.borrow().termination
    }

    /// Resolves when an interrupt arrives (at once if one already has).
    pub async fn wait(&mut self) {
        let seen = self.seen;
        if self.rx.wait_for(|s| s.count > seen).await.is_err() {
            // The handler is gone: no interrupt can come any more.
            std::future::pending::<()>().await;
        }
    }
}

/// The handlers' runtime: small, and its own, so that the handlers run
/// whatever the main thread is blocked on.
fn handlers_runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .ok()
}

/// Installs the three handlers, feeding streams of `runtime`. `None` if any
/// fails, which takes a runtime without its I/O driver (a bug): then
/// nothing watches them, and a handler installed before the failure stays
/// (tokio never removes one), so that signal would do nothing.
fn register(runtime: &tokio::runtime::Handle) -> Option<Streams> {
    let _entered = runtime.enter();
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(int), Ok(term), Ok(hup)) => Some((int, term, hup)),
        _ => None,
    }
}

/// The handler thread's loop: turns each signal into data, or ends memchat
/// (see the module doc).
fn watch_signals(
    runtime: &tokio::runtime::Runtime,
    (mut int, mut term, mut hup): Streams,
    tx: &watch::Sender<Seen>,
    holds: &Mutex<usize>,
) {
    runtime.block_on(async move {
        loop {
            let termination = tokio::select! {
                Some(()) = int.recv() => None,
                Some(()) = term.recv() => Some(Termination::Terminate),
                Some(()) = hup.recv() => Some(Termination::Hangup),
                else => return,
            };
            let held = holds.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(signal) = termination
                && *held == 0
            {
                // Nothing is being saved: end now, as the signal itself
                // would have, but with the shell's status. Every write is
                // already durable; the lock dies with the process (the file
                // lock at once, a PostgreSQL turn lock with the connection,
                // or behind a pooler with the pooler's reset of it, which the
                // README requires for the same reason as for SIGKILL). The
                // terminal gets its modes back (the line editor may hold it
                // raw).
                crate::typeahead::restore_terminal();
                let _ = writeln!(
                    std::io::stderr(),
                    "memchat: {} received; exiting",
                    signal.signal_name()
                );
                std::process::exit(i32::from(signal.exit_status()));
            }
            tx.send_modify(|seen| {
                seen.count += 1;
                seen.termination = seen.termination.or(termination);
            });
            drop(held);
        }
    });
}
