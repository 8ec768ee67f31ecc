//! The actor's side of the handshake: `Hello` and `KeyHello` (PROTOCOL.md
//! §4.1, §4.6). Registers devices, checks device keys and join codes in
//! constant time against `devices.json` / `join_code`, refuses revoked
//! devices, and answers `Welcome` or `KeyWelcome`.

use super::presence;
use super::Actor;
use crate::protocol::UserId;
use crate::protocol::{
    ClientId, ErrorCode, Hello, HelloMode, KeyWelcome, Message, Secret, Welcome,
};
use crate::server::bus::{ConnRef, Credential, FromActor, InUse};
use crate::server::devices::{self, DeviceBook, DevicesError, KeyCheck};
use crate::server::events::ServerEvent;
use crate::server::limiter;
use crate::server::store::DataPaths;
use crate::server::store::UserStore;
use std::borrow::Cow;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// How a handshake was refused: the code, the text for the client and
/// whether it was a failed guess (fed to the reactor's guess limiter).
struct Refusal {
    code: ErrorCode,
    text: Cow<'static, str>,
    guess: bool,
}

const BAD_KEY: Refusal = Refusal {
    code: ErrorCode::BadCredential,
    text: Cow::Borrowed("bad device key"),
    guess: true,
};
/// One text for every refused join secret: a wrong code, an
/// invite already used, one a new join code retired. A used invite is
/// deleted, so the server could only tell them apart by keeping used codes,
/// and an answer that did would tell a guesser which codes had existed.
const BAD_JOIN: Refusal = Refusal {
    code: ErrorCode::BadCredential,
    text: Cow::Borrowed(
        "bad join code: not this user's current join code, nor an unused invite \
           (an invite lets one device join, once; a new join code retires the old code \
           and every unused invite): ask the operator for a new USER_ID:CODE",
    ),
    guess: true,
};
const KEY_REQUIRED: Refusal = Refusal {
    code: ErrorCode::BadCredential,
    text: Cow::Borrowed("this device has a device key: send KeyHello"),
    guess: true,
};
const REVOKED: Refusal = Refusal {
    code: ErrorCode::Revoked,
    text: Cow::Borrowed("this device was revoked by the operator"),
    guess: false,
};
const UNKNOWN_CLIENT: Refusal = Refusal {
    code: ErrorCode::UnknownClient,
    text: Cow::Borrowed("unknown client"),
    guess: false,
};
const STORAGE: Refusal = Refusal {
    code: ErrorCode::Storage,
    text: Cow::Borrowed("cannot open the user's state"),
    guess: false,
};

const JOURNAL: Refusal = Refusal {
    code: ErrorCode::Storage,
    text: Cow::Borrowed("cannot record the new device in the user's journal"),
    guess: false,
};

/// The refusal for a device file the server cannot use: names the file
/// (relative to the data directory) and the OS error, so the operator sees
/// which file to fix, e.g. one root made that the server's user cannot
/// read (README "Devices"). Also logged, with the user.
fn storage(paths: &DataPaths, user: &UserId, e: &DevicesError) -> Refusal {
    log::error!("user {user}: {e}");
    let rel = |p: &Path| {
        p.strip_prefix(&paths.base)
            .unwrap_or(p)
            .display()
            .to_string()
    };
    let text = match e {
        DevicesError::Io(path, err) => format!(
            "the server cannot use its file {} ({}): the operator should check that \
             the server's user owns it",
            rel(path),
            crate::server::store::reason(err)
        ),
        DevicesError::Corrupt(path, why) => {
            format!("the server's file {} is damaged: {why}", rel(path))
        }
        other => other.to_string(),
    };
    Refusal {
        code: ErrorCode::Storage,
        text: Cow::Owned(text),
        guess: false,
    }
}

/// The text of `WrongShard` for a user whose tag names another shard.
const WRONG_SHARD: &str = "this server does not hold this user (its tag names another shard)";

