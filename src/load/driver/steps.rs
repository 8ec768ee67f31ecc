//! The protocol side of one load connection: what each received frame does,
//! and the pulls and pushes the timers send.

use super::{Driver, Phase, Timer};
use crate::load::report::ShardFigures;
use crate::protocol::{
    ChangeBatch, ContentHash, FileBegin, Frame, Message, PushAck, PushStatus, UserId, Welcome,
    WirePath,
};
use crate::tls::routing::shard_tag;
use std::cmp::Reverse;
use std::time::{Duration, Instant};

impl Driver<'_> {
    fn measuring_since(&self, sent: Instant) -> bool {
        self.measure_start.is_some_and(|m| sent >= m)
    }

    pub(super) fn on_frame(&mut self, key: usize, frame: Frame) {
        let now = Instant::now();
        let rid = frame.request_id;
        match (self.conns[key].phase, frame.message) {
            (Phase::Joining { rid: want, sent }, Message::Welcome(w)) if rid == want => {
                self.on_welcome(key, &w, now.duration_since(sent));
            }
            (Phase::Joining { .. }, Message::Error(e)) => {
                self.error(format!("refused:{:?}", e.code));
                self.kill(key);
            }
            (Phase::Ready, Message::ChangeBatch(b))
                if self.conns[key].pull.is_some_and(|(r, _)| r == rid) =>
            {
                self.on_batch(key, &b, now);
            }
            (Phase::Ready, Message::Notify { head }) => {
                if head > self.conns[key].cursor && self.measure_start.is_some() {
                    if self.conns[key].pull.is_some() {
                        self.conns[key].pull_again = true;
                    } else {
                        self.send_pull(key);
                    }
                }
            }
            (Phase::Ready, Message::PushAck(a))
                if self.conns[key].push.is_some_and(|(r, _)| r == rid) =>
            {
                self.on_push_ack(key, &a, now);
            }
            (Phase::Ready, Message::Error(e)) => {
                if self.conns[key].push.is_some_and(|(r, _)| r == rid) {
                    self.conns[key].push = None;
                }
                self.error(format!("server_error:{:?}", e.code));
                if let Some(f) = self.shard_of(key) {
                    f.errors += 1;
                }
            }
            (_, Message::Pong) => {}
            (_, other) => {
                self.error(format!("unexpected:{:?}", other.kind()));
                self.kill(key);
            }
        }
    }

    /// The handshake of `key` succeeded after `took`: it is ready, and the
    /// connections of the same user that waited for its user ID may join.
    fn on_welcome(&mut self, key: usize, w: &Welcome, took: Duration) {
        self.report.handshake.record(took.as_micros() as u64);
        self.handshaking -= 1;
        self.ready += 1;
        let conn = &mut self.conns[key];
        conn.phase = Phase::Ready;
        conn.cursor = w.head;
        let user = conn.user;
        if let Some(f) = self.shard_for(w.user_id) {
            f.connected += 1;
        }
        if self.user_ids[user].is_none() {
            self.user_ids[user] = Some(w.user_id);
            if let Some(f) = self.shard_for(w.user_id) {
                f.users += 1;
            }
            for waiter in std::mem::take(&mut self.waiting[user]).into_iter().rev() {
                self.queue.push_front(waiter);
            }
        }
    }

    /// A reply to the pull in flight on `key`: its last batch ends the pull,
    /// acknowledges a new head and sends the pull a notice asked for meanwhile.
    fn on_batch(&mut self, key: usize, b: &ChangeBatch, now: Instant) {
        if !b.last {
            return;
        }
        let Some((_, sent)) = self.conns[key].pull.take() else {
            return;
        };
        if self.measuring_since(sent) {
            let took = now.duration_since(sent).as_micros() as u64;
            self.report.pull.record(took);
            if let Some(f) = self.shard_of(key) {
                f.pull.record(took);
            }
        }
        if b.head != self.conns[key].cursor {
            self.conns[key].cursor = b.head;
            self.send(key, Message::Ack { cursor: b.head });
        }
        if std::mem::take(&mut self.conns[key].pull_again) {
            self.send_pull(key);
        }
    }

    /// The answer to the push in flight on `key`.
    fn on_push_ack(&mut self, key: usize, a: &PushAck, now: Instant) {
        if let Some((_, sent)) = self.conns[key].push.take() {
            if self.measuring_since(sent) {
                let took = now.duration_since(sent).as_micros() as u64;
                self.report.push.record(took);
                if let Some(f) = self.shard_of(key) {
                    f.push.record(took);
                }
            }
        }
        if matches!(a.status, PushStatus::Applied | PushStatus::Unchanged) {
            self.conns[key].push_version = a.version;
        } else {
            self.error(format!("push:{:?}", a.status));
        }
    }

    /// The per-shard figures of connection `key`'s user, once its ID is known.
    fn shard_of(&mut self, key: usize) -> Option<&mut ShardFigures> {
        let user = self.user_ids.get(self.conns.get(key)?.user).copied()??;
        self.shard_for(user)
    }

    /// The per-shard figures of `user` (by its tag, PROTOCOL.md §16.1).
    fn shard_for(&mut self, user: UserId) -> Option<&mut ShardFigures> {
        Some(self.report.shards.entry(shard_tag(&user)).or_default())
    }

    fn send_pull(&mut self, key: usize) {
        let cursor = self.conns[key].cursor;
        let rid = self.send(key, Message::Pull { cursor });
        if self.conns[key].phase == Phase::Ready {
            self.conns[key].pull = Some((rid, Instant::now()));
        }
    }

    fn send_push(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        conn.pushes += 1;
        let mut content = vec![0u8; self.cfg.push_size.max(16)];
        content[..8].copy_from_slice(&conn.pushes.to_be_bytes());
        content[8..16].copy_from_slice(&(key as u64).to_be_bytes());
        let Ok(path) = WirePath::new(&format!("cloud-load/{key}.bin")) else {
            return;
        };
        let begin = FileBegin {
            version: conn.push_version,
            size: content.len() as u64,
            hash: ContentHash::of(&content),
            path,
        };
        let rid = conn.next_rid;
        conn.next_rid = conn.next_rid.wrapping_add(1).max(1);
        self.send_with(key, rid, Message::FileBegin(begin));
        self.send_with(key, rid, Message::FileChunk(content));
        self.send_with(key, rid, Message::FileEnd);
        self.conns[key].push = Some((rid, Instant::now()));
        self.flush(key);
    }

    pub(super) fn fire(&mut self, key: usize, timer: Timer, due: Instant) {
        if self.conns[key].phase != Phase::Ready {
            return;
        }
        let every = match timer {
            Timer::Pull => {
                if self.conns[key].pull.is_some() {
                    self.report.late_pulls += 1;
                } else {
                    self.send_pull(key);
                }
                self.cfg.pull_every
            }
            Timer::Push => {
                if self.conns[key].push.is_none() {
                    self.send_push(key);
                }
                match self.cfg.push_every {
                    Some(every) => every,
                    None => return,
                }
            }
        };
        self.timers.push(Reverse((due + every, key, timer)));
    }
}
