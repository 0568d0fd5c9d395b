//! `tandem route` without the rest of the binary, for the router's offline tools
//! (shared/tools/route-eval, scripts/fit-router): it builds from the library alone, so scoring a
//! router change never rebuilds or replaces `target/*/tandem`, which other tests may be running.
//! usage: route [--config FILE] [ROUTE ARGS]   e.g. `route --batch --json < prompts.jsonl`

use clap::Parser;
use tandem::cli::RouteCmd;
use tandem::config::{self, LoadOptions};

#[derive(Parser)]
struct Args {
    /// Read settings from FILE instead of the user's config file
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    #[command(flatten)]
    route: RouteCmd,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let loaded = config::load(&LoadOptions {
        config_file: args.config,
        env: std::env::vars().collect(),
        ..LoadOptions::default()
    })?;
    tandem::commands::route::run(&args.route, &loaded.config)
}
