//! The client's stderr logger. It shares the terminal with the progress bars:
//! a line is printed with the bars hidden for a moment, so neither garbles the
//! other. (A logger is process-global by nature, hence the statics.)

use chrono::{DateTime, Utc};
use indicatif::{MultiProgress, ProgressDrawTarget};
use log::{Level, LevelFilter, Log, Metadata, Record};
use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

static LOGGER: StderrLogger = StderrLogger;
static BARS: OnceLock<MultiProgress> = OnceLock::new();

/// The progress-bar area every bar is added to (hidden when stderr is not a terminal).
pub fn bars() -> &'static MultiProgress {
    BARS.get_or_init(|| {
        if std::io::stderr().is_terminal() {
            MultiProgress::with_draw_target(ProgressDrawTarget::stderr())
        } else {
            MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
        }
    })
}

/// Installs the logger at `level` (Error for -q, Info by default, Debug for -v).
///
/// # Errors
/// When another logger is already installed.
pub fn init(level: LevelFilter) -> Result<(), log::SetLoggerError> {
    log::set_logger(&LOGGER)?;
    log::set_max_level(level);
    Ok(())
}

struct StderrLogger;

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
            && (metadata.target().starts_with("cloudservice")
                || metadata.target().starts_with("cloud_client"))
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format_line(chrono::Utc::now(), record.level(), record.args());
        bars().suspend(|| {
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        });
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

/// One log line: `HH:MM:SS.mmm level: message`, the UTC time of day with
/// milliseconds (truncated), then `error`, `warning`, `info`, `debug` or `trace`.
fn format_line(now: DateTime<Utc>, level: Level, args: &std::fmt::Arguments<'_>) -> String {
    let level = match level {
        Level::Error => "error",
        Level::Warn => "warning",
        Level::Info => "info",
        Level::Debug => "debug",
        Level::Trace => "trace",
    };
    // A file name in the message must not forge a line or drive the
    // terminal (printable.rs).
    let message = args.to_string();
    let message = crate::client::printable::escape_controls(&message);
    format!("{} {level}: {message}", now.format("%H:%M:%S%.3f"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_the_time_of_day_in_milliseconds_then_level_and_message() {
        let at = |secs, nanos| DateTime::from_timestamp(secs, nanos).unwrap();
        // 2026-11-26 10:12:33 UTC.
        let line = format_line(
            at(1_795_687_953, 7_000_000),
            Level::Info,
            &format_args!("hi"),
        );
        assert_eq!(line, "10:12:33.007 info: hi");
        let line = format_line(
            at(86_399, 999_999_999),
            Level::Warn,
            &format_args!("x {}", 1),
        );
        assert_eq!(line, "23:59:59.999 warning: x 1");
        let line = format_line(at(0, 0), Level::Error, &format_args!(""));
        assert_eq!(line, "00:00:00.000 error: ");
        // A name with a newline or an escape sequence stays on its line.
        let line = format_line(
            at(0, 0),
            Level::Warn,
            &format_args!("skipping {}: why", "a\nb\u{1b}[31m"),
        );
        assert_eq!(line, "00:00:00.000 warning: skipping a\\nb\\u{1b}[31m: why");
    }
}
