//! `connectionLog.txt`: one line per request, written by flexi_logger's
//! asynchronous file writer so the reactor never waits on the disk.
//!
//! ```text
//! 2026-11-26T10:12:33.123Z peer=127.0.0.1:40312 user=9f1c…7a client=2 request=push-file outcome=ok detail="docs/a.txt v5"
//! ```
//! Fields are `key=value`, separated by one space, always in this order;
//! `user` and `client` are `-` when not known yet; `detail` is a quoted string
//! with `"` and `\` escaped by `\`.

use super::data_dir::{create_log, CONN_LOG};
use super::metrics::metrics;
use crate::protocol::{ClientId, UserId};
use flexi_logger::writers::{FileLogWriter, LogWriter};
use flexi_logger::{DeferredNow, FileSpec, FlexiLoggerError, WriteMode};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

/// Where request outcomes are recorded. Cheap to clone; shared by the reactor
/// and every actor.
#[derive(Clone)]
pub struct ConnLog {
    writer: Option<Arc<FileLogWriter>>,
    /// `DIR/connectionLog.txt`, reopened by name on SIGHUP.
    path: Option<PathBuf>,
}

/// Why [`ConnLog::reopen`] failed; the writer keeps the file it had.
#[derive(Debug)]
pub enum ReopenError {
    /// Making the new file (0600) failed.
    Create(PathBuf, std::io::Error),
    /// flexi_logger could not switch to it.
    Writer(FlexiLoggerError),
}

impl std::fmt::Display for ReopenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReopenError::Create(p, e) => {
                write!(
                    f,
                    "cannot reopen {}: {e}; still writing to the old file",
                    p.display()
                )
            }
            ReopenError::Writer(e) => {
                write!(
                    f,
                    "cannot reopen the connection log: {e}; still writing to the old file"
                )
            }
        }
    }
}

impl std::error::Error for ReopenError {}

/// [`ConnLog::downgrade`]'s handle: reopens the file while the log lives.
pub struct WeakConnLog {
    writer: Option<Weak<FileLogWriter>>,
    path: Option<PathBuf>,
}

impl WeakConnLog {
    /// Reopens `connectionLog.txt` by name, after a rotation renamed it
    /// (SIGHUP, [`super::hangup`]): made with mode 0600 when absent, or
    /// appended to when a rotation tool already made it. Each line goes
    /// whole to the old file or the new one: flexi_logger's writer thread
    /// and this call take the same lock, and the old file's buffer is
    /// written out when it is replaced, so none is lost. Does nothing once
    /// the log is closed.
    ///
    /// # Errors
    /// [`ReopenError`]; the log then goes on in the file it had.
    pub fn reopen(&self) -> Result<(), ReopenError> {
        let (Some(writer), Some(path)) = (self.writer.as_ref().and_then(Weak::upgrade), &self.path)
        else {
            return Ok(());
        };
        create_log(path).map_err(|e| ReopenError::Create(path.clone(), e))?;
        writer.reopen_outputfile().map_err(ReopenError::Writer)
    }
}

/// One request's outcome.
pub struct ConnEvent<'a> {
    /// The peer.
    pub peer: SocketAddr,
    /// The user, once known.
    pub user: Option<UserId>,
    /// The client, once known.
    pub client: Option<ClientId>,
    /// Request type: one of [`super::metrics::REQUESTS`] (`push-file`,
    /// `frame` for a bad frame, `tls` for a TLS failure, `connect` for a
    /// connection refused at the limit, …; README "connectionLog.txt").
    pub request: &'a str,
    /// `Ok(detail)` or `Err(error text)`.
    pub outcome: Result<&'a str, &'a str>,
}

impl ConnLog {
    /// Opens `dir/connectionLog.txt` for appending.
    ///
    /// # Errors
    /// flexi_logger could not open the file.
    pub fn open(dir: &Path) -> Result<ConnLog, FlexiLoggerError> {
        let path = dir.join(CONN_LOG);
        let spec = FileSpec::try_from(&path)?;
        let writer = FileLogWriter::builder(spec)
            .append()
            .format(line_format)
            .write_mode(WriteMode::Async)
            .try_build()?;
        Ok(ConnLog {
            writer: Some(Arc::new(writer)),
            path: Some(path),
        })
    }

    /// A log that drops everything (for unit tests).
    pub fn disabled() -> ConnLog {
        ConnLog {
            writer: None,
            path: None,
        }
    }

