//! Feedback on transfers: indicatif bars on a terminal for big ones (the first
//! upload or download, large files), one summary log line otherwise.

use super::logging::bars;
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Instant;

/// Transfers at least this big get a bar.
const BAR_BYTES: u64 = 16 * 1024 * 1024;
/// Transfers of at least this many files get a bar.
const BAR_FILES: u64 = 200;

/// How chatty the client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// Errors only (-q).
    Quiet,
    /// Summaries and warnings.
    Normal,
    /// Every change sent and received (-v).
    Verbose,
}

/// One upload or download run (a plan's pushes, a pull's fetches).
#[derive(Debug)]
pub struct Transfer {
    label: &'static str,
    bar: Option<ProgressBar>,
    files_total: u64,
    files: u64,
    bytes: u64,
    started: Instant,
}

impl Transfer {
    /// Starts a transfer of `files` files and `bytes` bytes; `first` marks the
    /// first sync of a folder, which always gets a bar on a terminal.
    pub fn start(
        label: &'static str,
        files: u64,
        bytes: u64,
        first: bool,
        verbosity: Verbosity,
    ) -> Transfer {
        let big = first || bytes >= BAR_BYTES || files >= BAR_FILES;
        let bar =
            (big && files > 0 && verbosity != Verbosity::Quiet && std::io::stderr().is_terminal())
                .then(|| {
                    let bar = bars().add(ProgressBar::new(bytes));
                    let style = ProgressStyle::with_template(
                        "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
                    bar.set_style(style);
                    bar.set_prefix(label);
                    bar.set_message(format!("0/{files} files"));
                    bar
                });
        Transfer {
            label,
            bar,
            files_total: files,
            files: 0,
            bytes: 0,
            started: Instant::now(),
        }
    }

    /// `n` more bytes moved.
    pub fn add_bytes(&mut self, n: u64) {
        self.bytes += n;
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    /// One more file done.
    pub fn file_done(&mut self) {
        self.files += 1;
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{}/{} files", self.files, self.files_total));
        }
    }

    /// Ends the transfer with a summary line.
    pub fn finish(self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
            bars().remove(bar);
        }
        if self.files > 0 {
            let secs = self.started.elapsed().as_secs_f64();
            log::info!(
                "{}: {} files, {} in {secs:.1} s",
                self.label,
                self.files,
                HumanBytes(self.bytes)
            );
        }
    }
}
