//! servy: the startup story on one screen.
//!
//! cli → config → logging → listeners → state → redirects' first load → READY
//! → serve both listeners → drain on SIGTERM → exit code.

mod cli;
mod config;
mod listeners;
mod logging;
mod metrics;
mod not_found;
mod path;
mod redirects;
mod router;
mod signals;
mod site;
mod systemd;

fn main() {
    // TODO(runtime)
}
