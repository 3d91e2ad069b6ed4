//! The committed man pages and completions match the CLI definitions.

#[test]
fn generated_files_are_committed_and_up_to_date() {
    let root = xtask::workspace_root();
    let stale = xtask::stale_files(&root).expect("render");
    assert!(
        stale.is_empty(),
        "stale generated files {stale:?}: run `cargo run -p xtask -- gen` and commit the result"
    );
}

#[test]
fn every_program_has_a_man_page_and_three_completions() {
    let files = xtask::render_all().expect("render");
    let names: Vec<String> = files
        .iter()
        .map(|f| f.path.to_string_lossy().into_owned())
        .collect();
    for expected in [
        "packaging/man/knock.1",
        "packaging/completions/knock.bash",
        "packaging/completions/_knock",
        "packaging/completions/knock.fish",
        "packaging/man/knockd.8",
        "packaging/completions/knockd.bash",
        "packaging/completions/_knockd",
        "packaging/completions/knockd.fish",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    let page = &files
        .iter()
        .find(|f| f.path.ends_with("knock.1"))
        .unwrap()
        .contents;
    let page = String::from_utf8_lossy(page);
    assert!(
        page.contains("\\-\\-delay") || page.contains("--delay"),
        "man page lacks --delay"
    );
}
