//! Project chores for the knock workspace.
//!
//! Today one chore: the man pages (`packaging/man/`) and shell completions
//! (`packaging/completions/`) of `knockd` and `knock`, generated from their clap definitions
//! so that they never drift from `--help`. The generated files are committed (packagers take
//! them as they are); the test `tests/up_to_date.rs` fails when they are stale.
//!
//! ```no_run
//! // Regenerate everything under the workspace root (what `cargo run -p xtask -- gen` does).
//! let written = xtask::write_all(&xtask::workspace_root())?;
//! assert!(!written.is_empty());
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! It does not install anything: packagers copy the files (see the README's "Install").

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

/// One generated file: where it goes (relative to the workspace root) and its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generated {
    /// Path relative to the workspace root, e.g. `packaging/man/knock.1`.
    pub path: PathBuf,
    /// The exact file contents.
    pub contents: Vec<u8>,
}

/// The shells we ship completions for, and the file name each expects for program `bin`.
const SHELLS: [(Shell, &str); 3] = [
    (Shell::Bash, "{}.bash"),
    (Shell::Zsh, "_{}"),
    (Shell::Fish, "{}.fish"),
];

/// The workspace root (the parent of this crate's directory).
#[must_use]
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// The programs whose documentation we generate: (command, man section).
fn programs() -> Vec<(clap::Command, &'static str)> {
    vec![
        (knockd::cli_command(), "8"),
        (knock::cli::Cli::command(), "1"),
    ]
}

/// Renders every man page and completion script in memory.
///
/// # Errors
///
/// Only if rendering into memory fails (it does not in practice).
pub fn render_all() -> io::Result<Vec<Generated>> {
    let mut files = Vec::new();
    for (command, section) in programs() {
        let name = command.get_name().to_owned();
        let mut page = Vec::new();
        clap_mangen::Man::new(command.clone())
            .section(section)
            .render(&mut page)?;
        files.push(Generated {
            path: PathBuf::from(format!("packaging/man/{name}.{section}")),
            contents: page,
        });
        for (shell, pattern) in SHELLS {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command.clone(), name.clone(), &mut script);
            files.push(Generated {
                path: PathBuf::from("packaging/completions").join(pattern.replace("{}", &name)),
                contents: script,
            });
        }
    }
    Ok(files)
}

/// Writes every generated file under `root`, creating directories; returns the paths written.
///
/// # Errors
///
/// When a directory or file cannot be written.
pub fn write_all(root: &Path) -> io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for file in render_all()? {
        let target = root.join(&file.path);
        if let Some(dir) = target.parent() {
            fs::create_dir_all(dir)?;
        }
        fs::write(&target, &file.contents)?;
        written.push(target);
    }
    Ok(written)
}

/// The generated files whose committed copy under `root` is missing or differs.
///
/// # Errors
///
/// Only if rendering fails; an unreadable file counts as stale.
pub fn stale_files(root: &Path) -> io::Result<Vec<PathBuf>> {
    Ok(render_all()?
        .into_iter()
        .filter(|file| fs::read(root.join(&file.path)).ok().as_deref() != Some(&file.contents[..]))
        .map(|file| file.path)
        .collect())
}
