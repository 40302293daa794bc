//! `rlsim completions SHELL` and `rlsim man`: shell completion scripts and man pages generated from the clap
//! definition, so they never drift from `--help`.

use anyhow::{Context, Result};
use std::path::Path;

/// The completion script for `shell`, as text.
pub fn completion_script(cmd: &mut clap::Command, shell: clap_complete::aot::Shell) -> Result<String> {
    let mut buf = Vec::new();
    let name = cmd.get_name().to_string();
    clap_complete::aot::generate(shell, cmd, name, &mut buf);
    String::from_utf8(buf).context("the completion script is not UTF-8")
}

/// The top-level man page (`rlsim.1`), as roff text.
pub fn man_page(cmd: clap::Command) -> Result<String> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut buf).context("rendering the man page")?;
    String::from_utf8(buf).context("the man page is not UTF-8")
}

/// Writes `rlsim.1` and one page per command (`rlsim-run.1`, `rlsim-trace-import.1`, …) into `dir`, created if
/// needed. Returns the file names written, sorted.
pub fn write_man_pages(cmd: clap::Command, dir: &Path) -> Result<Vec<String>> {
    if dir.exists() && !dir.is_dir() {
        anyhow::bail!("--out {}: not a folder (the man pages are written into one)", dir.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(cmd, dir).with_context(|| format!("writing man pages to {}", dir.display()))?;
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.starts_with("rlsim") && n.ends_with(".1"))
        .collect();
    names.sort();
    Ok(names)
}
