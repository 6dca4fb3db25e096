//! PostgreSQL servers for the tests: the server named by
//! `MEMCHAT_TEST_DATABASE_URL`, or else a throwaway cluster of the test
//! binary's own, and clusters that a single test makes for itself (to stop
//! and start it, to check passwords, to speak TLS).
//!
//! A cluster is made with the installed `initdb`/`pg_ctl` (`MEMCHAT_PG_BIN`,
//! else the newest of Debian's `/usr/lib/postgresql/VERSION/bin`) in a
//! temporary directory on a free port, run as the `postgres` user when the
//! tests run as root (the server refuses to run as root). Where PostgreSQL is
//! not installed the tests that need it say SKIPPED; under CI (`CI=true`,
//! where `.ci/postgres.sh` installs it) they fail instead.

use std::io::Write as _;
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use crate::support::{skip, skip_without, text};

/// The server's programs: `MEMCHAT_PG_BIN`, else the newest of Debian's
/// `/usr/lib/postgresql/VERSION/bin`.
pub fn bin() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("MEMCHAT_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").exists())
        .max()
        .map(|(_, bin)| bin)
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A command run as the cluster's owner: `postgres` when we are root (the
/// server refuses to run as root), else ourselves.
pub fn as_owner(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("setpriv");
        command
            .args([
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "--",
            ])
            .arg(program);
        command
    } else {
        Command::new(program)
    }
}

pub fn run(mut command: Command, what: &str) {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{what}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// A cluster of the test's own.
pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

/// How the cluster checks clients.
pub enum Auth<'a> {
    Trust,
    Password(&'a str),
}

impl Cluster {
    /// Starts a cluster, or `None` (said loudly) without `initdb`.
    pub fn start(test: &str, auth: Auth<'_>, tls: Option<(&Path, &Path)>) -> Option<Cluster> {
        Cluster::start_watched(test, auth, tls, false).map(|(cluster, _)| cluster)
    }

    /// [`Cluster::start`]; with `watch`, also a watcher that stops and
    /// removes the cluster when this process ends
    /// ([`stop_when_this_process_ends`]), started as soon as its directory
    /// exists so that a kill during `initdb` or the start leaves nothing.
    fn start_watched(
        test: &str,
        auth: Auth<'_>,
        tls: Option<(&Path, &Path)>,
        watch: bool,
    ) -> Option<(Cluster, Option<Child>)> {
        let owner_missing = || {
            is_root()
                && Command::new("id")
                    .arg("postgres")
                    .output()
                    .map(|o| !o.status.success())
                    .unwrap_or(true)
        };
        let Some(bin) = bin().filter(|_| !owner_missing()) else {
            skip_without(
                test,
                "PostgreSQL's initdb (or the postgres user) is not installed",
            );
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let watcher = watch.then(|| stop_when_this_process_ends(dir.path(), &bin));
        let data = dir.path().join("data");
        let mut initdb = as_owner(&bin.join("initdb"));
        initdb
            .args(["-D"])
            .arg(&data)
            .args(["-U", "postgres", "--no-sync"]);
        match auth {
            Auth::Trust => {
                initdb.arg("--auth=trust");
            }
            Auth::Password(password) => {
                let file = dir.path().join("pw");
                std::fs::write(&file, password).unwrap();
                initdb
                    .arg("--auth=scram-sha-256")
                    .arg(format!("--pwfile={}", file.display()));
            }
        }
        if is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.args(["-R", "postgres:postgres"]).arg(dir.path());
                    c
                },
                "chown",
            );
        }
        run(initdb, "initdb");
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut conf = format!(
            "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             fsync = off\nmax_connections = 100\nshared_buffers = 16MB\n",
            dir.path().display()
        );
        if let Some((server_crt, server_key)) = tls {
            for (file, name) in [(server_crt, "server.crt"), (server_key, "server.key")] {
                std::fs::copy(file, data.join(name)).unwrap();
            }
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                data.join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .unwrap();
            if is_root() {
                run(
                    {
                        let mut c = Command::new("chown");
                        c.arg("postgres:postgres")
                            .arg(data.join("server.crt"))
                            .arg(data.join("server.key"));
                        c
                    },
                    "chown the certificate",
                );
            }
            conf.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        }
        let mut existing = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        existing.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), existing).unwrap();
        let cluster = Cluster { dir, bin, port };
        cluster.pg_ctl(&["start", "-w", "-t", "60"]);
        Some((cluster, watcher))
    }

    pub fn pg_ctl(&self, args: &[&str]) {
        let mut command = as_owner(&self.bin.join("pg_ctl"));
        command
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-l")
            .arg(self.dir.path().join("log"))
            .args(args);
        run(command, &format!("pg_ctl {args:?}"));
    }

    pub fn stop(&self) {
        self.pg_ctl(&["stop", "-m", "immediate", "-w"]);
    }

    /// The directory of the server's Unix-domain socket.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's port (its Unix-domain socket's name has it too).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A URL for user `postgres` (with `password`) on host `host`.
    pub fn url(&self, password: Option<&str>, host: &str, params: &str) -> String {
        let password = password.map(|p| format!(":{p}")).unwrap_or_default();
        format!(
            "postgres://postgres{password}@{host}:{}/postgres{params}",
            self.port
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut command = as_owner(&self.bin.join("pg_ctl"));
        command
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["stop", "-m", "immediate"]);
        let _ = command.output();
    }
}