/// A handshake as the reactor routed it ([`ToActor::Hello`]'s fields).
///
/// [`ToActor::Hello`]: crate::server::bus::ToActor::Hello
pub(super) struct HelloRequest {
    /// The Hello's request ID.
    pub request_id: u32,
    /// The handshake.
    pub hello: Hello,
    /// The KeyHello's secret and name.
    pub credential: Option<Credential>,
    /// The guess limiter's wait for the address.
    pub limited: Option<Duration>,
}

/// A Resume whose key verified, waiting for the probe of its device's live
/// connection: what its Welcome needs once the reactor answers
/// ([`crate::server::bus::ToActor::Probed`]).
pub(super) struct Parked {
    /// The Hello's request ID.
    pub request_id: u32,
    /// The device.
    pub client: ClientId,
    /// Answer with `KeyWelcome` (the handshake was a KeyHello).
    pub keyed: bool,
    /// Admitted from an address the guess limiter refuses.
    pub limited: bool,
    /// The connection log's name of the handshake.
    pub request: &'static str,
    /// The key this handshake gave a keyless device, already
    /// stored: the `KeyWelcome` must carry it.
    pub new_key: Option<Secret>,
}

/// What says of a verified Resume, as far as the actor knows.
enum Live {
    /// The device has no other live connection.
    Free,
    /// Another Resume of the device was admitted this cycle (the reactor
    /// does not know it yet): refuse at once.
    Taken(InUse),
    /// The device has this live connection: the reactor probes it.
    Probe(ConnRef),
}

/// The refusal of a Resume whose device has another live connection
/// . Sent only after the key matched, so it tells the key's
/// owner where its own device is connected from, and nothing else.
fn device_in_use(client: ClientId, other: InUse) -> Refusal {
    let since = chrono::DateTime::<chrono::Utc>::from(other.since).format("%Y-%m-%d %H:%M:%S UTC");
    Refusal {
        code: ErrorCode::DeviceInUse,
        text: Cow::Owned(format!(
            "device {client} of this user is connected from {} since {since}; one live \
             connection per device",
            other.peer
        )),
        guess: false,
    }
}

impl Actor {
    /// On a shard, a user this server does not hold and whose tag names
    /// another shard.
    fn not_ours(&self) -> bool {
        self.ctx
            .shard
            .is_some_and(|n| crate::tls::routing::shard_tag(&self.user) != n)
    }

    pub(super) fn on_hello(&mut self, conn: ConnRef, addr: SocketAddr, req: HelloRequest) {
        let HelloRequest {
            request_id,
            hello,
            credential,
            limited,
        } = req;
        let mut peer = super::peer::Peer::new(addr);
        peer.visit = hello.mode == HelloMode::Visit;
        self.peers.insert(conn, peer);
        if let Some(wait) = limited {
            self.on_limited_hello(conn, request_id, hello, credential, wait);
            return;
        }
        let request = request_name(hello.mode);
        if self.store.is_none() && !self.unknown {
            let create = hello.mode == HelloMode::NewUser;
            if !self.open_store(create) && !self.unknown {
                let text = "cannot open the user's state";
                self.log(conn, request, Err(text));
                self.fail(conn, request_id, ErrorCode::Storage, text);
                return;
            }
        }
        if let (None, Some(away)) = (&self.store, self.away) {
            self.log(conn, request, Err(away.text()));
            self.fail(conn, request_id, away.code(), away.text());
            return;
        }
        if self.store.is_none() && self.not_ours() {
            // Decided from the ID alone: says nothing of whether it exists.
            let text = WRONG_SHARD;
            self.log(conn, request, Err(text));
            self.fail(conn, request_id, ErrorCode::WrongShard, text);
            return;
        }
        if self.store.is_none() {
            self.log(conn, request, Err("unknown user"));
            self.fail(conn, request_id, ErrorCode::UnknownUser, "unknown user");
            let _ = self.ctx.out.send(FromActor::Refused { conn });
            return;
        }
        let keyed = credential.is_some();
        let (client, new_key) = match self.admit_device(&hello, credential) {
            Ok(admitted) => admitted,
            Err((refusal, client)) => {
                self.refuse(conn, request_id, request, &refusal, client);
                return;
            }
        };
        if hello.mode == HelloMode::NewUser {
            (self.ctx.events)(ServerEvent::NewUser(self.user));
        }
        let parked = Parked {
            request_id,
            client,
            keyed,
            limited: false,
            request,
            new_key,
        };
        if hello.mode == HelloMode::Resume {
            if let Some(parked) = self.one_live(conn, parked) {
                self.welcome(conn, parked);
            }
            return;
        }
        self.welcome(conn, parked);
    }

