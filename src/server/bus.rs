//! Messages between the reactor (sockets) and the user actors (disk state).

use super::flow::Cost;
use crate::protocol::{ClientId, Frame, Hello, Secret, UserId};
use std::net::SocketAddr;

/// Names one connection across threads: its slab key plus a generation, so a
/// message about a closed connection never reaches a newer one in the same slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnRef {
    /// Slab key in the reactor.
    pub key: usize,
    /// Distinguishes successive connections that reuse the key.
    pub generation: u32,
}

/// What a `KeyHello` adds to a `Hello` (PROTOCOL.md §4.6).
#[derive(Debug, Clone)]
pub struct Credential {
    /// Device key (Resume), join code (NewClient) or none.
    pub secret: Secret,
    /// The device's name.
    pub name: String,
}

/// The live connection a Resume's device already has (PROTOCOL.md
/// what Error `DeviceInUse` tells the key's owner.
#[derive(Debug, Clone, Copy)]
pub struct InUse {
    /// Its peer address.
    pub peer: SocketAddr,
    /// When it was accepted.
    pub since: std::time::SystemTime,
}

/// Reactor → actor.
#[derive(Debug)]
pub enum ToActor {
    /// A connection's handshake for this user.
    Hello {
        /// The connection.
        conn: ConnRef,
        /// Its peer address, for the connection log.
        peer: SocketAddr,
        /// The `Hello` frame's request ID.
        request_id: u32,
        /// The handshake.
        hello: Hello,
        /// The secret and device name of a `KeyHello` (PROTOCOL.md §4.6);
        /// `None` for a plain `Hello`.
        credential: Option<Credential>,
        /// The address is refused by the guess limiter for this long
        /// (PROTOCOL.md ): only a matching device key is admitted;
        /// every other outcome is answered `TooManyAttempts`.
        limited: Option<std::time::Duration>,
    },
    /// The answer to [`FromActor::Probe`]: what the probe of the device's
    /// live connection `old` found for the Resume on `conn`.
    Probed {
        /// The held Resume's connection.
        conn: ConnRef,
        /// The connection that was probed.
        old: ConnRef,
        /// `Some`: `old` answered (refuse the Resume `DeviceInUse`);
        /// `None`: it is gone or was closed for its silence.
        in_use: Option<InUse>,
    },
    /// A request frame from an attached connection.
    Request {
        /// The connection.
        conn: ConnRef,
        /// The frame.
        frame: Frame,
        /// What it counts against the connection's inbound window
        /// ([`super::flow::cost_of`]).
        cost: Cost,
    },
    /// The connection wrote `bytes` of bulk output: the actor may produce
    /// that much more ([`super::flow::PeerFlow::grant`]).
    Credit {
        /// The connection.
        conn: ConnRef,
        /// Bytes drained.
        bytes: usize,
    },
    /// A connection that completed its handshake with an earlier actor of
    /// this user (which retired while the connection stayed open).
    Adopt {
        /// The connection.
        conn: ConnRef,
        /// Its peer address.
        peer: SocketAddr,
        /// Its registered client.
        client: ClientId,
        /// Its handshake was a Visit: never the device's live
        /// connection, whichever actor holds it.
        visit: bool,
        /// When it was accepted: what `DeviceInUse` tells.
        since: std::time::SystemTime,
    },
    /// The connection is gone.
    Detach {
        /// The connection.
        conn: ConnRef,
    },
}

/// Actor → reactor.
#[derive(Debug)]
pub enum FromActor {
    /// Encoded frames to queue on a connection.
    Send {
        /// The connection.
        conn: ConnRef,
        /// Whole frames.
        bytes: Vec<u8>,
        /// How many of those bytes are bulk output that the actor wants credited back.
        bulk: usize,
    },
    /// The handshake succeeded: the connection is ready.
    Ready {
        /// The connection.
        conn: ConnRef,
        /// The registered client ID.
        client: ClientId,
    },
    /// The Resume on `conn` passed its key check while its
    /// device has the live connection `old`: probe `old` and
    /// answer [`ToActor::Probed`]. Only a Resume whose key verified gets
    /// here, so a peer that merely knows a device ID cannot make the
    /// server ping that device's connection.
    Probe {
        /// The Resume's connection, held (not read) until the answer.
        conn: ConnRef,
        /// The device's live connection.
        old: ConnRef,
    },
    /// The handshake failed as a guess would: unknown user, wrong key or
    /// join code (feeds the guess limiter, R-2.2.4).
    Refused {
        /// The connection.
        conn: ConnRef,
    },
    /// Close the connection once its queued bytes are written.
    Close {
        /// The connection.
        conn: ConnRef,
    },
    /// The actor handled `cost` inbound bytes of this connection
    /// ([`super::flow::ConnFlow::release`]).
    Processed {
        /// The connection.
        conn: ConnRef,
        /// Bytes handled.
        cost: usize,
    },
    /// The actor has been idle with no work pending and offers to end.
    /// The reactor accepts only if it sent nothing the actor has not seen:
    /// `received` is how many messages the actor has taken from its inbox.
    WantsRetire {
        /// The user.
        user: UserId,
        /// Messages received so far.
        received: u64,
    },
    /// The user's newest sequence number, reported whenever it changes, so
    /// the reactor can answer an up-to-date Pull while the actor is retired.
    Head {
        /// The user.
        user: UserId,
        /// The newest sequence number.
        head: u64,
        /// Its tag (§5.8; 0: unknown).
        tag: u64,
    },
    /// Sent by the revocation watcher (not an actor): the operator revoked
    /// this device; its connections close with Error `Revoked`.
    Revoked {
        /// The user.
        user: UserId,
        /// The device.
        client: ClientId,
    },
    /// Sent by the revocation watcher: the device's revocation was lifted.
    Reinstated {
        /// The user.
        user: UserId,
        /// The device.
        client: ClientId,
    },
    /// Sent by the moves watcher (not an actor, [`super::moves`]): the
    /// user's marker appeared or changed (`Some`: its connections close
    /// with that Error and new ones are refused) or went (`None`).
    Away {
        /// The user.
        user: UserId,
        /// Why the user is refused now, if it is.
        away: Option<super::moves::Away>,
    },
    /// The actor thread has flushed its state and ended.
    Exited {
        /// The user.
        user: UserId,
    },
}
