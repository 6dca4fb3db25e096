//! Ctrl-C as data. Once a tokio signal handler is installed SIGINT no longer
//! kills the process, so every front-end must look here: the engine stops a
//! reply when a new interrupt arrives, and one-shot and script modes exit 130
//! after saving what they have.

use tokio::sync::watch;

/// A handle on the count of SIGINTs received.
#[derive(Clone)]
pub struct Interrupt {
    rx: watch::Receiver<u64>,
    seen: u64,
    // Keeps the channel open for handles that never fire (tests, pipes).
    _tx: Option<std::sync::Arc<watch::Sender<u64>>>,
}

impl Interrupt {
    /// Installs the SIGINT handler (call inside the tokio runtime).
    pub fn install() -> Interrupt {
        let (tx, rx) = watch::channel(0u64);
        // Registered here, not inside the task (which first runs at the
        // caller's next await): SIGINT is data from the moment this returns.
        let signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
        tokio::spawn(async move {
            let Ok(mut signal) = signal else { return };
            let mut count = 0u64;
            while signal.recv().await.is_some() {
                count += 1;
                if tx.send(count).is_err() {
                    break;
                }
            }
        });
        Interrupt {
            rx,
            seen: 0,
            _tx: None,
        }
    }

    /// A handle that never fires.
    pub fn never() -> Interrupt {
        let (tx, rx) = watch::channel(0u64);
        Interrupt {
            rx,
            seen: 0,
            _tx: Some(std::sync::Arc::new(tx)),
        }
    }

    /// Forgets interrupts received so far (e.g. a Ctrl-C at the prompt).
    pub fn reset(&mut self) {
        self.seen = *self.rx.borrow();
    }

    /// Whether an interrupt arrived since the last reset.
    pub fn fired(&self) -> bool {
        *self.rx.borrow() > self.seen
    }

    /// Resolves when an interrupt arrives (at once if one already has).
    pub async fn wait(&mut self) {
        let seen = self.seen;
        if self.rx.wait_for(|count| *count > seen).await.is_err() {
            // The handler is gone: no interrupt can come any more.
            std::future::pending::<()>().await;
        }
    }
}
