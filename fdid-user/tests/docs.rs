//! The man pages and completions that packages ship are generated from the same definitions as
//! `--help`, so every option a user can see in one is in the others.

use std::{collections::BTreeSet, process::Command};

const FDID: &str = env!("CARGO_BIN_EXE_fdid");

fn long_options(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|word| word.starts_with("--") && word.len() > 2)
        .map(str::to_owned)
        .collect()
}

fn help(args: &[&str]) -> String {
    let output = Command::new(FDID)
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn man_pages_and_completions_carry_every_option_of_the_help() {
    let dir = std::env::temp_dir().join(format!("fdid-docs-{}", std::process::id()));
    let status = Command::new(FDID)
        .arg("generate")
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    let read = |path: &str| std::fs::read_to_string(dir.join(path)).unwrap();
    for (page, args) in [
        ("man/fdid.1", &[][..]),
        ("man/fdid-check.1", &["check"]),
        ("man/fdid-who.1", &["who"]),
        ("man/fdid-watch.1", &["watch"]),
    ] {
        // roff writes a hyphen as `\-`.
        let man = read(page).replace("\\-", "-");
        let help = help(args);
        let options = long_options(&help);
        assert!(
            options.contains("--json") || options.contains("--allow-shared-with"),
            "{help}"
        );
        for option in &options {
            assert!(man.contains(option.as_str()), "{page} lacks {option}");
        }
    }
    let bash = read("completions/fdid.bash");
    for word in [
        "who",
        "check",
        "watch",
        "--scope-only",
        "--allow-shared-with",
        "--ring-mib",
    ] {
        assert!(bash.contains(word), "bash completion lacks {word}");
    }
    assert!(read("completions/_fdid").contains("--scope-only"));
    assert!(read("completions/fdid.fish").contains("scope-only"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_help_shows_examples() {
    assert!(help(&[]).contains("\nExamples:\n  fdid --pid $$"));
    assert!(help(&["who"]).contains("\nExamples:\n  fdid who tcp:8080"));
    assert!(help(&["watch"]).contains("\nExamples:\n  fdid watch "));
}
