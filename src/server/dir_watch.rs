//! A directory poller for the watcher threads (revocations, moves): the
//! reactor never touches the disk, so a thread of its own lists what the
//! operator's commands wrote under `.cloudservice-server/` every period,
//! compares it with the last listing, and sends the reactor one message per
//! difference, then wakes it. One listing per period, whatever the number
//! of users.

use super::bus::FromActor;
use crossbeam_channel::Sender;
use mio::Waker;
use std::sync::Arc;
use std::time::Duration;

/// Starts a thread named `name` that calls `list` every `every`, and for
/// each new listing sends what `changes(before, now)` returns (the first
/// listing is compared with `T::default()`, so what is already on disk is
/// reported first). A listing that fails is logged once (`what` says what
/// was being listed) until one succeeds again. The thread ends when the
/// reactor's inbox is gone.
///
/// # Errors
/// The thread could not be started.
pub fn start<T, L, C>(
    name: &str,
    what: &'static str,
    every: Duration,
    mut list: L,
    changes: C,
    out: Sender<FromActor>,
    waker: Arc<Waker>,
) -> std::io::Result<()>
where
    T: Default + Send + 'static,
    L: FnMut() -> std::io::Result<T> + Send + 'static,
    C: Fn(&T, &T) -> Vec<FromActor> + Send + 'static,
{
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let mut known = T::default();
            let mut warned = false;
            loop {
                match list() {
                    Ok(now) => {
                        warned = false;
                        let messages = changes(&known, &now);
                        let sent = !messages.is_empty();
                        for msg in messages {
                            if out.send(msg).is_err() {
                                return;
                            }
                        }
                        if sent {
                            let _ = waker.wake();
                        }
                        known = now;
                    }
                    Err(e) if !warned => {
                        warned = true;
                        log::error!("cannot list {what}: {e}");
                    }
                    Err(_) => {}
                }
                std::thread::sleep(every);
            }
        })?;
    Ok(())
}
