//! What a red-team pass over issue 9's classes found after the first round
//! of fixes, each through the real binary: files memchat names itself
//! (an export's default name) never replace or write through what is there.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::support::{Sandbox, text};

#[test]
fn an_export_under_its_default_name_never_replaces_or_follows_what_is_there() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["--mock", "keep this"], &[], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let dir = sandbox.dir.path();
    // The user's own file that happens to be called default.md, and a link
    // where the next free name would be, pointing at a file elsewhere.
    fs::write(dir.join("default.md"), "my notes\n").unwrap();
    let outside = dir.join("outside.txt");
    fs::write(&outside, "precious\n").unwrap();
    fs::set_permissions(&outside, fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("default-1.md")).unwrap();
    let out = sandbox.run(&["--mock", "/export"], &[], None);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(stdout.contains("to default-2.md"), "{stdout}");
    assert_eq!(
        fs::read_to_string(dir.join("default.md")).unwrap(),
        "my notes\n"
    );
    assert_eq!(fs::read_to_string(&outside).unwrap(), "precious\n");
    let mode = fs::metadata(&outside).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o644);
    let export = fs::read_to_string(dir.join("default-2.md")).unwrap();
    assert!(export.contains("keep this"), "{export}");
    let mode = fs::metadata(dir.join("default-2.md"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}
