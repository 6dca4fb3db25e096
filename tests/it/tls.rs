//! The real client over `https://`: certificates are checked against the
//! platform's roots (read lazily, at the first handshake), and a local
//! `http://` server never needs them. A local TLS server (rustls, with a test
//! root in `tests/fixtures/tls/`) stands in for a remote one; the roots are
//! chosen per child process with `SSL_CERT_FILE`, which the platform
//! verifier honours on Linux.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use futures::StreamExt;
use memchat::client::openai::{OpenAiModel, OpenAiSettings};
use memchat::client::{ChatMessage, ChatModel, ChatRequest, ClientError, Purpose};
use memchat::memory::format::Role;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::support::{FakeServer, Reply, Sandbox, text};

const KEY: (&str, &str) = ("OPENAI_API_KEY", "sk-test-key-123");

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

/// A TLS server for `localhost` / `127.0.0.1` whose certificate is signed by
/// the test root `ca.pem`. Each connection's handshake outcome is reported on
/// `handshakes`; a completed one is answered with a streamed reply.
struct TlsServer {
    url: String,
    handshakes: Receiver<Result<(), String>>,
}

impl TlsServer {
    fn start(reply: &str) -> TlsServer {
        let cert = CertificateDer::from(std::fs::read(fixture("server.crt.der")).unwrap());
        let key = PrivatePkcs8KeyDer::from(std::fs::read(fixture("server.key.der")).unwrap());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], PrivateKeyDer::Pkcs8(key))
        .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("https://{}/v1", listener.local_addr().unwrap());
        let Reply::Stream { events, .. } = Reply::streamed(&[reply]) else {
            unreachable!("streamed() makes a stream")
        };
        let (tx, handshakes) = channel();
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(tcp) = tcp else { continue };
                let (config, events, tx) = (config.clone(), events.clone(), tx.clone());
                std::thread::spawn(move || serve_tls(tcp, config, &events, &tx));
            }
        });
        TlsServer { url, handshakes }
    }

    /// The outcome of the next handshake.
    fn handshake(&self) -> Result<(), String> {
        self.handshakes
            .recv_timeout(Duration::from_secs(30))
            .expect("a client connected")
    }
}

fn serve_tls(
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    events: &[String],
    handshakes: &Sender<Result<(), String>>,
) {
    let mut tls = rustls::StreamOwned::new(rustls::ServerConnection::new(config).unwrap(), tcp);
    while tls.conn.is_handshaking() {
        if let Err(e) = tls.conn.complete_io(&mut tls.sock) {
            let _ = handshakes.send(Err(e.to_string()));
            return;
        }
    }
    let _ = handshakes.send(Ok(()));
    // The request: headers, then a body of content-length bytes.
    let mut reader = BufReader::new(&mut tls);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.trim_end().split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    let _ = reader.read_exact(&mut body);
    let mut response = String::from(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n",
    );
    for event in events {
        response.push_str(&format!("data: {event}\n\n"));
    }
    response.push_str("data: [DONE]\n\n");
    let _ = tls.write_all(response.as_bytes());
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

fn request() -> ChatRequest {
    ChatRequest {
        messages: vec![ChatMessage::new(Role::User, "Hi")],
        max_tokens: 100,
        sampling: Default::default(),
        purpose: Purpose::Reply,
    }
}

#[tokio::test]
async fn an_https_server_whose_certificate_no_system_root_signed_is_refused() {
    let server = TlsServer::start("never shown");
    let model = OpenAiModel::new(OpenAiSettings {
        base_url: server.url.clone(),
        api_key: Some(KEY.1.into()),
        model: "gpt-4o-mini".into(),
        stream: true,
        connect_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(5),
        // Retries allowed: a refused certificate is still tried once only.
        max_retries: 3,
        retry_base: Duration::from_millis(10),
        retry_cap: Duration::from_millis(100),
    })
    .unwrap();
    let error = match model.stream(request()).await {
        Ok(mut stream) => panic!("a reply over unverified TLS: {:?}", stream.next().await),
        Err(e) => e,
    };
    match &error {
        ClientError::Transport { message, .. } => {
            assert!(message.contains("certificate"), "{message}")
        }
        other => panic!("not a transport error: {other:?}"),
    }
    // The client, not the server, ended the handshake, and did not try again
    // (every attempt had connected before the error came back).
    assert!(server.handshake().is_err(), "the handshake completed");
    assert!(
        server
            .handshakes
            .recv_timeout(Duration::from_millis(500))
            .is_err(),
        "a refused certificate was retried"
    );
}

#[test]
fn an_https_server_signed_by_a_trusted_root_answers() {
    let server = TlsServer::start("Hello over TLS.");
    let sandbox = Sandbox::new();
    let ca = fixture("ca.pem");
    let out = sandbox.run(
        &["--base-url", &server.url, "Hi"],
        &[KEY, ("SSL_CERT_FILE", ca.to_str().unwrap())],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Hello over TLS.\n");
    assert_eq!(server.handshake(), Ok(()));
}

#[test]
fn certificates_are_read_only_for_https() {
    // An unreadable certificate store: a plain-HTTP server is unaffected,
    // because nothing reads the store until a TLS handshake needs it.
    let missing = ("SSL_CERT_FILE", "/nonexistent/memchat-test/ca.pem");
    let server = FakeServer::start(vec![Reply::streamed(&["plain"])]);
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["--base-url", &server.url, "Hi"], &[KEY, missing], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "plain\n");
    // The same store against an https:// server: a clear certificate error,
    // and the message is kept.
    let server = TlsServer::start("never shown");
    let sandbox = Sandbox::new();
    let out = sandbox.run(
        &["--base-url", &server.url, "--retries", "0", "Keep me"],
        &[KEY, missing],
        None,
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("certificate"), "{stderr}");
    assert_eq!(sandbox.records("default.jsonl")[1]["content"], "Keep me");
}

/// An `http://` server reached as `https://` answers with no TLS at all:
/// the same every time, so it is tried once, not retried with backoff.
#[test]
fn a_server_that_speaks_no_tls_is_not_retried() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}/v1", listener.local_addr().unwrap());
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(mut tcp) = tcp else { continue };
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            // What a plain HTTP server says to a TLS ClientHello.
            let _ = tcp.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
        }
    });
    let sandbox = Sandbox::new();
    let out = sandbox.run(
        &["--base-url", &url, "--retries", "3", "Keep me"],
        &[KEY],
        None,
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("is it http://?"), "{stderr}");
    assert_eq!(sandbox.records("default.jsonl")[1]["content"], "Keep me");
}
