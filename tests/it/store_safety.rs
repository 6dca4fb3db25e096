//! The store under attack, carelessness and bad luck (issue 9, classes 1-7):
//! session names that could alias another session's files, two writers after
//! a lock file is removed, `rename` and `delete` killed at each system call,
//! symlinks and other people's directories, `seq` numbering, damage in the
//! archive, and absurd sizes. Real processes and real files throughout:
//! a second uid through `setpriv`, kills through `strace` fault injection.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::{Capture, Sandbox, read_records, skip, text, wait_until};

const NOBODY: u32 = 65534;

fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

pub fn has_tool(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A session `name` with an archive (compaction ran) and an active log.
fn filled(sandbox: &Sandbox, name: &str) {
    let script: String = (0..30)
        .map(|i| format!("{name} message {i} with enough words to fill a small window quickly\n"))
        .collect();
    let out = sandbox.run(
        &[
            "--mock",
            "--model",
            "gpt-4",
            "--context-limit",
            "1500",
            "-s",
            name,
        ],
        &[],
        Some(script.as_bytes()),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        sandbox
            .memory()
            .join(format!("{name}.archive.jsonl"))
            .exists()
    );
}

/// `memchat show NAME --all --json`: exit code and the records.
fn show_all(sandbox: &Sandbox, name: &str) -> (Option<i32>, String, String) {
    let out = sandbox.run(&["show", name, "--all", "--json"], &[], None);
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

// ---- Class 1: a name can never alias another session's files ----

#[test]
fn no_session_name_reaches_another_sessions_files() {
    let sandbox = Sandbox::new();
    filled(&sandbox, "foo");
    let mem = sandbox.memory();
    let archive = mem.join("foo.archive.jsonl");
    let before = fs::read(&archive).unwrap();
    for args in [
        &["--mock", "-s", "foo.archive", "into foo's archive?"][..],
        &["delete", "foo.archive", "--yes"],
        &["rename", "foo.archive", "bar"],
        &["show", "foo.archive"],
    ] {
        let out = sandbox.run(args, &[], None);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(text(&out.stderr).contains("archive of session"), "{args:?}");
    }
    assert_eq!(
        fs::read(&archive).unwrap(),
        before,
        "foo's archive untouched"
    );
    assert!(!mem.join("bar.jsonl").exists());

    // A new name with a dot is refused; an old session with one still works.
    let out = sandbox.run(&["--mock", "-s", "new.name", "hi"], &[], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(!mem.join("new.name.jsonl").exists());
    fs::copy(mem.join("foo.jsonl"), mem.join("old.name.jsonl")).unwrap();
    let out = sandbox.run(&["--mock", "-s", "old.name", "still here"], &[], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = sandbox.run(&["rename", "foo", "with.dot"], &[], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("contains '.'"));

    // `delete a` leaves alone the quarantine file of an old session called
    // `a.corrupt-x` (and that session itself).
    let out = sandbox.run(&["--mock", "-s", "a", "hi"], &[], None);
    assert_eq!(out.status.code(), Some(0));
    fs::copy(mem.join("a.jsonl"), mem.join("a.corrupt-x.jsonl")).unwrap();
    fs::write(mem.join("a.corrupt-x.corrupt-2026-11-22T101010Z"), "kept\n").unwrap();
    fs::write(mem.join("a.corrupt-2026-11-22T101010Z"), "a's own\n").unwrap();
    let out = sandbox.run(&["delete", "a", "--yes"], &[], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let left = file_names(&mem);
    assert!(
        left.contains(&"a.corrupt-x.corrupt-2026-11-22T101010Z".to_string())
            && left.contains(&"a.corrupt-x.jsonl".to_string()),
        "{left:?}"
    );
    assert!(
        !left
            .iter()
            .any(|n| n.starts_with("a.jsonl") || n == "a.corrupt-2026-11-22T101010Z"),
        "{left:?}"
    );
}

// ---- Class 2: two writers after a lock file is removed ----

/// Whether process `pid` has `path` open.
fn has_open(pid: u32, path: &Path) -> bool {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten()
        .any(|fd| fs::read_link(fd.path()).is_ok_and(|target| target == path))
}

#[test]
fn a_lock_removed_by_rename_never_lets_two_writers_in() {
    let sandbox = Sandbox::new();
    let mem = sandbox.memory();
    let out = sandbox.run(&["--mock", "-s", "a", "first"], &[], None);
    assert_eq!(out.status.code(), Some(0));
    let a_lock = mem.join("a.lock");
    let b_lock = mem.join("b.lock");
    // This test holds b's lock, so `rename a b` stops holding a's lock while
    // it waits for b's: a deterministic window around the removal of a.lock.
    let held = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&b_lock)
        .unwrap();
    held.lock().unwrap();
    let mut rename = sandbox.command(&["rename", "a", "b"]);
    rename.env("MEMCHAT_LOCK_WAIT", "60");
    let mut rename = rename.spawn().unwrap();
    wait_until("rename to wait for b.lock", || {
        has_open(rename.id(), &b_lock)
    });
    // A writer on `a` arrives and waits on a.lock, which rename holds.
    let mut first = sandbox.command(&["--mock", "-s", "a"]);
    first.env("MEMCHAT_LOCK_WAIT", "60").stdin(Stdio::piped());
    let mut first = first.spawn().unwrap();
    let mut first_in = first.stdin.take().unwrap();
    let first_out = Capture::start(first.stdout.take().unwrap());
    wait_until("the first writer to wait on a.lock", || {
        has_open(first.id(), &a_lock)
    });
    // Rename goes on: moves a's files, removes a.lock, exits.
    drop(held);
    let status = rename.wait().unwrap();
    assert!(status.success(), "rename failed");
    // The first writer now has "a" (a new, empty session).
    first_in.write_all(b"from the first writer\n").unwrap();
    first_out.wait_for("from the first writer");
    // A second writer started now must wait for it, not write alongside.
    let second = sandbox.run(&["--mock", "-s", "a", "from the second writer"], &[], None);
    let stderr = text(&second.stderr);
    assert_eq!(
        second.status.code(),
        Some(3),
        "a second process wrote while the first held session a: {stderr}"
    );
    assert!(
        stderr.contains("in use by another memchat process"),
        "{stderr}"
    );
    first_in.write_all(b"the first writer again\n").unwrap();
    drop(first_in);
    assert!(first.wait().unwrap().success());
    let _ = first_out.finish();
    let seqs: Vec<u64> = read_records(&mem.join("a.jsonl"))
        .iter()
        .filter_map(|r| r["seq"].as_u64())
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "seq must rise: {seqs:?}"
    );
    assert_eq!(
        seqs.len(),
        4,
        "two turns of the first writer only: {seqs:?}"
    );
}

// ---- Class 3: rename and delete killed at each system call ----

/// Copies every file of `from` into a fresh `to` (mode 0700).
fn copy_dir(from: &Path, to: &Path) {
    let _ = fs::remove_dir_all(to);
    fs::create_dir(to).unwrap();
    fs::set_permissions(to, fs::Permissions::from_mode(0o700)).unwrap();
    for name in file_names(from) {
        fs::copy(from.join(&name), to.join(&name)).unwrap();
    }
}

/// Runs memchat `args` under strace, killed at the `n`-th call of
/// `syscall`. Returns whether it ran to completion (not killed).
pub fn run_killed_at(sandbox: &Sandbox, args: &[&str], syscall: &str, n: usize) -> bool {
    let memchat = sandbox.command(args);
    let mut command = Command::new("strace");
    command
        .args(["-f", "-qq", "-o", "/dev/null", "-e"])
        .arg(format!("trace={syscall}"))
        .arg("-e")
        .arg(format!("inject={syscall}:signal=KILL:when={n}"))
        .arg(memchat.get_program())
        .args(memchat.get_args())
        .env_clear()
        .current_dir(sandbox.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (key, value) in memchat.get_envs() {
        if let Some(value) = value {
            command.env(key, value);
        }
    }
    command.status().unwrap().success()
}

/// The whole conversation of `name` as `show --all --json` prints it, or
/// `None` if there is no such session.
fn conversation(sandbox: &Sandbox, name: &str) -> Option<String> {
    let (code, stdout, stderr) = show_all(sandbox, name);
    match code {
        Some(0) => Some(stdout),
        Some(3) if stderr.contains("no session named") => None,
        other => panic!("show {name} exited {other:?}: {stderr}"),
    }
}

/// Every call that opens, writes, syncs, renames or removes: a kill at each
/// lands at every boundary between two changes on disk.
const SYSCALLS: [&str; 6] = ["openat", "write", "fsync", "fdatasync", "rename", "unlink"];

#[test]
fn rename_and_delete_killed_at_any_system_call_lose_nothing() {
    if !has_tool("strace") {
        skip(
            "store_safety::rename_and_delete_killed_at_any_system_call_lose_nothing",
            "strace is not installed (apt-get install strace), so no kill at a chosen system call",
        );
        return;
    }
    let sandbox = Sandbox::new();
    filled(&sandbox, "a");
    let mem = sandbox.memory();
    fs::write(
        mem.join("a.corrupt-2026-11-22T101010Z"),
        "quarantined bytes\n",
    )
    .unwrap();
    let template = sandbox.dir.path().join("template");
    copy_dir(&mem, &template);
    let original = conversation(&sandbox, "a").unwrap();
    let mut kills = 0;
    for syscall in SYSCALLS {
        // Rename: afterwards the conversation is whole under exactly one
        // name, and finishing the rename (again) puts it under the new one.
        for n in 1.. {
            copy_dir(&template, &mem);
            let done = run_killed_at(&sandbox, &["rename", "a", "b"], syscall, n);
            let (a, b) = (conversation(&sandbox, "a"), conversation(&sandbox, "b"));
            match (&a, &b) {
                (Some(a), None) => assert_eq!(a, &original, "rename killed at {syscall} #{n}"),
                (None, Some(b)) => assert_eq!(b, &original, "rename killed at {syscall} #{n}"),
                _ => panic!(
                    "rename killed at {syscall} #{n}: split or lost: a {:?}, b {:?}, files {:?}",
                    a.is_some(),
                    b.is_some(),
                    file_names(&mem)
                ),
            }
            if a.is_some() {
                let out = sandbox.run(&["rename", "a", "b"], &[], None);
                assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
            }
            assert_eq!(conversation(&sandbox, "b").as_ref(), Some(&original));
            let names = file_names(&mem);
            assert!(
                // A lock file holds no data: one left by a kill is reused.
                !names.iter().any(|f| f.starts_with("a.") && f != "a.lock"),
                "rename killed at {syscall} #{n} left {names:?}"
            );
            assert!(names.contains(&"b.corrupt-2026-11-22T101010Z".to_string()));
            if done {
                break;
            }
            kills += 1;
        }
        // Delete: afterwards the session is whole or entirely gone.
        for n in 1.. {
            copy_dir(&template, &mem);
            let done = run_killed_at(&sandbox, &["delete", "a", "--yes"], syscall, n);
            match conversation(&sandbox, "a") {
                Some(a) => assert_eq!(a, original, "delete killed at {syscall} #{n}"),
                None => {
                    let names = file_names(&mem);
                    assert!(
                        !names.iter().any(|f| f.starts_with("a.") && f != "a.lock"),
                        "delete killed at {syscall} #{n} left {names:?}"
                    );
                }
            }
            if done {
                break;
            }
            kills += 1;
        }
    }
    println!("rename and delete: {kills} kills at {SYSCALLS:?}");
    assert!(kills >= 20, "the kills landed inside the operations");
}

// ---- Class 4: symlinks and other people's directories ----

#[test]
fn no_session_file_is_written_through_a_symlink() {
    for kind in ["log", "archive", "lock"] {
        let sandbox = Sandbox::new();
        let out = sandbox.run(&["--mock", "-s", "s", "hello"], &[], None);
        assert_eq!(out.status.code(), Some(0));
        let mem = sandbox.memory();
        let outside = sandbox.dir.path().join(format!("outside-{kind}"));
        let link = match kind {
            "log" => {
                // A real memchat log elsewhere, world-readable.
                fs::copy(mem.join("s.jsonl"), &outside).unwrap();
                fs::set_permissions(&outside, fs::Permissions::from_mode(0o644)).unwrap();
                mem.join("s.jsonl")
            }
            "archive" => mem.join("s.archive.jsonl"),
            _ => mem.join("s.lock"),
        };
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        let before = fs::read(&outside).ok();
        // --new moves the messages to the archive: a write to each file.
        let out = sandbox.run(&["--mock", "-s", "s", "--new", "again"], &[], None);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{kind}: {stderr}");
        assert!(stderr.contains("is a symbolic link"), "{kind}: {stderr}");
        assert_eq!(
            fs::read(&outside).ok(),
            before,
            "{kind}: the link was followed"
        );
        if kind == "log" {
            assert_eq!(
                fs::metadata(&outside).unwrap().permissions().mode() & 0o777,
                0o644
            );
        }
    }
}

#[test]
fn another_users_or_an_open_directory_is_refused_and_no_mode_is_changed() {
    let sandbox = Sandbox::new();
    let root = sandbox.dir.path();
    fs::set_permissions(root, fs::Permissions::from_mode(0o755)).unwrap();
    let memory_dir = |dir: &Path| {
        let mut command = sandbox.command(&["--mock", "hello"]);
        command.env("MEMCHAT_MEMORY_DIR", dir);
        command.output().unwrap()
    };
    // A sticky, world-writable directory (like /tmp): refused, mode kept.
    let sticky = root.join("sticky");
    fs::create_dir(&sticky).unwrap();
    fs::set_permissions(&sticky, fs::Permissions::from_mode(0o1777)).unwrap();
    let out = memory_dir(&sticky);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("other users can write"));
    assert_eq!(fs::metadata(&sticky).unwrap().mode() & 0o7777, 0o1777);
    assert!(file_names(&sticky).is_empty());
    // One's own directory that others may list: used, with a warning, mode kept.
    let listable = root.join("listable");
    fs::create_dir(&listable).unwrap();
    fs::set_permissions(&listable, fs::Permissions::from_mode(0o750)).unwrap();
    let out = memory_dir(&listable);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("chmod 700"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(fs::metadata(&listable).unwrap().mode() & 0o7777, 0o750);

    if !is_root() {
        skip(
            "store_safety::another_users_or_an_open_directory_is_refused_and_no_mode_is_changed",
            "the second-user half needs root (chown, setpriv)",
        );
        return;
    }
    // Another user's directory: refused.
    let theirs = root.join("theirs");
    fs::create_dir(&theirs).unwrap();
    fs::set_permissions(&theirs, fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&theirs, Some(NOBODY), Some(NOBODY)).unwrap();
    let out = memory_dir(&theirs);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("belongs to another user"));
    assert!(file_names(&theirs).is_empty());
    // And from the victim's side: a second uid pointed at a directory this
    // (other) user planted, writable by all, writes nothing into it.
    if !has_tool("setpriv") {
        skip(
            "store_safety::another_users_or_an_open_directory_is_refused_and_no_mode_is_changed",
            "setpriv (util-linux) is missing, so no second uid",
        );
        return;
    }
    let planted = root.join("planted");
    fs::create_dir(&planted).unwrap();
    fs::set_permissions(&planted, fs::Permissions::from_mode(0o777)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_memchat"))
        .args(["--mock", "my secret"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", root)
        .env("MEMCHAT_MEMORY_DIR", &planted)
        .current_dir("/")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("belongs to another user"), "{stderr}");
    assert!(
        file_names(&planted).is_empty(),
        "{:?}",
        file_names(&planted)
    );
}

/// A memory directory this user may not enter is an error for the commands
/// that read it (`sessions`, `search`), as it is for a chat: "no sessions
/// yet" or "no message matches" would say the conversations are gone.
#[test]
fn a_memory_directory_this_user_cannot_enter_is_an_error_not_an_empty_store() {
    let test =
        "store_safety::a_memory_directory_this_user_cannot_enter_is_an_error_not_an_empty_store";
    if !is_root() {
        skip(test, "needs root for a second uid (setpriv)");
        return;
    }
    if !has_tool("setpriv") {
        skip(test, "setpriv (util-linux) is missing, so no second uid");
        return;
    }
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["--mock", "the redis fix uses SCAN"], &[], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // The directory above it closed: the second uid cannot even look.
    fs::set_permissions(sandbox.dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
    for args in [
        &["sessions"][..],
        &["search", "redis"],
        &["search", "redis", "-s", "default"],
    ] {
        let out = Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_memchat"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", "/")
            .env("MEMCHAT_MEMORY_DIR", sandbox.memory())
            .current_dir("/")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {stderr}");
        assert!(stderr.contains("Permission denied"), "{args:?}: {stderr}");
    }
}

#[test]
fn only_a_memchat_memory_directory_is_adopted_and_a_new_session_says_where() {
    let sandbox = Sandbox::new();
    let local = sandbox.dir.path().join("memory");
    fs::create_dir(&local).unwrap();
    fs::write(local.join("notes.txt"), "my notes\n").unwrap();
    let run = || {
        let mut command = sandbox.command(&["--mock", "hello"]);
        command.env_remove("MEMCHAT_MEMORY_DIR");
        command.output().unwrap()
    };
    let out = run();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        file_names(&local),
        ["notes.txt"],
        "a plain folder is not adopted"
    );
    let data = sandbox.dir.path().join("home/data/memchat");
    assert!(data.join("default.jsonl").exists());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("new session \"default\" in {}", data.display())),
        "{stderr}"
    );
    // With the marker the repository ships, ./memory is memchat's.
    fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("memory/.memchat-memory"),
        local.join(".memchat-memory"),
    )
    .unwrap();
    fs::set_permissions(&local, fs::Permissions::from_mode(0o700)).unwrap();
    let out = run();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(local.join("default.jsonl").exists());
    assert!(text(&out.stderr).contains("new session \"default\" in"));
    assert!(text(&out.stderr).contains("/memory"));
}

// ---- Class 5: seq continues from everything the session holds ----

fn max_seq(sandbox: &Sandbox) -> u64 {
    let (code, stdout, stderr) = show_all(sandbox, "default");
    assert_eq!(code, Some(0), "{stderr}");
    let records: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    records
        .iter()
        .filter_map(|r| r["seq"].as_u64())
        .max()
        .unwrap()
}

#[test]
fn seq_continues_after_the_archive_and_impossible_seqs_are_refused() {
    let sandbox = Sandbox::new();
    filled(&sandbox, "default");
    let mem = sandbox.memory();
    let log = mem.join("default.jsonl");
    for (damage, words) in [("emptied", "after emptying"), ("deleted", "after deleting")] {
        if damage == "emptied" {
            fs::write(&log, "").unwrap();
        } else {
            fs::remove_file(&log).unwrap();
        }
        // What the session still holds is its archive.
        let highest = sandbox
            .records("default.archive.jsonl")
            .iter()
            .filter_map(|r| r["seq"].as_u64())
            .max()
            .unwrap();
        let out = sandbox.run(&["--mock", words], &[], None);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let records = sandbox.records("default.jsonl");
        let user = records.iter().find(|r| r["content"] == words).unwrap();
        assert!(
            user["seq"].as_u64().unwrap() > highest,
            "{damage}: seq {} after {highest}",
            user["seq"]
        );
        let (_, all, _) = show_all(&sandbox, "default");
        assert!(all.contains(words), "{damage}: missing from show --all");
    }

    let header = r#"{"type":"header","format":"memchat","version":1,"session":"s","created_at":"2026-11-22T10:00:00Z"}"#;
    for (name, seq, needle) in [
        (
            "wraps",
            u64::MAX,
            "wraps.jsonl:2: seq 18446744073709551615 is impossible",
        ),
        ("top", (1 << 53) - 1, "has reached its maximum"),
    ] {
        let path = mem.join(format!("{name}.jsonl"));
        let content = format!(
            "{header}\n{{\"type\":\"message\",\"seq\":{seq},\"role\":\"user\",\"content\":\"hi\",\"at\":\"x\"}}\n"
        );
        fs::write(&path, &content).unwrap();
        let out = sandbox.run(&["--mock", "-s", name, "one more"], &[], None);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{name}: {stderr}");
        assert!(stderr.contains(needle), "{name}: {stderr}");
        assert_eq!(fs::read_to_string(&path).unwrap(), content, "{name}");
    }
}

// ---- Class 6: damage in the archive is reported and repaired ----

#[test]
fn archive_damage_is_reported_with_its_line_and_repaired() {
    let sandbox = Sandbox::new();
    filled(&sandbox, "default");
    let mem = sandbox.memory();
    let archive = mem.join("default.archive.jsonl");
    let before = max_seq(&sandbox);
    let good = serde_json::from_str::<Vec<serde_json::Value>>(&show_all(&sandbox, "default").1)
        .unwrap()
        .len();
    let mut lines: Vec<String> = fs::read_to_string(&archive)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert!(lines.len() > 3);
    let damaged = lines[2].clone();
    lines[2] = damaged[..damaged.len() / 2].to_string();
    fs::write(&archive, lines.join("\n") + "\n").unwrap();
    for args in [
        &["show", "default", "--all"][..],
        &["export", "default"],
        &["sessions"],
    ] {
        let out = sandbox.run(args, &[], None);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {stderr}");
        assert!(
            stderr.contains("default.archive.jsonl:3:"),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains("memchat repair default"), "{stderr}");
    }
    let out = sandbox.run(&["repair", "default"], &[], None);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(stdout.contains("repaired default's archive"), "{stdout}");
    assert!(stdout.contains("line 3:"), "{stdout}");
    let quarantine: Vec<String> = file_names(&mem)
        .into_iter()
        .filter(|n| n.starts_with("default.corrupt-"))
        .collect();
    assert_eq!(quarantine.len(), 1);
    assert_eq!(
        fs::read_to_string(mem.join(&quarantine[0])).unwrap(),
        format!("{}\n", &damaged[..damaged.len() / 2])
    );
    let (code, all, stderr) = show_all(&sandbox, "default");
    assert_eq!(code, Some(0), "{stderr}");
    let kept = serde_json::from_str::<Vec<serde_json::Value>>(&all).unwrap();
    assert_eq!(kept.len(), good - 1, "every good record kept");
    assert_eq!(max_seq(&sandbox), before);
}

// ---- Class 7: absurd sizes ----

/// Runs memchat with its address space capped (`ulimit -v`, KiB).
fn run_capped(sandbox: &Sandbox, kib: u64, args: &[&str]) -> std::process::Output {
    run_capped_with_stdin(sandbox, kib, args, std::process::Stdio::null())
}

/// [`run_capped`], reading `stdin`.
fn run_capped_with_stdin(
    sandbox: &Sandbox,
    kib: u64,
    args: &[&str],
    stdin: std::process::Stdio,
) -> std::process::Output {
    let memchat = sandbox.command(args);
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("ulimit -v {kib} && exec \"$0\" \"$@\""))
        .arg(memchat.get_program())
        .args(memchat.get_args())
        .env_clear()
        .stdin(stdin)
        .current_dir(sandbox.dir.path());
    for (key, value) in memchat.get_envs() {
        if let Some(value) = value {
            command.env(key, value);
        }
    }
    command.output().unwrap()
}

