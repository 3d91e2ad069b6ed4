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

/// The bash completions offer door names (from the `-c` file), interfaces and facilities.
#[test]
fn bash_completions_know_doors_interfaces_and_facilities() {
    let dir = std::env::temp_dir().join(format!("xtask-completions-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for file in xtask::render_all().expect("render") {
        if file.path.extension().is_some_and(|e| e == "bash") {
            std::fs::write(dir.join(file.path.file_name().unwrap()), &file.contents).unwrap();
        }
    }
    let conf = dir.join("k.conf");
    std::fs::write(
        &conf,
        "[options]\n UseSyslog\n[openSSH]\n sequence = 1,5\n[closeSSH]\n sequence = 5,1\n",
    )
    .unwrap();
    let script = format!(
        "source {dir}/knock.bash; COMP_WORDS=(knock -c {conf} --door ''); COMP_CWORD=4; \
         _knock knock '' --door; echo \"doors: ${{COMPREPLY[*]}}\"; \
         source {dir}/knockd.bash; COMP_WORDS=(knockd -i ''); COMP_CWORD=2; \
         _knockd knockd '' -i; echo \"interfaces: ${{COMPREPLY[*]}}\"; \
         COMP_WORDS=(knockd --syslog-facility loc); COMP_CWORD=2; \
         _knockd knockd loc --syslog-facility; echo \"facilities: ${{COMPREPLY[*]}}\"",
        dir = dir.display(),
        conf = conf.display()
    );
    let output = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()
        .expect("bash");
    let _ = std::fs::remove_dir_all(&dir);
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(out.contains("doors: openSSH closeSSH\n"), "{out}");
    let interfaces = out
        .lines()
        .find(|l| l.starts_with("interfaces:"))
        .unwrap_or_default();
    assert!(
        interfaces.contains(" lo") && interfaces.contains(" any"),
        "{out}"
    );
    assert!(
        out.contains("facilities: local0 local1 local2 local3 local4 local5 local6 local7\n"),
        "{out}"
    );
}
