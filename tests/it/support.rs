//! Test support: a local HTTP server speaking the OpenAI chat-completions
//! protocol (JSON and SSE streaming), scripted per request, and helpers to run
//! the real binary against it. Plain std threads, so it serves equally while
//! a test awaits the library or waits for a child process.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the server does with one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// `data:` payloads sent as SSE, `delay` before each; `[DONE]` if `done`.
    Stream {
        events: Vec<String>,
        delay: Duration,
        done: bool,
    },
    /// A plain HTTP response.
    Json {
        status: u16,
        body: String,
        headers: Vec<(String, String)>,
    },
    /// Accept, read the request, and answer nothing for this long.
    Silence(Duration),
    /// A plain-text HTTP response (`text/plain`), as proxies and local
    /// servers send for errors.
    Plain { status: u16, body: String },
}

impl Reply {
    /// A normal streamed reply made of `pieces`, with usage, ending in `[DONE]`.
    pub fn streamed<S: AsRef<str>>(pieces: &[S]) -> Reply {
        let mut events: Vec<String> = pieces.iter().map(|p| text_chunk(p.as_ref())).collect();
        events.push(r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#.to_string());
        events.push(r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#.to_string());
        Reply::Stream {
            events,
            delay: Duration::ZERO,
            done: true,
        }
    }

    /// A streamed reply with a pause before each event.
    pub fn slow<S: AsRef<str>>(pieces: &[S], delay: Duration) -> Reply {
        match Reply::streamed(pieces) {
            Reply::Stream { events, done, .. } => Reply::Stream {
                events,
                delay,
                done,
            },
            other => other,
        }
    }

    /// A non-streamed chat completion.
    pub fn completion(text: &str) -> Reply {
        let body = serde_json::json!({
            "id": "c2", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
        });
        Reply::Json {
            status: 200,
            body: body.to_string(),
            headers: vec![],
        }
    }

    /// An OpenAI-style error.
    pub fn error(status: u16, message: &str, code: &str) -> Reply {
        let body = serde_json::json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": code}});
        Reply::Json {
            status,
            body: body.to_string(),
            headers: vec![],
        }
    }
}

/// `n` reply pieces: "word0 ", "word1 ", ...
pub fn words(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("word{i} ")).collect()
}

/// Fills the default session of `sandbox`, offline, up to the compaction
/// trigger of a 1,500-token window counted as gpt-4 (the flags the callers
/// then use too).
pub fn fill_small_window(sandbox: &Sandbox) {
    let script: String = (0..12)
        .map(|i| format!("message {i} with enough words to fill a small window quickly\n"))
        .collect();
    let out = sandbox.run(
        &["--mock", "--model", "gpt-4", "--context-limit", "1500"],
        &[],
        Some(script.as_bytes()),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

/// One streamed chunk carrying `text`.
pub fn text_chunk(text: &str) -> String {
    serde_json::json!({
        "id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]
    })
    .to_string()
}

/// A request the server received.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: serde_json::Value,
}

/// The server. Replies are taken in order; the last one repeats.
pub struct FakeServer {
    pub url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl FakeServer {
    pub fn start(script: Vec<Reply>) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let script = Arc::new(Mutex::new((script, 0usize)));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let log = log.clone();
                let script = script.clone();
                std::thread::spawn(move || serve(stream, &log, &script));
            }
        });
        FakeServer { url, received }
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, log: &Mutex<Vec<Received>>, script: &Mutex<(Vec<Reply>, usize)>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return;
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.trim_end().split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    let _ = reader.read_exact(&mut body);
    let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    log.lock().unwrap().push(Received {
        path,
        headers,
        body,
    });
    if !log
        .lock()
        .unwrap()
        .last()
        .is_some_and(|r| r.path.starts_with("/v1/"))
    {
        // Like a real server: nothing lives outside /v1 (a base URL missing
        // it), and such a request does not use up a scripted reply.
        let body = "404 page not found";
        let _ = (&stream).write_all(
            format!(
                "HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
        return;
    }
    let reply = {
        let mut guard = script.lock().unwrap();
        let (replies, next) = &mut *guard;
        let reply = replies[(*next).min(replies.len() - 1)].clone();
        *next += 1;
        reply
    };
    let mut out = stream;
    match reply {
        Reply::Json {
            status,
            body,
            headers,
        } => {
            let mut head = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                body.len()
            );
            for (k, v) in headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            let _ = out.write_all(head.as_bytes());
            let _ = out.write_all(body.as_bytes());
        }
        Reply::Stream {
            events,
            delay,
            done,
        } => {
            let _ = out.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n",
            );
            let _ = out.flush();
            for event in events {
                std::thread::sleep(delay);
                if out
                    .write_all(format!("data: {event}\n\n").as_bytes())
                    .is_err()
                {
                    return;
                }
                let _ = out.flush();
            }
            if done {
                let _ = out.write_all(b"data: [DONE]\n\n");
            }
        }
        Reply::Silence(duration) => std::thread::sleep(duration),
        Reply::Plain { status, body } => {
            let _ = out.write_all(
                format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
    }
    let _ = out.flush();
}

/// A proptest configuration running `cases` cases, whose regression file is
/// `<test file>.proptest-regressions` next to the test file. (proptest's
/// default looks for a `main.rs` above the source and would use
/// `tests/proptest-regressions/<file>.txt` for this binary instead.)
pub fn proptest_config(cases: u32) -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        cases,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..proptest::test_runner::Config::default()
    }
}

