//! Attachments through the real binary: `-f FILE` and directories in a
//! one-shot run (with piped stdin too), `/file` in a script, binary files
//! refused, and attachments too large for the budget or the one-message cap
//! refused before anything is stored.

use crate::support::{Sandbox, text};

/// The user messages of the default session's log.
fn user_messages(sandbox: &Sandbox) -> Vec<String> {
    sandbox
        .records("default.jsonl")
        .into_iter()
        .filter(|r| r["role"] == "user")
        .map(|r| r["content"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn files_and_a_directory_follow_the_prompt_and_stdin_each_under_its_name() {
    let sandbox = Sandbox::new();
    let dir = sandbox.dir.path();
    std::fs::write(dir.join("notes.md"), "Use ``` fences.\n").unwrap();
    std::fs::create_dir_all(dir.join("src/deep")).unwrap();
    std::fs::write(dir.join("src/b.rs"), "fn b() {}\n").unwrap();
    std::fs::write(dir.join("src/a.rs"), "fn a() {}\n").unwrap();
    std::fs::write(dir.join("src/logo.png"), [0x89, b'P', b'N', b'G', 0, 1]).unwrap();
    std::fs::write(dir.join("src/deep/c.rs"), "fn c() {}\n").unwrap();
    let args = [
        "--mock", "-f", "notes.md", "--file", "src", "Review", "this",
    ];
    let out = sandbox.run(&args, &[], Some(b"piped log line\n"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("skipped src/logo.png: not a text file"),
        "{stderr}"
    );
    assert!(
        stderr.contains("attached 3 files (") && stderr.contains("): notes.md, src/a.rs, src/b.rs"),
        "{stderr}"
    );
    assert_eq!(
        user_messages(&sandbox),
        ["Review this\n\npiped log line\n\n\
          File `notes.md`:\n````\nUse ``` fences.\n````\n\n\
          File `src/a.rs`:\n```\nfn a() {}\n```\n\n\
          File `src/b.rs`:\n```\nfn b() {}\n```"]
    );
}

#[test]
fn a_binary_file_is_refused_by_name_and_nothing_is_stored() {
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.dir.path().join("data.bin"), b"ab\0cd").unwrap();
    std::fs::write(sandbox.dir.path().join("latin1.txt"), b"caf\xe9").unwrap();
    for (file, why) in [
        ("data.bin", "a NUL byte at offset 2"),
        ("latin1.txt", "not UTF-8 at byte 3"),
    ] {
        let out = sandbox.run(&["--mock", "-f", file, "what is this"], &[], None);
        assert_eq!(out.status.code(), Some(2));
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(&format!(
                "{file} is not a text file ({why}); memchat attaches text only"
            )),
            "{stderr}"
        );
    }
    let out = sandbox.run(&["--mock", "-f", "missing.txt", "hi"], &[], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot attach missing.txt"));
    assert!(user_messages(&sandbox).is_empty());
}

#[test]
fn an_attachment_too_large_for_the_budget_says_its_size_and_what_fits() {
    let sandbox = Sandbox::new();
    let big: String = (0..3000).map(|i| format!("word{i} ")).collect();
    std::fs::write(sandbox.dir.path().join("big.txt"), &big).unwrap();
    std::fs::write(sandbox.dir.path().join("small.txt"), "tiny").unwrap();
    let args = [
        "--mock",
        "--context-limit",
        "4096",
        "-f",
        "small.txt",
        "-f",
        "big.txt",
        "sum up",
    ];
    let out = sandbox.run(&args, &[], None);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("the attachments are "), "{stderr}");
    assert!(stderr.contains("(small.txt 11, big.txt "), "{stderr}");
    assert!(
        stderr.contains("but a request may carry at most 2816"),
        "{stderr}"
    );
    assert!(
        stderr.contains("tokens of attachments fit; nothing was saved"),
        "{stderr}"
    );
    assert!(user_messages(&sandbox).is_empty());
    // Past the one-message cap, the file is refused before it is counted.
    let huge = vec![b'a'; 4 * 1024 * 1024 + 1];
    std::fs::write(sandbox.dir.path().join("huge.txt"), huge).unwrap();
    let out = sandbox.run(&["--mock", "-f", "huge.txt", "hi"], &[], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("huge.txt is larger than 4194304 bytes"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_file_command_attaches_to_the_next_message_lists_and_drops() {
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.dir.path().join("a.txt"), "alpha").unwrap();
    std::fs::write(sandbox.dir.path().join("b.txt"), "beta").unwrap();
    let script =
        b"/file\n/file a.txt\n/file b.txt\n/file\n/file --clear\n/file b.txt\nfirst\nsecond\n";
    let out = sandbox.run(&["--mock"], &[], Some(script));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("no files attached"), "{stdout}");
    assert!(
        stdout.contains("attached a.txt; your next message carries 1 file (11 tokens)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("attached b.txt; your next message carries 2 files ("),
        "{stdout}"
    );
    assert!(
        stdout.contains("attached, to go with your next message:\n  a.txt (11 tokens)\n  b.txt ("),
        "{stdout}"
    );
    assert!(stdout.contains("memory: 2 attachments dropped"), "{stdout}");
    assert_eq!(
        user_messages(&sandbox),
        ["first\n\nFile `b.txt`:\n```\nbeta\n```", "second"]
    );
    // A binary file stops the script (a refusal) and attaches nothing.
    std::fs::write(sandbox.dir.path().join("x.bin"), b"\0").unwrap();
    let out = sandbox.run(&["--mock"], &[], Some(b"/file x.bin\n"));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("x.bin is not a text file"));
}

#[test]
fn without_a_prompt_the_files_go_with_the_first_message_of_a_script() {
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.dir.path().join("todo.txt"), "buy milk").unwrap();
    let out = sandbox.run(&["--mock", "-f", "todo.txt"], &[], Some(b"first\nsecond\n"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        user_messages(&sandbox),
        ["first\n\nFile `todo.txt`:\n```\nbuy milk\n```", "second"]
    );
}
