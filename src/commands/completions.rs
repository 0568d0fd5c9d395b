//! `tandem completions SHELL`: scripts generated from `cli.rs`, also checked in under
//! `completions/` (a test fails when those go stale).

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;

/// The checked-in file name for each shell.
pub const FILES: &[(Shell, &str)] = &[
    (Shell::Bash, "tandem.bash"),
    (Shell::Zsh, "_tandem"),
    (Shell::Fish, "tandem.fish"),
    (Shell::Elvish, "tandem.elv"),
    (Shell::PowerShell, "_tandem.ps1"),
];

pub fn generate(shell: Shell) -> Vec<u8> {
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "tandem", &mut buf);
    buf
}

pub fn print(shell: Shell) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(&generate(shell));
}
