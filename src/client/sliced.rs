//! Blocking writes cut into slices of bounded time, so a send that cannot
//! go on (a slow or silent link) hands control back between slices: the
//! client beats its heartbeat, tells `status` it waits for the server, and
//! applies the liveness rule ([`crate::client::schedule::liveness`]) while
//! it waits, instead of sitting in one `write` for a minute.
//!
//! The socket's `SO_SNDTIMEO` is [`SEND_SLICE`]: a `write` returns what it
//! wrote when the slice ends part-way, or EAGAIN when it wrote nothing.
//! A blocking socket with a timeout rather than a non-blocking loop: the
//! kernel still wakes the writer the moment room frees, and the TLS writer
//! keeps its simple "encrypt, then write it all" shape.

use std::io::{self, Write};
use std::time::Duration;

/// The longest a single `write` blocks before the caller looks around.
/// Well under the heartbeat's period (2 s), so a blocked send beats on time.
pub const SEND_SLICE: Duration = Duration::from_millis(500);

/// What a sliced write reports as it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendEvent {
    /// The kernel took this many more bytes.
    Wrote(usize),
    /// A slice ended with nothing taken: the send queue is full.
    Blocked,
}

/// Why a sliced write stopped.
#[derive(Debug)]
pub enum Sliced<E> {
    /// The socket failed.
    Io(io::Error),
    /// The caller's `on` said to stop (the connection is given up).
    Stopped(E),
}

/// Writes all of `data` to `out`, telling `on` of each step; `on` may stop
/// the write by returning an error. A slice that ends with nothing written
/// (`WouldBlock`/`TimedOut` from `SO_SNDTIMEO`) is [`SendEvent::Blocked`],
/// never an error by itself.
///
/// # Errors
/// [`Sliced::Io`] for a failed write (not a slice's end), a zero-length
/// write included; [`Sliced::Stopped`] with what `on` returned.
pub fn write_sliced<W: Write + ?Sized, E>(
    out: &mut W,
    data: &[u8],
    on: &mut dyn FnMut(SendEvent) -> Result<(), E>,
) -> Result<(), Sliced<E>> {
    let mut at = 0;
    while at < data.len() {
        match out.write(&data[at..]) {
            Ok(0) => return Err(Sliced::Io(io::ErrorKind::WriteZero.into())),
            Ok(n) => {
                at += n;
                on(SendEvent::Wrote(n)).map_err(Sliced::Stopped)?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                on(SendEvent::Blocked).map_err(Sliced::Stopped)?;
            }
            Err(e) => return Err(Sliced::Io(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `step` bytes per call and blocks (EAGAIN)
    /// on every `blocked_every`th call (never when 0).
    struct Choppy {
        got: Vec<u8>,
        step: usize,
        calls: usize,
        blocked_every: usize,
    }

    impl Write for Choppy {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.calls += 1;
            if self.blocked_every > 0 && self.calls.is_multiple_of(self.blocked_every) {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.step);
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Whatever the split and however often a slice ends empty, every byte
    /// arrives once, in order, and the events add up to the data.
    #[test]
    fn every_byte_arrives_whatever_the_slices() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(19);
        for _ in 0..500 {
            let len = rng.random_range(0..5000);
            let data: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            let mut out = Choppy {
                got: Vec::new(),
                step: rng.random_range(1..700),
                calls: 0,
                blocked_every: [0, 2, 3, 5][rng.random_range(0..4)],
            };
            let (mut wrote, mut blocked) = (0usize, 0usize);
            let r: Result<(), Sliced<()>> = write_sliced(&mut out, &data, &mut |ev| {
                match ev {
                    SendEvent::Wrote(n) => wrote += n,
                    SendEvent::Blocked => blocked += 1,
                }
                Ok(())
            });
            assert!(r.is_ok());
            assert_eq!(out.got, data);
            assert_eq!(wrote, data.len());
            if out.blocked_every == 0 {
                assert_eq!(blocked, 0);
            }
        }
    }

    /// The caller stops a blocked write: the error is its own, and nothing
    /// more is written.
    #[test]
    fn the_caller_stops_a_blocked_write() {
        let mut out = Choppy {
            got: Vec::new(),
            step: 10,
            calls: 0,
            blocked_every: 2,
        };
        let mut blocked = 0;
        let r = write_sliced(&mut out, &[7u8; 100], &mut |ev| {
            if ev == SendEvent::Blocked {
                blocked += 1;
                if blocked == 3 {
                    return Err("given up");
                }
            }
            Ok(())
        });
        assert!(matches!(r, Err(Sliced::Stopped("given up"))));
        assert_eq!(
            out.got.len(),
            30,
            "three slices written, then three blocked"
        );
    }
}
