//! Structured logs: one JSON object a line (time, level, message, fields), Loki-friendly.
//! The level comes from `ZLH_LOG` (`info` by default, any `tracing` filter works).

use tracing_subscriber::EnvFilter;

/// Where log lines go.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LogTo {
    Stdout,
    Stderr,
}

pub(crate) fn init(to: LogTo) {
    let filter = EnvFilter::try_from_env("ZLH_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_env_filter(filter);
    match to {
        LogTo::Stdout => builder.with_writer(std::io::stdout).init(),
        LogTo::Stderr => builder.with_writer(std::io::stderr).init(),
    }
}
