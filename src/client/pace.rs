//! The waits of a connection attempt (the TCP connect, the TLS handshake,
//! the Hello's answer) cut into slices of [`SLICE`], as sends are
//! ([`crate::client::sliced`]): between two slices the heartbeat beats (a
//! client waiting for a server it is dialling is not hung: outside tester
//! breaker19 G3, `status` said "not responding" through every 15 s wait for
//! a server that accepts and never answers), a stop request (SIGTERM,
//! Ctrl-C) ends the wait at once (G6), and `status` is told that the client
//! is connecting and for how long. The give-up rule is unchanged: each step
//! still has its own limit (`CONNECT_TIMEOUT`, `HANDSHAKE_TIMEOUT`).

use super::error::ClientError;
use super::status::heartbeat::Heartbeat;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest a connection attempt waits in one go before it beats,
/// looks at the stop request and tells `status`. The same as a send's
/// slice; well under the heartbeat's period (2 s).
pub const SLICE: Duration = super::sliced::SEND_SLICE;
/// `status` is told at most this often, the first time after this long.
const NOTE_EVERY: Duration = Duration::from_secs(1);

/// Writes a line into the status file as the client's pending work, from
/// where the session loop cannot (inside a wait that keeps it from turning).
pub type Note = Box<dyn FnMut(String)>;

/// The line `status` shows while a connection attempt waits, `waited`
/// into it ([`crate::client::status::CONNECTING_TO_SERVER`]).
pub fn connecting_line(waited: Duration) -> String {
    format!(
        "{} {} s",
        crate::client::status::CONNECTING_TO_SERVER,
        waited.as_secs()
    )
}

/// What a wait does between its slices. Made per connection attempt.
#[derive(Default)]
pub struct Pace {
    heart: Option<Heartbeat>,
    stop: Option<Arc<AtomicBool>>,
    note: Option<Note>,
    started: Option<Instant>,
    noted_at: Option<Instant>,
}

impl std::fmt::Debug for Pace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pace")
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

impl Pace {
    /// A pace that beats `heart`, honours `stop` and tells `note` (each
    /// optional: a one-off command has no heartbeat nor status file).
    pub fn new(
        heart: Option<Heartbeat>,
        stop: Option<Arc<AtomicBool>>,
        note: Option<Note>,
    ) -> Pace {
        Pace {
            heart,
            stop,
            note,
            started: None,
            noted_at: None,
        }
    }

    /// Whether a stop was asked for.
    pub fn stop_asked(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst))
    }

    /// Between two slices of a wait (`what`: the step, for the stop's
    /// line): beats, tells `status` how long the attempt has waited.
    ///
    /// # Errors
    /// [`ClientError::Stopping`] when a stop was asked for.
    pub fn slice(&mut self, what: &str) -> Result<(), ClientError> {
        let now = Instant::now();
        let started = *self.started.get_or_insert(now);
        if let Some(heart) = &self.heart {
            heart.beat_if_due();
        }
        if self.stop_asked() {
            return Err(ClientError::Stopping(what.to_owned()));
        }
        let waited = now.saturating_duration_since(started);
        let due = waited >= NOTE_EVERY
            && self
                .noted_at
                .is_none_or(|t| now.saturating_duration_since(t) >= NOTE_EVERY);
        if let (true, Some(note)) = (due, self.note.as_mut()) {
            self.noted_at = Some(now);
            note(connecting_line(waited));
        }
        Ok(())
    }

    /// Marks the start of the attempt (the waits count from it).
    pub fn start(&mut self) {
        self.started = Some(Instant::now());
        self.noted_at = None;
    }
}

/// Runs `work` on a thread of its own and waits for its result in slices
/// of [`SLICE`] ([`Pace::slice`] between them): for a blocking call that
/// cannot be cut itself (a connect with its own timeout, which ends the
/// thread within that limit). A stop leaves the thread to end on its own.
///
/// # Errors
/// [`ClientError::Stopping`] when a stop was asked for meanwhile;
/// `ConnectionLost` when the thread could not be started or died.
pub fn on_thread<T: Send + 'static>(
    pace: &mut Pace,
    what: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ClientError> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::Builder::new()
        .name("cloud-client-dial".into())
        .spawn(move || {
            let _ = tx.send(work());
        })
        .map_err(|e| ClientError::ConnectionLost(format!("dial thread: {e}")))?;
    loop {
        match rx.recv_timeout(SLICE) {
            Ok(done) => return Ok(done),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => pace.slice(what)?,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                return Err(ClientError::ConnectionLost("dial thread ended".into()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// A wait that outlasts a few slices tells `status` (from 1 s on, at
    /// most once a second, with the time so far) and ends at once on a
    /// stop, with the step named.
    #[test]
    fn a_long_wait_is_noted_and_a_stop_ends_it() {
        let lines = Rc::new(RefCell::new(Vec::new()));
        let seen = Rc::clone(&lines);
        let stop = Arc::new(AtomicBool::new(false));
        let mut pace = Pace::new(
            None,
            Some(Arc::clone(&stop)),
            Some(Box::new(move |l| seen.borrow_mut().push(l))),
        );
        pace.start();
        let stopper = Arc::clone(&stop);
        let t0 = Instant::now();
        let r = on_thread(&mut pace, "connecting", move || {
            std::thread::sleep(Duration::from_millis(2600));
            stopper.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_secs(5));
        });
        let took = t0.elapsed();
        assert!(matches!(r, Err(ClientError::Stopping(ref w)) if w == "connecting"));
        assert!(
            took < Duration::from_millis(3500),
            "stopped within a slice: {took:?}"
        );
        let lines = lines.borrow();
        assert!((1..=3).contains(&lines.len()), "{lines:?}");
        assert!(lines
            .iter()
            .all(|l| l.starts_with(crate::client::status::CONNECTING_TO_SERVER)));
        assert!(lines[0].ends_with(" 1 s"), "{lines:?}");
    }

    /// A short attempt says nothing and returns what the work gave.
    #[test]
    fn a_quick_attempt_is_silent() {
        let noted = Rc::new(RefCell::new(0));
        let n = Rc::clone(&noted);
        let mut pace = Pace::new(None, None, Some(Box::new(move |_| *n.borrow_mut() += 1)));
        pace.start();
        assert_eq!(on_thread(&mut pace, "x", || 7).ok(), Some(7));
        assert_eq!(*noted.borrow(), 0);
    }
}
