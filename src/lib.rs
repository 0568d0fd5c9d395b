//! tandem: the module list only.

pub mod attach;
pub mod backend;
pub mod chat;
pub mod cli;
pub mod commands;
pub mod config;
pub mod context;
pub mod editor;
pub mod logging;
pub mod models;
pub mod print;
pub mod roles;
pub mod router;
pub mod sanitize;
pub mod secrets;
pub mod serve;
pub mod session;
pub mod tiers;
pub mod tui;
pub mod turn;