#[test]
fn an_absurd_line_is_damage_read_in_bounded_memory_and_quarantinable() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["--mock", "-s", "big", "before"], &[], None);
    assert_eq!(out.status.code(), Some(0));
    let log = sandbox.memory().join("big.jsonl");
    // A 110 MB line (sparse: no disk used) after the header, the settings
    // and the first two messages.
    let absurd: u64 = 110 * 1024 * 1024;
    let file = fs::OpenOptions::new().append(true).open(&log).unwrap();
    let start = file.metadata().unwrap().len();
    file.set_len(start + absurd).unwrap();
    let mut file = fs::OpenOptions::new().append(true).open(&log).unwrap();
    file.write_all(b"\n").unwrap();
    drop(file);
    // 100 MB of address space: memchat itself needs under 60 MB, the line
    // alone would need 110 MB.
    let cap_kib = 100 * 1024;
    let out = run_capped(&sandbox, cap_kib, &["--mock", "-s", "big", "after"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("big.jsonl:5:"), "{stderr}");
    assert!(stderr.contains("over the cap"), "{stderr}");
    let out = run_capped(&sandbox, cap_kib, &["repair", "big"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let quarantine = file_names(&sandbox.memory())
        .into_iter()
        .find(|n| n.starts_with("big.corrupt-"))
        .unwrap();
    assert_eq!(
        fs::metadata(sandbox.memory().join(quarantine))
            .unwrap()
            .len(),
        absurd + 1,
        "the whole line is kept in quarantine"
    );
    let out = run_capped(&sandbox, cap_kib, &["--mock", "-s", "big", "after"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let contents: Vec<String> = sandbox
        .records("big.jsonl")
        .iter()
        .filter_map(|r| r["content"].as_str().map(str::to_string))
        .collect();
    assert_eq!(contents[0], "before");
    assert_eq!(contents[2], "after");
}

#[test]
fn an_absurd_script_line_is_refused_by_number_in_bounded_memory() {
    let sandbox = Sandbox::new();
    // A script whose second line is 110 MB (sparse: no disk used), then a
    // third line that must not be sent either.
    let script = sandbox.dir.path().join("script.txt");
    let absurd: u64 = 110 * 1024 * 1024;
    let mut file = fs::File::create(&script).unwrap();
    file.write_all(b"first line\n").unwrap();
    file.set_len(11 + absurd).unwrap();
    let mut file = fs::OpenOptions::new().append(true).open(&script).unwrap();
    file.write_all(b"\nthird line\n").unwrap();
    drop(file);
    // 100 MB of address space: the line alone would need 110 MB.
    let stdin = fs::File::open(&script).unwrap();
    let out = run_capped_with_stdin(&sandbox, 100 * 1024, &["--mock"], stdin.into());
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("stdin line 2 is longer than 4194304 bytes"),
        "{stderr}"
    );
    let sent: Vec<String> = sandbox
        .records("default.jsonl")
        .iter()
        .filter(|r| r["role"] == "user")
        .filter_map(|r| r["content"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        sent,
        ["first line"],
        "nothing after the absurd line is sent"
    );

    // A message continued over many lines (an open code fence) is bounded
    // the same way: refused once it passes the cap, naming where.
    let sandbox = Sandbox::new();
    let mut fenced = b"```\n".to_vec();
    let line = format!("{}\n", "x".repeat(1024 * 1024));
    for _ in 0..5 {
        fenced.extend_from_slice(line.as_bytes());
    }
    fenced.extend_from_slice(b"```\nafter\n");
    let out = sandbox.run(&["--mock"], &[], Some(&fenced));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("the message continued up to stdin line 5 is longer than"),
        "{stderr}"
    );
    let records = sandbox.records("default.jsonl");
    assert!(
        records.iter().all(|r| r["type"] != "message"),
        "nothing sent: {records:?}"
    );
}

#[test]
fn oversized_input_and_imports_are_refused_clearly() {
    let sandbox = Sandbox::new();
    // 5 MB of text in a window that would take it: refused by its size,
    // before anything is counted or written.
    let huge = "word ".repeat(1024 * 1024);
    let out = sandbox.run(
        &["--mock", "--context-limit", "4000000", "-"],
        &[],
        Some(huge.as_bytes()),
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("the most one message may hold"), "{stderr}");
    assert!(!sandbox.memory().join("default.jsonl").exists());
    // An import file over the cap (sparse: no disk used).
    let big = sandbox.dir.path().join("big.json");
    fs::File::create(&big)
        .unwrap()
        .set_len(65 * 1024 * 1024)
        .unwrap();
    let out = sandbox.run(&["import", big.to_str().unwrap(), "--as", "big"], &[], None);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("over 64 MiB"), "{stderr}");
    // One message over the cap in an otherwise fine import.
    let array = serde_json::json!([{"role": "user", "content": "x".repeat(5 * 1024 * 1024)}]);
    let file = sandbox.dir.path().join("one.json");
    fs::write(&file, array.to_string()).unwrap();
    let out = sandbox.run(
        &["import", file.to_str().unwrap(), "--as", "one"],
        &[],
        None,
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("message 1 is 5242880 bytes"), "{stderr}");
    assert!(!sandbox.memory().join("one.jsonl").exists());
}

/// With too little address space something fails at start-up: the
/// allocator (an abort), the loader, the Rust runtime's own start (a panic
/// before memchat's code runs). Whatever fails, it must not be a panic of
/// memchat's own making (the signal handlers' thread
/// once failed to start there and its runtime, dropped inside memchat's
/// runtime, panicked). The limit where a one-shot starts to work is found,
/// then every limit around it is tried.
#[test]
fn a_one_shot_with_barely_enough_address_space_never_panics() {
    let sandbox = Sandbox::new();
    let args = ["--mock", "-s", "tight", "hello"];
    let works = |kib: u64| run_capped(&sandbox, kib, &args).status.success();
    let (mut low, mut high) = (4_000u64, 400_000u64);
    assert!(works(high), "a one-shot needs less than {high} KiB");
    while high - low > 64 {
        let mid = (low + high) / 2;
        if works(mid) { high = mid } else { low = mid }
    }
    for kib in (high.saturating_sub(4_000)..high + 4_000).step_by(64) {
        let out = run_capped(&sandbox, kib, &args);
        let stderr = text(&out.stderr);
        // The Rust runtime's own start, before any of memchat's code runs,
        // panics when it cannot map the main thread's signal stack.
        let std_start = "failed to allocate an alternative stack";
        if stderr.contains(std_start) {
            continue;
        }
        assert!(
            !stderr.contains("panicked") && out.status.code() != Some(101),
            "ulimit -v {kib}: {stderr}"
        );
    }
}