    /// Answers a refused handshake: logs it, queues the Error and the
    /// close, and feeds the guess limiter when it was a failed guess.
    /// `client`: the device named, for the log.
    fn refuse(
        &mut self,
        conn: ConnRef,
        request_id: u32,
        request: &str,
        refusal: &Refusal,
        client: Option<ClientId>,
    ) {
        if let (Some(peer), Some(client)) = (self.peers.get_mut(&conn), client) {
            peer.client = Some(client);
        }
        self.log(conn, request, Err(&refusal.text));
        self.fail(conn, request_id, refusal.code, &refusal.text);
        if let Some(peer) = self.peers.get_mut(&conn) {
            // Refused: never announced as Ready to the reactor.
            peer.client = None;
        }
        if refusal.guess {
            let _ = self.ctx.out.send(FromActor::Refused { conn });
        }
    }

    /// Admits a handshake: `Welcome` or `KeyWelcome` (with the key the
    /// device was given, if any), logged.
    fn welcome(&mut self, conn: ConnRef, parked: Parked) {
        let Parked {
            request_id,
            client,
            keyed,
            limited,
            request,
            new_key,
        } = parked;
        let head = self.store.as_ref().map_or(0, UserStore::head);
        let message = if keyed {
            Message::KeyWelcome(KeyWelcome {
                user_id: self.user,
                client_id: client,
                head,
                device_key: new_key.unwrap_or(Secret::NONE),
            })
        } else {
            Message::Welcome(Welcome {
                user_id: self.user,
                client_id: client,
                head,
            })
        };
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        peer.client = Some(client);
        peer.reply(request_id, message);
        let detail = match (new_key, limited) {
            (_, true) => format!("head {head} (device key admitted from a limited address)"),
            (Some(_), false) => format!("head {head}, new device key"),
            (None, false) => format!("head {head}"),
        };
        self.log(conn, request, Ok(&detail));
    }

    /// A Resume KeyHello with a non-zero device key from an address the
    /// guess limiter refuses: admitted as usual when the user,
    /// the device and its key all match; anything else (unknown user or
    /// device, wrong key, revoked) gets the same `TooManyAttempts` the
    /// reactor answers every other handshake from that address, so the
    /// refusal tells nothing about the ID, and it is not counted again.
    fn on_limited_hello(
        &mut self,
        conn: ConnRef,
        request_id: u32,
        hello: Hello,
        credential: Option<Credential>,
        wait: Duration,
    ) {
        let known = self.store.is_some() || (!self.unknown && self.open_store(false));
        let admitted = if known && hello.mode.resumes() {
            match self.admit_device(&hello, credential) {
                Ok((client, None)) => Some(client),
                // A key is never handed out here: the device had one.
                Ok((_, Some(_))) | Err(_) => None,
            }
        } else {
            None
        };
        let Some(client) = admitted else {
            let text = limiter::refusal_text(wait);
            self.log(conn, "resume", Err(&text));
            self.fail(conn, request_id, ErrorCode::TooManyAttempts, &text);
            return;
        };
        let parked = Parked {
            request_id,
            client,
            keyed: true,
            limited: true,
            request: "resume",
            new_key: None,
        };
        // The key matched: its owner may learn where the device is.
        let parked = if hello.mode == HelloMode::Resume {
            self.one_live(conn, parked)
        } else {
            Some(parked)
        };
        if let Some(parked) = parked {
            self.welcome(conn, parked);
        }
    }