/// The server the PostgreSQL suites run against: `MEMCHAT_TEST_DATABASE_URL`
/// when it is set, else one throwaway cluster shared by every test of this
/// process, started by the first test that asks. `None` (said loudly) when
/// neither can be had.
pub fn test_server_url(test: &str) -> Option<String> {
    if let Ok(url) = std::env::var("MEMCHAT_TEST_DATABASE_URL") {
        return Some(url);
    }
    let shared = SHARED.get_or_init(|| {
        let (cluster, watcher) = Cluster::start_watched(
            "the shared throwaway PostgreSQL cluster",
            Auth::Trust,
            None,
            true,
        )?;
        Some(SharedCluster {
            cluster,
            _watcher: watcher,
        })
    });
    match shared {
        Some(shared) => Some(shared.cluster.url(None, "127.0.0.1", "?sslmode=disable")),
        None => {
            skip(
                test,
                "MEMCHAT_TEST_DATABASE_URL is not set and PostgreSQL is not installed \
                 (no initdb to start a throwaway cluster)",
            );
            None
        }
    }
}

/// The cluster shared by the suites when no server is given. A static is
/// never dropped, so the cluster is stopped and removed by a watcher
/// process instead ([`stop_when_this_process_ends`]).
struct SharedCluster {
    cluster: Cluster,
    /// The watcher, holding the write end of its stdin: closed by the
    /// kernel when this process ends, however it ends (a panic, ^C, SIGKILL).
    _watcher: Option<Child>,
}

static SHARED: OnceLock<Option<SharedCluster>> = OnceLock::new();

/// Starts a watcher that waits for the end of its stdin, then stops the
/// cluster in `dir` (if its server was started) and removes `dir`; returns
/// it with its stdin open. The watcher runs in a process group of its own
/// so that a ^C to the tests does not kill it before it has cleaned up
/// (`pg_ctl` puts the server in a session of its own for the same reason).
/// The pipe is close-on-exec, so memchat processes started by the tests
/// never hold it open.
fn stop_when_this_process_ends(dir: &Path, bin: &Path) -> Child {
    let mut stop = vec![];
    if is_root() {
        stop.extend(
            [
                "setpriv",
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "--",
            ]
            .map(PathBuf::from),
        );
    }
    stop.push(bin.join("pg_ctl"));
    stop.extend(["-D", "data", "stop", "-m", "immediate"].map(PathBuf::from));
    let mut watcher = Command::new("sh")
        .arg("-c")
        .arg(
            "cat >/dev/null; if [ -f data/postmaster.pid ]; then \"$@\"; fi; \
             cd /; rm -rf \"$MEMCHAT_CLUSTER_DIR\"",
        )
        .arg("memchat-cluster-watcher")
        .args(&stop)
        .env("MEMCHAT_CLUSTER_DIR", dir)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    // Proves the pipe works before the tests rely on it.
    watcher
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"started\n")
        .unwrap();
    watcher
}
