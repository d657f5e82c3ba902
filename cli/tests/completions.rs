//! The completion scripts in completions/ are generated from the CLI definition and checked
//! in; this test fails when they drift. Regenerate with:
//! `UPDATE_COMPLETIONS=1 cargo test -p meshctl --test completions`.

// Test helpers may stop the test with expect/panic; that is how a test fails.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::Path;

use clap_complete::Shell;

#[test]
fn completions_are_up_to_date() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../completions");
    let update = std::env::var_os("UPDATE_COMPLETIONS").is_some();
    let mut stale = Vec::new();
    for (shell, file) in [
        (Shell::Bash, "meshctl.bash"),
        (Shell::Zsh, "_meshctl"),
        (Shell::Fish, "meshctl.fish"),
    ] {
        let mut cmd = meshctl::command();
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd, "meshctl", &mut buf);
        let path = dir.join(file);
        if update {
            std::fs::write(&path, &buf).expect("write completion");
            continue;
        }
        let current = std::fs::read(&path).unwrap_or_default();
        if current != buf {
            stale.push(file);
        }
    }
    assert!(
        stale.is_empty(),
        "completions out of date: {stale:?}; run UPDATE_COMPLETIONS=1 cargo test -p meshctl --test completions"
    );
}