    /// checked once the device proved itself (its key matched):
    /// gives the Resume back when its device has no other live connection;
    /// refuses it `DeviceInUse` when another Resume of the device was
    /// admitted this cycle (two arriving together, neither Ready when
    /// they came); parks it and asks the reactor to probe the device's
    /// live connection otherwise (answered by [`Actor::on_probed`]).
    fn one_live(&mut self, conn: ConnRef, parked: Parked) -> Option<Parked> {
        let client = parked.client;
        let live = self
            .peers
            .iter()
            .find(|(c, p)| **c != conn && p.is_live_device(client))
            .map(|(c, p)| {
                if p.announced {
                    Live::Probe(*c)
                } else {
                    Live::Taken(InUse {
                        peer: p.addr,
                        since: p.since,
                    })
                }
            })
            .unwrap_or(Live::Free);
        match live {
            Live::Free => Some(parked),
            Live::Taken(other) => {
                self.refuse_in_use(conn, &parked, other);
                None
            }
            Live::Probe(old) => {
                if let Some(peer) = self.peers.get_mut(&conn) {
                    peer.probe = Some(old);
                    peer.parked = Some(parked);
                }
                None
            }
        }
    }

    /// Refuses the verified Resume `parked` `DeviceInUse`. A key
    /// its handshake gave a keyless device is taken back first:
    /// the refusal never carries it, so keeping it would shut out the
    /// device's live client, keyless too, at its next reconnection
    /// (BadCredential for a key it never had).
    fn refuse_in_use(&mut self, conn: ConnRef, parked: &Parked, other: InUse) {
        let client = parked.client;
        if let Some(key) = &parked.new_key {
            let paths = &self.ctx.paths;
            let withdrawn = DeviceBook::load(paths, &self.user).and_then(|mut book| {
                if book.withdraw_key(client, key) {
                    book.save_with(self.ctx.durable)?;
                }
                Ok(())
            });
            if let Err(e) = withdrawn {
                log::error!(
                    "user {}: device {client}: the key of a refused handshake could not be taken back: {e}",
                    self.user
                );
            }
        }
        let refusal = device_in_use(client, other);
        self.refuse(
            conn,
            parked.request_id,
            parked.request,
            &refusal,
            Some(client),
        );
    }

    /// The reactor's answer to the probe a parked Resume asked for: refused
    /// `DeviceInUse` when `old` answered, or when another Resume of the
    /// device was admitted while this one waited; admitted otherwise.
    /// Requests the client pipelined behind its Hello are handled after.
    pub(super) fn on_probed(&mut self, conn: ConnRef, old: ConnRef, in_use: Option<InUse>) {
        let Some(parked) = self.peers.get_mut(&conn).and_then(|p| p.parked.take()) else {
            return;
        };
        let client = parked.client;
        let other = in_use.or_else(|| {
            self.peers
                .iter()
                .find(|(c, p)| **c != conn && **c != old && p.is_live_device(client))
                .map(|(_, p)| InUse {
                    peer: p.addr,
                    since: p.since,
                })
        });
        match other {
            Some(other) => self.refuse_in_use(conn, &parked, other),
            None => self.welcome(conn, parked),
        }
        let deferred = self
            .peers
            .get_mut(&conn)
            .map(|p| std::mem::take(&mut p.deferred))
            .unwrap_or_default();
        for (frame, cost) in deferred {
            self.handle(crate::server::bus::ToActor::Request { conn, frame, cost });
        }
    }

