//! Subcommand handlers: each turns parsed CLI arguments and the resolved `Config` into output
//! on stdout and an exit status. Anything reusable lives in the library modules they call.

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
