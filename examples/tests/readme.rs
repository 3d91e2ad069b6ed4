//! The README's embedding example is `examples/readme_embedding.rs` (which CI builds and
//! runs): the two must not drift apart.

#[test]
fn readme_embedding_example_is_the_example_file() {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("```rust\n")
        .expect("a rust block in the README")
        + "```rust\n".len();
    let block = &readme[start..];
    let block = &block[..block.find("```\n").expect("the block ends")];
    let example = include_str!("../examples/readme_embedding.rs");
    let body: String = example
        .lines()
        .skip_while(|line| line.starts_with("//!") || line.is_empty())
        .map(|line| format!("{line}\n"))
        .collect();
    assert_eq!(block, body);
}

#[test]
fn readme_embedding_example_runs() {
    let status = std::process::Command::new(env!("CARGO"))
        .args([
            "run",
            "-q",
            "-p",
            "knock-examples",
            "--example",
            "readme_embedding",
        ])
        .output()
        .expect("cargo runs");
    assert!(status.status.success(), "{status:?}");
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(
        stdout.contains("10.0.0.1: openSSH: OPEN SESAME\n"),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("10.0.0.1: openSSH: command timeout\n"),
        "{stdout}"
    );
}
