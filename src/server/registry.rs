//! The reactor's table of user actors: spawns them on demand, counts their
//! connections, retires idle ones, and holds messages for a user whose old
//! actor is still shutting down (so two actors never own one folder).

use super::actor::{self, ActorContext};
use super::bus::ToActor;
use crate::protocol::UserId;
use crossbeam_channel::{unbounded, Sender};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Stack for an actor thread: enough for its iterative code, small enough
/// that thousands of users cost little address space.
pub const ACTOR_STACK: usize = 256 * 1024;

/// One user's actor, running or finishing.
struct Slot {
    state: SlotState,
    /// Connections attached to the user (kept across a restart).
    conns: usize,
    /// When `conns` last dropped to zero.
    idle_since: Instant,
    /// Retire at the next sweep even if not idle long.
    retire_now: bool,
}

enum SlotState {
    // Unbounded: the reactor must never block. What flows in is bounded per
    // connection by the inbound cap (connection.rs INBOUND_CAP).
    Running(Sender<ToActor>),
    /// The sender was dropped; messages wait here until the thread exits.
    Retiring(Vec<ToActor>),
}

/// Why a message could not be delivered.
#[derive(Debug)]
pub struct SpawnError(pub std::io::Error);

/// All actors.
pub struct ActorRegistry {
    slots: HashMap<UserId, Slot>,
    ctx: Arc<ActorContext>,
    shutting_down: bool,
}

impl ActorRegistry {
    /// An empty registry whose actors share `ctx`.
    pub fn new(ctx: Arc<ActorContext>) -> Self {
        ActorRegistry {
            slots: HashMap::new(),
            ctx,
            shutting_down: false,
        }
    }

    fn spawn(&self, user: UserId) -> Result<Sender<ToActor>, SpawnError> {
        let (tx, rx) = unbounded();
        let ctx = Arc::clone(&self.ctx);
        std::thread::Builder::new()
            .name(format!("user-{}", &user.to_string()[..8]))
            .stack_size(ACTOR_STACK)
            .spawn(move || {
                let out = ctx.out.clone();
                let waker = Arc::clone(&ctx.waker);
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    actor::run(user, ctx, rx)
                }));
                if result.is_err() {
                    log::error!("actor for user {user} panicked");
                    let _ = out.send(super::bus::FromActor::Exited { user });
                    let _ = waker.wake();
                }
            })
            .map_err(SpawnError)?;
        Ok(tx)
    }

    /// Delivers a message to `user`'s actor, starting one if needed.
    ///
    /// # Errors
    /// No thread could be started.
    pub fn send(&mut self, user: UserId, msg: ToActor) -> Result<(), SpawnError> {
        if !self.slots.contains_key(&user) {
            let tx = self.spawn(user)?;
            self.slots.insert(
                user,
                Slot {
                    state: SlotState::Running(tx),
                    conns: 0,
                    idle_since: Instant::now(),
                    retire_now: false,
                },
            );
        }
        let Some(slot) = self.slots.get_mut(&user) else {
            return Ok(());
        };
        match &mut slot.state {
            SlotState::Running(tx) => {
                if let Err(failed) = tx.send(msg) {
                    // The actor is gone (it panicked): its Exited message is
                    // on the way; hold the message for the next one.
                    slot.state = SlotState::Retiring(vec![failed.into_inner()]);
                }
            }
            SlotState::Retiring(queued) => queued.push(msg),
        }
        Ok(())
    }

    /// A connection attached to `user`.
    pub fn attach(&mut self, user: UserId) {
        if let Some(slot) = self.slots.get_mut(&user) {
            slot.conns += 1;
        }
    }

    /// A connection of `user` went away.
    pub fn detach(&mut self, user: UserId) {
        if let Some(slot) = self.slots.get_mut(&user) {
            slot.conns = slot.conns.saturating_sub(1);
            if slot.conns == 0 {
                slot.idle_since = Instant::now();
            }
        }
    }

    /// The actor has nothing to keep (unknown user): retire it at the next sweep.
    pub fn mark_idle(&mut self, user: UserId) {
        if let Some(slot) = self.slots.get_mut(&user) {
            slot.retire_now = true;
        }
    }

    /// Retires actors with no connections that have been idle for `idle_after`
    /// (or asked to go): dropping the sender ends their loop.
    pub fn sweep(&mut self, now: Instant, idle_after: Duration) {
        for slot in self.slots.values_mut() {
            let idle = slot.conns == 0
                && (slot.retire_now || now.duration_since(slot.idle_since) >= idle_after);
            if idle && matches!(slot.state, SlotState::Running(_)) {
                slot.state = SlotState::Retiring(Vec::new());
            }
        }
    }

    /// An actor ended. If a handshake arrived for its user meanwhile, a new
    /// actor starts with the held messages and the connection count.
    pub fn exited(&mut self, user: UserId) {
        let Some(slot) = self.slots.remove(&user) else {
            return;
        };
        let SlotState::Retiring(queued) = slot.state else {
            // An actor that ended on its own (panic) while still registered.
            return;
        };
        let wanted = queued.iter().any(|m| matches!(m, ToActor::Hello { .. }));
        if self.shutting_down || !wanted {
            return;
        }
        for msg in queued {
            if let Err(e) = self.send(user, msg) {
                log::error!("cannot restart the actor for {user}: {}", e.0);
                return;
            }
        }
        if let Some(new) = self.slots.get_mut(&user) {
            new.conns = slot.conns;
        }
    }

    /// Retires every actor (shutdown); none is started again.
    pub fn retire_all(&mut self) {
        self.shutting_down = true;
        for slot in self.slots.values_mut() {
            if matches!(slot.state, SlotState::Running(_)) {
                slot.state = SlotState::Retiring(Vec::new());
            }
        }
    }

    /// Whether `user` has an actor that was not asked to stop.
    pub fn is_running(&self, user: &UserId) -> bool {
        matches!(
            self.slots.get(user),
            Some(Slot {
                state: SlotState::Running(_),
                ..
            })
        )
    }

    /// Number of actors alive or finishing.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when no actor is alive.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}