    /// Decides a handshake on the user's open store: the device's ID and
    /// the key to hand it (if any), or why it is refused (with the device
    /// ID when one was named, for the log).
    fn admit_device(
        &mut self,
        hello: &Hello,
        credential: Option<Credential>,
    ) -> Result<(ClientId, Option<Secret>), (Refusal, Option<ClientId>)> {
        let paths = &self.ctx.paths;
        let durable = self.ctx.durable;
        let mut book = DeviceBook::load(paths, &self.user)
            .map_err(|e| (storage(paths, &self.user, &e), None))?;
        let (secret, name) = match &credential {
            Some(c) => (c.secret, c.name.as_str()),
            None => (Secret::NONE, ""),
        };
        let Some(store) = self.store.as_mut() else {
            return Err((STORAGE, None));
        };
        let now = devices::unix_now();
        if hello.mode.resumes() {
            let client = hello.client_id;
            if !store.has_client(client) {
                return Err((UNKNOWN_CLIENT, None));
            }
            if devices::is_revoked(paths, &self.user, client) {
                return Err((REVOKED, Some(client)));
            }
            let new_key = match (book.check(client, &secret), credential.is_some()) {
                (KeyCheck::Match, true) => None,
                (KeyCheck::Match | KeyCheck::Mismatch, false) => {
                    return Err((KEY_REQUIRED, Some(client)))
                }
                (KeyCheck::Mismatch, true) => return Err((BAD_KEY, Some(client))),
                (KeyCheck::Keyless, false) => None,
                // A Visit is given no key: the device's client asks for it.
                (KeyCheck::Keyless, true) if secret.is_none() && hello.mode == HelloMode::Visit => {
                    None
                }
                // A keyless device's first KeyHello (zero secret) gets a key.
                (KeyCheck::Keyless, true) if secret.is_none() => {
                    let key = Secret::random();
                    book.set_key(client, &key, now);
                    Some(key)
                }
                (KeyCheck::Keyless, true) => return Err((BAD_KEY, Some(client))),
            };
            let stored = book.devices().find(|d| d.id == client).map(|d| d.last_seen);
            let stale = stored.is_none_or(|s| presence::is_stale(s, now));
            book.touch(client, now);
            if new_key.is_some() || stale {
                book.save_with(durable)
                    .map_err(|e| (storage(paths, &self.user, &e), Some(client)))?;
            }
            self.seen
                .insert(client, if stale { now } else { stored.unwrap_or(now) });
            return Ok((client, new_key));
        }
        if hello.mode == HelloMode::NewClient {
            let code = devices::join_digest(paths, &self.user)
                .map_err(|e| (storage(paths, &self.user, &e), None))?;
            let good = match code {
                Some(digest) => devices::matches(&digest, &secret),
                // No join code made yet: the user ID alone lets a device
                // join, with no secret (§4.6).
                None => secret.is_none(),
            };
            // Else a one-time invite, used up by this join.
            let good = good
                || devices::take_invite(paths, &self.user, &secret)
                    .map_err(|e| (storage(paths, &self.user, &e), None))?;
            if !good {
                return Err((BAD_JOIN, None));
            }
        }
        // The device table first, then the journal: a crash in between
        // leaves a record for an ID the journal will give out again.
        let client = store.next_client();
        let key = credential.is_some().then(Secret::random);
        book.add(client, name, key.as_ref(), now);
        book.save_with(durable)
            .map_err(|e| (storage(paths, &self.user, &e), None))?;
        let added = store.add_client().map_err(|e| {
            log::error!("user {}: cannot register a device: {e}", self.user);
            (JOURNAL, None)
        })?;
        debug_assert_eq!(added, client);
        Ok((client, key))
    }
}

/// The connection log's name for a handshake of `mode`.
pub(super) fn request_name(mode: HelloMode) -> &'static str {
    match mode {
        HelloMode::NewUser => "new-user",
        HelloMode::NewClient => "new-client",
        HelloMode::Resume => "resume",
        HelloMode::Visit => "visit",
    }
}
