//! What one connection knows of the server's signs of life and of what it
//! waits for: the instants [`crate::client::schedule::liveness::judge`]
//! reads, kept by the connection itself so that the same rule runs in the
//! session's loop and inside a send or a wait that keeps the loop from
//! turning ([`crate::client::sliced`]). There the watch also beats the
//! heartbeat (waiting on the network is not being hung) and tells `status`
//! that the client waits for the server.

use super::schedule::liveness::{self, Liveness, Waits};
use super::sliced::SendEvent;
use super::status::heartbeat::Heartbeat;
use crate::client::error::ClientError;
use std::collections::HashMap;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// While a send goes on, the kernel's unsent count is looked at no more
/// often than this (one `ioctl`), unless the send is blocked.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// "Waiting for the server" is written to the status file from inside a
/// blocked send at most this often.
const NOTE_EVERY: Duration = Duration::from_secs(1);

/// Tells `status` the client waits for the server (the line to show),
/// from where the session loop cannot: inside a blocked send.
pub type WaitNote = super::pace::Note;

/// The log line of a connection the kernel gave up (ETIMEDOUT: its
/// retransmissions or window probes went unanswered), said in the
/// client's words, never the OS's text. With a host that drops its own
/// packets (a full or blocking queue on this machine's interface) the
/// kernel gives up after `net.ipv4.tcp_retries2` probes 0.5 s apart (about
/// 8 s), sooner than [`liveness::judge`] would; a silent path elsewhere
/// keeps it waiting for many minutes, and the rule decides.
pub fn kernel_gave_up(silent: Duration) -> String {
    format!(
        "no answer from the server for {} s, and this computer's network stack gave the connection up (nothing sent was acknowledged)",
        silent.as_secs()
    )
}

/// The watch of one connection.
pub struct LinkWatch {
    /// A handle on the socket, for its unsent count.
    sock: TcpStream,
    /// When the connection was made: `heard_ms` counts from it.
    born: Instant,
    /// Milliseconds from `born` to the last byte the reader thread read.
    heard_ms: Arc<AtomicU64>,
    /// Frames read and not taken by the session yet: a busy session is
    /// not a silent server.
    waiting_frames: crossbeam_channel::Receiver<super::connection::Inbound>,
    /// When the session last took a frame (the end of handling it).
    frame_at: Instant,
    /// Pings sent and not answered, with when each went.
    pings: HashMap<u32, Instant>,
    /// Since when a reply is awaited (pushes in flight, a pull or its
    /// fetches), as the session last said.
    request: Option<Instant>,
    /// Bytes of uploads awaiting their answers.
    checking: u64,
    /// Bytes the kernel took on this socket so far.
    written: u64,
    /// At the last look: the unsent count, and bytes acknowledged.
    unsent_seen: u32,
    acked_seen: u64,
    looked_at: Instant,
    /// When the server's host last acknowledged a backlog of this side's
    /// bytes (a slow uplink draining is a sign of life).
    acked_at: Instant,
    /// Since when bytes sit unacknowledged (none: the queue is empty).
    backlog: Option<Instant>,
    heart: Option<Heartbeat>,
    note: Option<WaitNote>,
    noted_at: Option<Instant>,
    /// The run's stop request (SIGTERM, Ctrl-C), honoured between slices.
    stop: Option<Arc<AtomicBool>>,
}

