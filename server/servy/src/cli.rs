//! The command line, and the only file that knows about clap: the rest of servy sees
//! [`Args`] as plain data.

use std::path::PathBuf;

use clap::Parser;

/// What the command line asks for.
#[derive(Debug)]
pub struct Args {
    pub config: Option<PathBuf>,
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Serve until SIGTERM.
    Serve,
    /// Validate the configuration and exit.
    Check,
    /// Print every embedded path, one per line.
    ListAssets,
}

/// A small, fast web server for a personal site: embedded assets, short-link
/// redirects, Prometheus metrics, systemd-native.
#[derive(Parser, Debug)]
#[command(name = "servy", version, about)]
struct Cli {
    /// TOML configuration file; without it, defaults plus SERVY_* environment variables.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Validate the configuration, print the reason if it is invalid, and exit
    /// (0 if valid, 78 if not).
    #[arg(long, conflicts_with = "list_assets")]
    check: bool,
    /// Print every embedded asset path, one per line, and exit.
    #[arg(long)]
    list_assets: bool,
}

/// Parses the process arguments; `--help`, `--version` and usage errors exit here
/// (clap's exit code 2 for usage errors).
pub fn parse() -> Args {
    let cli = Cli::parse();
    let command = if cli.check {
        Command::Check
    } else if cli.list_assets {
        Command::ListAssets
    } else {
        Command::Serve
    };
    Args {
        config: cli.config,
        command,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
