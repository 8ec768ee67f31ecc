//! What SIGHUP (`systemctl reload`) does, on a thread of its own so the
//! reactor never touches the disk: re-reads the TLS certificate and key
//! (a server with `--insecure-plaintext` has none) and reopens
//! `connectionLog.txt` by name, so a log renamed by a rotation (logrotate's
//! `postrotate systemctl reload cloud-server`) is followed by a new one.

use super::conn_log::WeakConnLog;
use super::security::{self, Prepared};
use std::sync::Arc;

/// Starts the SIGHUP thread (`cloud-server-sighup`). It holds the log
/// weakly: the server's last handle going still flushes it at the end.
///
/// # Errors
/// The signal handler could not be installed or the thread started.
pub fn start(tls: Option<&Prepared>, log: WeakConnLog) -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])?;
    let cert = tls.map(|t| (Arc::clone(&t.slot), t.files.clone()));
    std::thread::Builder::new()
        .name("cloud-server-sighup".into())
        .spawn(move || {
            for _ in signals.forever() {
                if let Some((slot, files)) = &cert {
                    security::reload(slot, files);
                }
                match log.reopen() {
                    Ok(()) => log::info!("SIGHUP: reopened connectionLog.txt"),
                    Err(e) => log::error!("SIGHUP: {e}"),
                }
            }
        })?;
    Ok(())
}
