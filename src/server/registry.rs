//! The reactor's table of user actors: spawns them on demand, remembers which
//! connections belong to each user, retires idle actors (a retired actor costs
//! nothing: its state is on disk), and holds messages for a user whose old
//! actor is still shutting down, so two actors never own one folder.

use super::actor::{self, ActorContext};
use super::bus::{ConnRef, FromActor, ToActor};
use super::members::{Member, Members};
use crate::protocol::{ClientId, UserId};
use crossbeam_channel::{unbounded, Sender};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Stack for an actor thread: enough for its iterative code, small enough
/// that many users cost little address space.
pub const ACTOR_STACK: usize = 256 * 1024;

enum SlotState {
    /// An actor thread runs. Unbounded channel: the reactor must never block;
    /// what flows in is bounded per connection by the inbound window
    /// (`flow::INBOUND_CAP`).
    Running { tx: Sender<ToActor>, sent: u64 },
    /// The sender was dropped; messages wait here until the thread exits.
    Retiring(Vec<ToActor>),
    /// No thread; connections stay attached and a new actor adopts them when
    /// a message arrives.
    Dormant,
    /// Needs an actor, but [`MAX_ACTORS`] are running: messages wait here
    /// (in arrival order) until one exits.
    Waiting(Vec<ToActor>),
}

pub use super::flow::MAX_ACTORS;

/// One user's actor and connections.
struct Slot {
    state: SlotState,
    members: Members,
    /// Newest sequence number and its tag (§5.8), as last reported by an actor.
    head: Option<(u64, u64)>,
}

/// Why a message could not be delivered.
#[derive(Debug)]
pub struct SpawnError(pub std::io::Error);

/// All users with an actor or an attached connection.
pub struct ActorRegistry {
    slots: HashMap<UserId, Slot>,
    ctx: Arc<ActorContext>,
    shutting_down: bool,
    running: usize,
    /// Users in `SlotState::Waiting`, oldest first.
    waiting: VecDeque<UserId>,
}

impl ActorRegistry {
    /// An empty registry whose actors share `ctx`.
    pub fn new(ctx: Arc<ActorContext>) -> Self {
        ActorRegistry {
            slots: HashMap::new(),
            ctx,
            shutting_down: false,
            running: 0,
            waiting: VecDeque::new(),
        }
    }

