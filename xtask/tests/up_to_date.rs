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

#[test]
fn knockd_pages_have_the_hand_written_sections_and_every_directive() {
    let files = xtask::render_all().expect("render");
    let page = |name: &str| {
        let file = files.iter().find(|f| f.path.ends_with(name)).expect(name);
        String::from_utf8_lossy(&file.contents).into_owned()
    };
    let knockd = page("knockd.8");
    for section in ["EXIT STATUS", "SIGNALS", "FILES", "SEE ALSO", "OPTIONS"] {
        assert!(
            knockd.contains(&format!(".SH {section}\n")),
            "knockd.8 lacks {section}"
        );
    }
    assert!(
        !knockd.contains(".SH EXTRA"),
        "clap's footer is replaced by the sections"
    );
    let conf = page("knockd.conf.5");
    assert!(conf.starts_with(".TH knockd.conf 5 "), "{conf}");
    // Every directive the parser knows (README table rows) is in the man page.
    for directive in [
        "UseSyslog",
        "LogFile",
        "PidFile",
        "Interface",
        "Sequence",
        "One_Time_Sequences",
        "Seq_Timeout",
        "TCPFlags",
        "Start_Command",
        "Start_Command_6",
        "Cmd_Timeout",
        "Stop_Command",
        "Stop_Command_6",
        "Target",
    ] {
        assert!(
            conf.contains(&format!(".TP\n\\fB{}\\fR", directive)),
            "knockd.conf.5 has no entry for {directive}"
        );
    }
    for section in [
        "SYNTAX",
        "DEVIATIONS FROM KNOCKD 0.8",
        "SECURITY NOTES",
        "EXAMPLES",
        "SEE ALSO",
    ] {
        assert!(
            conf.contains(&format!(".SH {section}\n")),
            "knockd.conf.5 lacks {section}"
        );
    }
    let readme = page("README.md");
    assert!(
        readme.contains("### Door sections"),
        "the README includes the reference"
    );
}