/// Which store a sandbox's memchat keeps conversations in. The store-level
/// suites run each case once per kind, from one definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// The memory directory (the default).
    Files,
    /// PostgreSQL, in a schema of the test's own
    /// (`MEMCHAT_TEST_DATABASE_URL`).
    Postgres,
}

/// A temporary home for one binary run: memory dir, clean environment.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    /// For the PostgreSQL kind: the schema the runs use (dropped with the sandbox).
    pub db: Option<crate::pg_store::TestDb>,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().unwrap(),
            db: None,
        }
    }

    /// A sandbox on `kind`; `None` (said loudly) for PostgreSQL when no
    /// server is given.
    pub fn on(kind: StoreKind, test: &str) -> Option<Sandbox> {
        let mut sandbox = Sandbox::new();
        if kind == StoreKind::Postgres {
            sandbox.db = Some(crate::pg_store::TestDb::new(test)?);
        }
        Some(sandbox)
    }

    /// The store the sandbox's runs use, through the library.
    pub fn store(&self) -> Arc<dyn memchat::store::Store> {
        let wait = Duration::from_secs(5);
        match &self.db {
            Some(db) => Arc::new(memchat::pg::PgStore::open(&db.url, wait).unwrap()),
            None => Arc::new(memchat::store::FileStore::new(&self.memory(), wait)),
        }
    }

    /// What `name` holds (active history and archive), read through the
    /// store boundary: the same view whichever the store.
    pub fn contents(&self, name: &str) -> memchat::store::SessionContents {
        self.store().read_session(name, true).unwrap()
    }

    pub fn memory(&self) -> PathBuf {
        self.dir.path().join("mem")
    }

    /// A `memchat` command with a clean environment pointed at this sandbox.
    pub fn command(&self, args: &[&str]) -> Command {
        let home = self.dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_memchat"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_DATA_HOME", home.join("data"))
            .env("MEMCHAT_MEMORY_DIR", self.memory())
            .env("MEMCHAT_LOCK_WAIT", "1")
            .env("MEMCHAT_RETRY_BASE_MS", "10")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(db) = &self.db {
            command.env("MEMCHAT_STORE", &db.url);
        }
        command
    }

    /// Runs to completion, feeding `stdin`.
    pub fn run(&self, args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> Output {
        let mut command = self.command(args);
        for (k, v) in env {
            command.env(k, v);
        }
        if stdin.is_some() {
            command.stdin(Stdio::piped());
        }
        let mut child = command.spawn().unwrap();
        if let Some(bytes) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            let bytes = bytes.to_vec();
            std::thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            });
        }
        child.wait_with_output().unwrap()
    }

    /// The records of a session's active log (or archive), parsed.
    pub fn records(&self, file: &str) -> Vec<serde_json::Value> {
        read_records(&self.memory().join(file))
    }
}

/// The header and the conversation's records (messages, summaries) of a
/// log, in order. `settings` records are not part of the conversation and
/// are left out, so a test can index messages by position; the golden
/// case `session_settings` and the store's unit tests check them.
pub fn read_records(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["type"] != "settings")
        .collect()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// How long a test waits for a condition that should come within
/// milliseconds. Generous: it only bounds a hang on a loaded machine, and is
/// never a claim about speed.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Polls `condition` until it holds, instead of sleeping for a time that is
/// "probably enough"; panics naming `what` after [`PATIENCE`].
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "gave up after {PATIENCE:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Collects a child's output pipe in the background, so a test can wait for
/// a piece of text to appear while the child still runs.
pub struct Capture {
    bytes: Arc<Mutex<Vec<u8>>>,
    thread: JoinHandle<()>,
}

impl Capture {
    pub fn start(mut pipe: impl Read + Send + 'static) -> Capture {
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let sink = bytes.clone();
        let thread = std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buffer[..n]);
            }
        });
        Capture { bytes, thread }
    }

    /// What arrived so far.
    pub fn text(&self) -> String {
        text(&self.bytes.lock().unwrap())
    }

    /// Waits until `needle` has arrived.
    pub fn wait_for(&self, needle: &str) {
        wait_until(&format!("{needle:?} in the output"), || {
            self.text().contains(needle)
        });
    }

    /// Everything, once the pipe has closed (the child has exited).
    pub fn finish(self) -> String {
        self.thread.join().unwrap();
        text(&self.bytes.lock().unwrap())
    }
}