    fn spawn(&self, user: UserId) -> Result<Sender<ToActor>, SpawnError> {
        let (tx, rx) = unbounded();
        let ctx = Arc::clone(&self.ctx);
        std::thread::Builder::new()
            .name(format!("user-{}", &user.to_string()[..8]))
            .stack_size(ACTOR_STACK)
            .spawn(move || {
                let shared = Arc::clone(&ctx);
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    actor::run(user, ctx, rx)
                }));
                if result.is_err() {
                    log::error!("actor for user {user} panicked");
                    // run() counted itself in and could not count itself out.
                    shared
                        .alive
                        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                    let _ = shared.out.send(FromActor::Exited { user });
                    let _ = shared.waker.wake();
                }
            })
            .map_err(SpawnError)?;
        Ok(tx)
    }

    /// Starts an actor for a slot that has none, handing it the slot's
    /// ready connections first.
    fn start(&mut self, user: UserId) -> Result<(), SpawnError> {
        let tx = self.spawn(user)?;
        self.running += 1;
        let Some(slot) = self.slots.get_mut(&user) else {
            return Ok(());
        };
        let mut sent = 0;
        for (conn, member) in slot.members.iter() {
            if let Some(client) = member.client {
                let _ = tx.send(ToActor::Adopt {
                    conn: *conn,
                    peer: member.peer,
                    client,
                    visit: member.visit,
                    since: member.since,
                });
                sent += 1;
            }
        }
        slot.state = SlotState::Running { tx, sent };
        Ok(())
    }

    /// Delivers a message to `user`'s actor, starting one if needed.
    ///
    /// # Errors
    /// No thread could be started.
    pub fn send(&mut self, user: UserId, msg: ToActor) -> Result<(), SpawnError> {
        let is_hello = matches!(msg, ToActor::Hello { .. });
        let needs_start = match self.slots.get(&user) {
            // Only a handshake brings a user into the table.
            None if !is_hello => return Ok(()),
            None => {
                self.slots.insert(
                    user,
                    Slot {
                        state: SlotState::Dormant,
                        members: Members::default(),
                        head: None,
                    },
                );
                true
            }
            Some(slot) => matches!(slot.state, SlotState::Dormant),
        };
        if needs_start {
            // Credit and Detach concern state that only a running actor has.
            let wakes = !matches!(msg, ToActor::Credit { .. } | ToActor::Detach { .. });
            if self.shutting_down || !wakes {
                return Ok(());
            }
            return self.wake(user, vec![msg]);
        }
        let Some(slot) = self.slots.get_mut(&user) else {
            return Ok(());
        };
        match &mut slot.state {
            SlotState::Running { tx, sent } => {
                if let Err(failed) = tx.send(msg) {
                    // The actor is gone (it panicked): its Exited message is
                    // on the way; hold the message for the next one.
                    slot.state = SlotState::Retiring(vec![failed.into_inner()]);
                } else {
                    *sent += 1;
                }
            }
            SlotState::Retiring(queued) | SlotState::Waiting(queued) => queued.push(msg),
            SlotState::Dormant => {}
        }
        Ok(())
    }

    /// Gives `user` an actor and delivers `queued` to it, or, at the
    /// [`MAX_ACTORS`] cap, parks the messages until a thread is free.
    fn wake(&mut self, user: UserId, queued: Vec<ToActor>) -> Result<(), SpawnError> {
        if self.running >= MAX_ACTORS {
            if let Some(slot) = self.slots.get_mut(&user) {
                slot.state = SlotState::Waiting(queued);
                self.waiting.push_back(user);
                self.publish_waiting();
            }
            return Ok(());
        }
        self.start(user)?;
        if let Some(Slot {
            state: SlotState::Running { tx, sent },
            ..
        }) = self.slots.get_mut(&user)
        {
            for msg in queued {
                if tx.send(msg).is_ok() {
                    *sent += 1;
                }
            }
        }
        Ok(())
    }

    /// Tells actors how many users wait for a thread.
    fn publish_waiting(&self) {
        self.ctx
            .waiting
            .store(self.waiting.len(), std::sync::atomic::Ordering::Relaxed);
    }

    /// Starts waiting users while threads are free.
    fn start_waiting(&mut self) {
        self.drain_waiting();
        self.publish_waiting();
    }

    fn drain_waiting(&mut self) {
        while self.running < MAX_ACTORS && !self.shutting_down {
            let Some(user) = self.waiting.pop_front() else {
                return;
            };
            let Some(slot) = self.slots.get_mut(&user) else {
                continue;
            };
            let SlotState::Waiting(queued) = std::mem::replace(&mut slot.state, SlotState::Dormant)
            else {
                continue;
            };
            if let Err(e) = self.wake(user, queued) {
                log::error!("cannot start the actor for {user}: {}", e.0);
            }
        }
    }

    /// A connection sent a `Hello` for `user`.
    pub fn attach(&mut self, user: UserId, conn: ConnRef, member: Member) {
        if let Some(slot) = self.slots.get_mut(&user) {
            slot.members.insert(conn, member);
        }
    }

    /// The actor accepted `conn`'s handshake as `client`.
    pub fn set_client(&mut self, user: UserId, conn: ConnRef, client: ClientId) {
        if let Some(member) = self
            .slots
            .get_mut(&user)
            .and_then(|s| s.members.get_mut(conn))
        {
            member.client = Some(client);
        }
    }

    /// A connection of `user` went away.
    pub fn detach(&mut self, user: UserId, conn: ConnRef) {
        let Some(slot) = self.slots.get_mut(&user) else {
            return;
        };
        slot.members.remove(conn);
        if slot.members.is_empty() && matches!(slot.state, SlotState::Dormant) {
            self.slots.remove(&user);
        }
    }

    /// Records the user's head as reported by its actor.
    pub fn set_head(&mut self, user: UserId, head: u64, tag: u64) {
        if let Some(slot) = self.slots.get_mut(&user) {
            slot.head = Some((head, tag));
        }
    }

    /// The user's head as last reported by an actor. Changes reach the
    /// reactor in the same order as the replies and notifications they cause,
    /// so for a connection with nothing pending at the actor this is as new as
    /// anything that connection has been told.
    pub fn known_head(&self, user: &UserId) -> Option<u64> {
        self.slots
            .get(user)
            .and_then(|s| s.head)
            .map(|(head, _)| head)
    }

    /// The user's head with its tag (§5.8), as [`Registry::known_head`].
    pub fn known_head_tag(&self, user: &UserId) -> Option<(u64, u64)> {
        self.slots.get(user).and_then(|s| s.head)
    }

    /// The actor offers to retire after `received` messages. Accepted when
    /// nothing it has not seen is on the way and no handshake is pending.
    pub fn offer_retire(&mut self, user: UserId, received: u64) {
        let Some(slot) = self.slots.get_mut(&user) else {
            return;
        };
        let joining = slot.members.iter().any(|(_, m)| m.client.is_none());
        if let SlotState::Running { sent, .. } = slot.state {
            if sent == received && !joining {
                slot.state = SlotState::Retiring(Vec::new());
            }
        }
    }

    /// An actor ended. Returns true when it ended unexpectedly (it was still
    /// running), so its connections must be closed.
    pub fn exited(&mut self, user: UserId) -> bool {
        self.running = self.running.saturating_sub(1);
        let crashed = self.restart_if_needed(user);
        self.start_waiting();
        crashed
    }

    fn restart_if_needed(&mut self, user: UserId) -> bool {
        let Some(slot) = self.slots.get_mut(&user) else {
            return false;
        };
        let previous = std::mem::replace(&mut slot.state, SlotState::Dormant);
        let queued = match previous {
            SlotState::Running { .. } => {
                self.slots.remove(&user);
                return true;
            }
            SlotState::Retiring(queued) => queued,
            SlotState::Dormant => Vec::new(),
            SlotState::Waiting(queued) => {
                // Cannot happen (no thread); keep waiting.
                slot.state = SlotState::Waiting(queued);
                return false;
            }
        };
        if self.shutting_down {
            return false;
        }
        let wanted =
            !slot.members.is_empty() || queued.iter().any(|m| matches!(m, ToActor::Hello { .. }));
        if queued.is_empty() || !wanted {
            if slot.members.is_empty() {
                self.slots.remove(&user);
            }
            return false;
        }
        if let Err(e) = self.wake(user, queued) {
            log::error!("cannot restart the actor for {user}: {}", e.0);
            return true;
        }
        false
    }

    /// Retires `user`'s actor now (its user is being moved, §16.3): its
    /// inbox closes, it finishes what it holds, closes the state and ends.
    /// A later message starts a new actor as usual.
    pub fn retire(&mut self, user: UserId) {
        if let Some(slot) = self.slots.get_mut(&user) {
            if let SlotState::Running { .. } = slot.state {
                slot.state = SlotState::Retiring(Vec::new());
            }
        }
    }

    /// Retires every actor (shutdown); none is started again.
    pub fn retire_all(&mut self) {
        self.shutting_down = true;
        self.waiting.clear();
        self.publish_waiting();
        for slot in self.slots.values_mut() {
            match slot.state {
                SlotState::Running { .. } => slot.state = SlotState::Retiring(Vec::new()),
                SlotState::Waiting(_) => slot.state = SlotState::Dormant,
                _ => {}
            }
        }
    }

    /// Actor threads alive (running or finishing).
    pub fn threads(&self) -> usize {
        self.running
    }

    /// Users with an actor or a connection.
    pub fn users(&self) -> usize {
        self.slots.len()
    }
}
