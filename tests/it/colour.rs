//! Colour rules for notices, whatever renders them: escape codes with
//! `--color always`, none when stderr is not a terminal (`auto`) or with
//! `--color never`; stdout stays free of codes unless asked for.

use crate::support::{Sandbox, text};

const ESC: char = '\u{1b}';

/// A mock run whose unknown model makes memchat print a notice.
fn run_with_notice(sandbox: &Sandbox, color: &str) -> (String, String) {
    let mut command = sandbox.command(&["--mock", "--model", "llama3.2", "--color", color, "hi"]);
    command.env_remove("NO_COLOR");
    let out = command.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    (text(&out.stdout), text(&out.stderr))
}

#[test]
fn notices_are_styled_only_when_colour_is_on() {
    let sandbox = Sandbox::new();
    let (_, always) = run_with_notice(&sandbox, "always");
    assert!(
        always.contains(&format!("{ESC}[2mmemchat: the context window of")),
        "{always:?}"
    );
    assert!(
        always.trim_end().ends_with(&format!("{ESC}[0m")),
        "{always:?}"
    );
    for color in ["auto", "never"] {
        let (stdout, stderr) = run_with_notice(&sandbox, color);
        assert!(
            stderr.contains("memchat: the context window of"),
            "{stderr:?}"
        );
        assert!(!stderr.contains(ESC), "{color}: {stderr:?}");
        assert!(!stdout.contains(ESC), "{color}: {stdout:?}");
    }
}
