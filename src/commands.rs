//! Subcommand handlers: each turns parsed CLI arguments and the resolved `Config` into output
//! on stdout and an exit status. Anything reusable lives in the library modules they call.

/// `println!` for command output, returning the write's error instead of panicking: a reader
/// that quits early (`tandem models list | grep -q NAME`) ends the command quietly (main sees the
/// broken pipe). Declared before the modules, so it is in scope in each of them.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

pub mod auth;
pub mod completions;
pub mod config_cmd;
pub mod doctor;
pub mod history;
pub mod models;
pub mod roles;
pub mod route;
pub mod route_stats;
pub mod stats;
