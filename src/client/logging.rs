//! The client's stderr logger. It shares the terminal with the progress bars:
//! a line is printed with the bars hidden for a moment, so neither garbles the
//! other. (A logger is process-global by nature, hence the statics.)

use indicatif::{MultiProgress, ProgressDrawTarget};
use log::{Level, LevelFilter, Log, Metadata, Record};
use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

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
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let (s, ms) = (secs / 1000, secs % 1000);
        let level = match record.level() {
            Level::Error => "error",
            Level::Warn => "warning",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        };
        let line = format!(
            "{:02}:{:02}:{:02}.{ms:03} {level}: {}",
            (s / 3600) % 24,
            (s / 60) % 60,
            s % 60,
            record.args()
        );
        bars().suspend(|| {
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        });
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}