    /// A handle for the SIGHUP thread that does not keep the writer
    /// alive: the log is flushed and its writer thread joined when the last
    /// [`ConnLog`] goes, at the end of [`super::run`].
    pub fn downgrade(&self) -> WeakConnLog {
        WeakConnLog {
            writer: self.writer.as_ref().map(Arc::downgrade),
            path: self.path.clone(),
        }
    }

    /// Records one event (and counts it in the metrics).
    pub fn record(&self, event: &ConnEvent<'_>) {
        metrics().request(event.request, event.outcome.is_ok());
        let Some(writer) = &self.writer else {
            return;
        };
        let line = format_event(event);
        let args = format_args!("{line}");
        let record = log::Record::builder()
            .args(args)
            .level(log::Level::Info)
            .target("conn")
            .build();
        if let Err(e) = writer.write(&mut DeferredNow::new(), &record) {
            log::warn!("cannot write the connection log: {e}");
        }
    }

    /// Asks the writer thread to write out everything queued; returns at
    /// once (the writer is asynchronous: see [`ConnLog::close`]).
    pub fn flush(&self) {
        if let Some(writer) = &self.writer {
            let _ = writer.flush();
        }
    }

    /// Writes every line recorded so far to the file and stops the writer
    /// thread, waiting for it: the server's last act before it exits
    /// ([`super::run`]). A clone held elsewhere (an actor thread still
    /// unwinding) no longer decides when the queue is written: before,
    /// the last handle's drop did, on whichever thread let it go, racing
    /// the process's exit, and the lines still queued or buffered (up to
    /// a second of them) could be lost. Lines recorded after this are
    /// dropped.
    pub fn close(&self) {
        if let Some(writer) = &self.writer {
            writer.shutdown();
        }
    }
}

fn line_format(
    w: &mut dyn std::io::Write,
    now: &mut DeferredNow,
    record: &log::Record<'_>,
) -> std::io::Result<()> {
    write!(
        w,
        "{} {}",
        now.now_utc_owned().format("%Y-%m-%dT%H:%M:%S%.3fZ"),
        record.args()
    )
}

/// The line after the timestamp.
pub fn format_event(event: &ConnEvent<'_>) -> String {
    let mut line = format!("peer={} user=", event.peer);
    match event.user {
        Some(u) => {
            let _ = write!(line, "{u}");
        }
        None => line.push('-'),
    }
    line.push_str(" client=");
    match event.client {
        Some(c) => {
            let _ = write!(line, "{c}");
        }
        None => line.push('-'),
    }
    let (outcome, detail) = match event.outcome {
        Ok(d) => ("ok", d),
        Err(e) => ("error", e),
    };
    let _ = write!(
        line,
        " request={} outcome={} detail=\"",
        event.request, outcome
    );
    for ch in detail.chars() {
        match ch {
            '"' | '\\' => {
                line.push('\\');
                line.push(ch);
            }
            '\n' | '\r' => line.push(' '),
            c => line.push(c),
        }
    }
    line.push('"');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server's end: every line recorded is in the file when `close`
    /// returns, although another handle (an actor thread's) still lives.
    /// With `flush` there (what the server did before), the lines are
    /// still queued or buffered in the writer thread at that moment.
    #[test]
    fn close_writes_every_recorded_line_while_another_handle_lives() {
        let dir = tempfile::tempdir().expect("dir");
        let log = ConnLog::open(dir.path()).expect("open");
        let held = log.clone();
        let writer = std::thread::spawn(move || {
            for i in 0..500 {
                let detail = format!("f{i}");
                held.record(&ConnEvent {
                    peer: "127.0.0.1:4000".parse().expect("addr"),
                    user: None,
                    client: Some(1),
                    request: "push-file",
                    outcome: Ok(&detail),
                });
            }
            held
        });
        let held = writer.join().expect("thread");
        log.close();
        let text = std::fs::read_to_string(dir.path().join(CONN_LOG)).expect("log");
        assert_eq!(text.lines().count(), 500);
        assert!(text
            .lines()
            .last()
            .is_some_and(|l| l.ends_with("detail=\"f499\"")));
        drop(held);
    }

    #[test]
    fn line_shape() {
        let event = ConnEvent {
            peer: "127.0.0.1:4000".parse().unwrap(),
            user: None,
            client: Some(3),
            request: "pull",
            outcome: Err("bad \"x\"\n"),
        };
        assert_eq!(
            format_event(&event),
            "peer=127.0.0.1:4000 user=- client=3 request=pull outcome=error detail=\"bad \\\"x\\\" \""
        );
    }
}