impl std::fmt::Debug for LinkWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkWatch")
            .field("pings", &self.pings.len())
            .field("request", &self.request)
            .field("backlog", &self.backlog)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl LinkWatch {
    /// A watch of the connection on `sock`, made at `born`, whose reader
    /// notes its last byte in `heard_ms` and hands frames over `frames`.
    pub fn new(
        sock: TcpStream,
        born: Instant,
        heard_ms: Arc<AtomicU64>,
        frames: crossbeam_channel::Receiver<super::connection::Inbound>,
    ) -> LinkWatch {
        LinkWatch {
            sock,
            born,
            heard_ms,
            waiting_frames: frames,
            frame_at: born,
            pings: HashMap::new(),
            request: None,
            checking: 0,
            written: 0,
            unsent_seen: 0,
            acked_seen: 0,
            looked_at: born,
            acked_at: born,
            backlog: None,
            heart: None,
            note: None,
            noted_at: None,
            stop: None,
        }
    }

    /// Beats `heart` while a send or a wait keeps the session loop from
    /// turning, tells `note` when the server has been silent for
    /// [`liveness::ANSWER_WAIT`] meanwhile, and ends such a wait when
    /// `stop` is set (outside tester breaker19 G6: a SIGTERM during an
    /// upload blocked on a dead link was noticed only ~59 s later, when
    /// the rule gave the connection up).
    pub fn attach(&mut self, heart: Heartbeat, note: WaitNote, stop: Arc<AtomicBool>) {
        self.heart = Some(heart);
        self.note = Some(note);
        self.stop = Some(stop);
    }

    /// The last sign of the server at `now`: its last byte, the end of the
    /// last frame the session took, or its host acknowledging a backlog;
    /// `now` while frames wait to be taken.
    pub fn heard(&self, now: Instant) -> Instant {
        if !self.waiting_frames.is_empty() {
            return now;
        }
        self.last_sign()
    }

    /// How long since the last sign of the server itself, at `now`.
    pub fn silent_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last_sign())
    }

    /// The last sign of the server itself: its last byte read, the last
    /// frame taken, its host acknowledging a backlog. Inside a blocked send
    /// frames waiting to be taken say nothing of now (they came before).
    fn last_sign(&self) -> Instant {
        let read = self.born + Duration::from_millis(self.heard_ms.load(Ordering::Relaxed));
        read.max(self.frame_at).max(self.acked_at)
    }

    /// The session took (and handled) a frame at `now`.
    pub fn frame_taken(&mut self, now: Instant) {
        self.frame_at = now;
    }

    /// A ping `id` went at `now`.
    pub fn ping_sent(&mut self, id: u32, now: Instant) {
        self.pings.insert(id, now);
    }

    /// The Pong of ping `id` came.
    pub fn pong(&mut self, id: u32) {
        self.pings.remove(&id);
    }

    /// What the session awaits at `now`: a reply (`awaiting`), and uploads
    /// of `checking` bytes sent and not answered yet.
    pub fn awaiting(&mut self, awaiting: bool, checking: u64, now: Instant) {
        self.request = match (awaiting, self.request) {
            (false, _) => None,
            (true, None) => Some(now),
            (true, since) => since,
        };
        self.checking = checking;
    }

    /// Bytes unacknowledged on the socket now (`SIOCOUTQ`).
    pub fn unsent(&self) -> u32 {
        crate::tcp_info::unsent_bytes(&self.sock)
    }

    /// Looks at the kernel's unsent count at `now`: bytes acknowledged
    /// out of a backlog are a sign of the server's host; bytes sitting
    /// unacknowledged are a probe waiting ([`Waits::backlog`]).
    pub fn look(&mut self, now: Instant) {
        let unsent = self.unsent();
        let acked = self.written.saturating_sub(u64::from(unsent));
        let progressed = acked > self.acked_seen && self.unsent_seen > 0;
        if progressed {
            self.acked_at = now;
        }
        self.backlog = match (unsent, progressed) {
            (0, _) => None,
            (_, true) => Some(now),
            (_, false) => self.backlog.or(Some(now)),
        };
        self.unsent_seen = unsent;
        self.acked_seen = self.acked_seen.max(acked);
        self.looked_at = now;
    }

    /// The rule's verdict at `now` ([`liveness::judge`]), as the session
    /// loop sees it (frames it has not taken yet are news of now).
    pub fn judge(&self, now: Instant) -> Liveness {
        self.judge_heard(self.heard(now), now)
    }

    fn judge_heard(&self, heard: Instant, now: Instant) -> Liveness {
        let waits = Waits {
            heard,
            ping: self.pings.values().min().copied(),
            backlog: self.backlog,
            request: self.request,
            checking: self.checking,
        };
        liveness::judge(&waits, now)
    }

    /// A step of a send ([`crate::client::sliced::write_sliced`]).
    ///
    /// # Errors
    /// [`ClientError::ConnectionLost`] with [`liveness::dead_line`] when
    /// the rule gives the connection up; [`ClientError::Stopping`] when a
    /// stop was asked for and a slice ended with nothing sent.
    pub fn on_send(&mut self, event: SendEvent) -> Result<(), ClientError> {
        match event {
            SendEvent::Wrote(n) => {
                self.written = self.written.saturating_add(n as u64);
                if self.looked_at.elapsed() < SAMPLE_EVERY {
                    return Ok(());
                }
                self.between_slices(false)
            }
            SendEvent::Blocked => self.between_slices(true),
        }
    }

    /// Between two slices of a send or a wait that keeps the session loop
    /// from turning: beats, looks at the socket, applies the rule, and
    /// (`blocked`) tells `status` when the server has been silent long.
    ///
    /// # Errors
    /// As [`LinkWatch::on_send`]; [`ClientError::Stopping`] when a stop
    /// was asked for and the step is `blocked`.
    pub fn between_slices(&mut self, blocked: bool) -> Result<(), ClientError> {
        if let Some(heart) = &self.heart {
            // Waiting on the network, and watching it: not hung.
            heart.beat_if_due();
        }
        // A send that advances is finished first (README: a stop finishes
        // the file being transferred); one the link takes nothing of, or
        // a wait for an answer, ends at once.
        if blocked && self.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst)) {
            return Err(ClientError::Stopping(
                "waiting for the server (a send the link does not take, or an answer)".into(),
            ));
        }
        let now = Instant::now();
        self.look(now);
        match self.judge_heard(self.last_sign(), now) {
            Liveness::Dead(silent) => Err(ClientError::ConnectionLost(liveness::dead_line(silent))),
            Liveness::Waiting(waited) if blocked => {
                let due = self
                    .noted_at
                    .is_none_or(|t| now.saturating_duration_since(t) >= NOTE_EVERY);
                if let (true, Some(note)) = (due, self.note.as_mut()) {
                    self.noted_at = Some(now);
                    note(liveness::waiting_line(waited));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::connection::Inbound;
    use crate::client::schedule::DEAD_AFTER;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// Bytes that sit unacknowledged (a peer that reads nothing) are a
    /// probe that ends the connection after [`DEAD_AFTER`]; once the peer
    /// takes some, the drain is a sign of life and the wait starts again.
    #[test]
    fn a_backlog_that_sits_is_a_probe_and_one_that_drains_is_heard() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut out = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (mut peer, _) = listener.accept().expect("accept");
        let born = Instant::now();
        let (_tx, rx) = crossbeam_channel::unbounded::<Inbound>();
        let heard = Arc::new(AtomicU64::new(0));
        let mut watch = LinkWatch::new(out.try_clone().expect("clone"), born, heard, rx);
        out.set_nonblocking(true).expect("nonblocking");
        let chunk = vec![7u8; 64 * 1024];
        let mut written = 0usize;
        for _ in 0..10_000 {
            match out.write(&chunk) {
                Ok(n) => {
                    written += n;
                    let _ = watch.on_send(SendEvent::Wrote(n));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(written > 0);
        let t1 = Instant::now();
        watch.look(t1);
        watch.look(t1 + Duration::from_secs(1));
        assert!(watch.unsent() > 0, "the peer read nothing");
        assert!(
            watch.backlog.is_some_and(|b| b <= t1),
            "the backlog waits since first seen"
        );
        let silent = watch.last_sign();
        assert!(silent <= t1);
        assert!(matches!(watch.judge(t1 + DEAD_AFTER), Liveness::Dead(_)));
        // The peer takes a megabyte: the kernel acknowledges, the watch hears.
        let mut sink = vec![0u8; 1 << 20];
        let mut took = 0;
        while took < sink.len() {
            took += peer.read(&mut sink[took..]).expect("read");
        }
        let before = watch.unsent();
        let deadline = Instant::now() + Duration::from_secs(5);
        while watch.unsent() >= before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let t2 = t1 + Duration::from_secs(30);
        watch.look(t2);
        assert_eq!(watch.last_sign(), t2, "the drain is a sign of the server");
        assert_eq!(watch.judge(t2 + Duration::from_secs(1)), Liveness::Alive);
        assert!(matches!(watch.judge(t2 + DEAD_AFTER), Liveness::Dead(_)));
    }
}