/// Says loudly that a test could not run here, past the test harness's
/// output capture (a skipped test still shows as passed).
pub fn skip(test: &str, reason: &str) {
    let _ = writeln!(std::io::stderr(), "\n*** SKIPPED {test}: {reason} ***\n");
}

/// [`skip`] for a program the test needs that is not installed (`why`
/// says which); under CI (`CI=true`), where `.ci/postgres.sh` installs the
/// PostgreSQL tests' programs, a failure instead.
pub fn skip_without(test: &str, why: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test}: {why}, under CI (.ci/postgres.sh installs it)"
    );
    skip(test, why);
}

/// memchat in a pseudo-terminal (rexpect), in the sandbox's clean
/// environment, after `adjust` has had its say on the command.
pub fn pty(
    sandbox: &Sandbox,
    args: &[&str],
    adjust: impl FnOnce(&mut Command),
) -> rexpect::session::PtySession {
    let mut command = sandbox.command(args);
    // rexpect wires the pty itself.
    command
        .stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .env("TERM", "xterm");
    adjust(&mut command);
    rexpect::session::spawn_command(command, Some(15_000)).unwrap()
}

/// Waits until the line editor reads keys in raw mode with its prompt drawn.
/// rustyline switches bracketed paste on (`ESC [?2004h`) as it enters raw
/// mode for each line, then draws the prompt: keys sent after both are read
/// by the editor, none by the terminal's line discipline.
pub fn editing(p: &mut rexpect::session::PtySession) {
    p.exp_string("\x1b[?2004h").unwrap();
    p.exp_string("%> ").unwrap();
}

/// [`editing`], with the prompt naming `session`.
pub fn editing_on(p: &mut rexpect::session::PtySession, session: &str) {
    p.exp_string("\x1b[?2004h").unwrap();
    p.exp_string(&format!("{session} ")).unwrap();
    p.exp_string("%> ").unwrap();
}

/// Waits for memchat in a pty to end, and checks it exited with `code`.
pub fn exits_with(p: &mut rexpect::session::PtySession, code: i32) {
    let status = p.process().wait().unwrap();
    assert!(
        matches!(status, rexpect::process::WaitStatus::Exited(_, c) if c == code),
        "{status:?}, not {code}"
    );
}

/// Sends `signal` ("INT", "TERM", "HUP") the way `kill` does (the tests
/// have no libc binding).
pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// A TCP listener that accepts every connection and never answers (a hung
/// server, or a balancer in front of a dead one), counting them.
pub struct SilentServer {
    pub port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    count: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    accepting: std::thread::JoinHandle<()>,
}

impl SilentServer {
    pub fn start() -> SilentServer {
        SilentServer::start_on(0)
    }

    /// On `port` (0: any free one).
    pub fn start_on(port: u16) -> SilentServer {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let count = std::sync::Arc::new(AtomicUsize::new(0));
        let (stopped, counted) = (stop.clone(), count.clone());
        let accepting = std::thread::spawn(move || {
            let mut accepted = Vec::new();
            while !stopped.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        accepted.push(stream);
                        counted.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        });
        SilentServer {
            port,
            stop,
            count,
            accepting,
        }
    }

    /// How many connections it has accepted so far.
    pub fn accepted(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until it has accepted `count` connections in all.
    pub fn wait_for(&self, count: usize) {
        wait_until(&format!("connection {count} to the silent server"), || {
            self.accepted() == count
        });
    }

    /// Stops listening; how many connections it accepted.
    pub fn finish(self) -> usize {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.accepting.join().unwrap();
        self.count.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A local TCP port nothing listens on (connections to it are refused).
pub fn refused_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A TCP proxy to `target` (`host:port`) that counts the connections it
/// forwards: how many a memchat process opens.
pub struct CountingProxy {
    pub port: u16,
    count: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl CountingProxy {
    pub fn start(target: &str) -> CountingProxy {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let count = std::sync::Arc::new(AtomicUsize::new(0));
        let counted = count.clone();
        let target = target.to_string();
        // Runs until the test process ends (it holds no state worth ending).
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                counted.fetch_add(1, Ordering::SeqCst);
                let Ok(server) = std::net::TcpStream::connect(&target) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        CountingProxy { port, count }
    }

    /// How many connections it has forwarded so far.
    pub fn forwarded(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A proxy in front of the server `url` (`postgres://user@host:port/...`)
    /// names, and `url` through it.
    pub fn in_front_of(url: &str) -> (CountingProxy, String) {
        let (scheme, rest) = url.split_once("://").unwrap();
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (user, host_port) = match authority.rsplit_once('@') {
            Some((user, host_port)) => (format!("{user}@"), host_port),
            None => (String::new(), authority),
        };
        let target = match host_port.contains(':') {
            true => host_port.to_string(),
            false => format!("{host_port}:5432"),
        };
        let proxy = CountingProxy::start(&target);
        let url = format!("{scheme}://{user}127.0.0.1:{}{path}", proxy.port);
        (proxy, url)
    }
}
