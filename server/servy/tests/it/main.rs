//! One integration binary, files named by behaviour. Every test starts the real `servy`
//! binary with sockets passed the way systemd passes them, waits for `READY=1` on a
//! notify socket the test owns, and speaks HTTP to it.

mod support;

mod acme;
mod assets;
mod conditional;
mod config;
mod connections;
mod encoding;
mod headers;
mod host;
mod http2;
mod http3;
mod https;
mod logging;
mod metrics;
mod paths;
mod range;
mod robustness;
mod short_links;
mod shutdown;
mod site_rules;
mod slow_clients;
mod systemd;
mod zero_copy;
