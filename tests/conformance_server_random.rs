//! Random pushes from two devices against the real server, checking after
//! every push the rules issue 10 found broken: a push takes at most one
//! sequence number, exactly when it changed the tree (§5.4, §7.1); the other
//! device is notified of it (§4.4); and every Deleted entry of a pull names
//! the change that removed that path or a directory above it (§5.2, §7.1).
//! And a device that pushes without pulling is never Stale or in conflict
//! with itself (§7.2). `CONF_SEED=n` replays a run.

mod common;

use cloudservice::protocol::{
    Delete, EntryState, Message, PushAck, PushStatus, RemoveDir, Rename, WirePath,
};
use common::*;
use std::collections::HashMap;
use std::time::Duration;

const PATHS: &[&str] = &[
    "d", "d/x", "d/e", "d/e/y", "d/e/z", "f", "f/w", "top", "g/h/i",
];

/// One device: its connection, cursor and the versions it knows.
struct Device {
    wire: WireClient,
    cursor: u64,
    known: HashMap<String, u64>,
}

impl Device {
    fn pull(&mut self) {
        let (head, full, entries) = self.wire.pull(self.cursor);
        if full {
            self.known.clear();
        }
        for e in entries {
            if e.state == EntryState::Deleted {
                self.known.remove(e.path.as_str());
            } else {
                self.known.insert(e.path.as_str().to_owned(), e.version);
            }
        }
        self.cursor = head;
    }

    fn base(&self, path: &str) -> u64 {
        self.known.get(path).copied().unwrap_or(0)
    }
}

/// A random push for `dev`; returns it and the paths it may remove.
fn random_push(rng: &mut Rng, dev: &Device, round: usize) -> (Message, Vec<String>) {
    let path = PATHS[rng.index(PATHS.len())];
    match rng.index(6) {
        0 | 1 => {
            // An upload: built by the caller (multi-frame).
            (Message::Ping, vec![path.to_owned(), format!("{round}")])
        }
        2 => (Message::MakeDir { path: p(path) }, Vec::new()),
        3 => (
            Message::Delete(Delete {
                base_version: dev.base(path),
                path: p(path),
            }),
            vec![path.to_owned()],
        ),
        4 => (
            Message::RemoveDir(RemoveDir {
                cursor: dev.cursor,
                path: p(path),
            }),
            vec![path.to_owned()],
        ),
        _ => {
            let to = PATHS[rng.index(PATHS.len())];
            (
                Message::Rename(Rename {
                    base_version: dev.base(path),
                    from: p(path),
                    to: p(to),
                }),
                vec![path.to_owned()],
            )
        }
    }
}

#[test]
fn random_pushes_take_one_number_notify_and_name_their_removals() {
    let seed = seed("CONF_SEED");
    println!("CONF_SEED={seed}");
    let mut rng = Rng::new(seed);
    let server = Server::start();
    let first = WireClient::new_user(server.addr);
    let user = first.user;
    let mut devs = [
        Device {
            wire: first,
            cursor: 0,
            known: HashMap::new(),
        },
        Device {
            wire: WireClient::new_client(server.addr, user),
            cursor: 0,
            known: HashMap::new(),
        },
    ];
    let mut observer = WireClient::new_client(server.addr, user);
    let mut head = 0u64;
    // seq → the paths whose removal (with everything below) that change may be.
    let mut removals: HashMap<u64, Vec<String>> = HashMap::new();
    let mut checked = 0usize;
    for round in 0..250 {
        let who = rng.index(2);
        if rng.index(4) == 0 {
            devs[who].pull();
        }
        let (message, removes) = random_push(&mut rng, &devs[who], round);
        let what = format!("seed {seed} round {round}: {message:?}");
        let result: Result<PushAck, _> = if let Message::Ping = message {
            let path = &removes[0];
            let base = devs[who].base(path);
            devs[who].wire.put(path, removes[1].as_bytes(), base)
        } else {
            devs[who].wire.push(message.clone())
        };
        let (now, _, _) = observer.pull(head);
        let took = now - head;
        assert!(took <= 1, "{what}: one push took {took} numbers");
        match &result {
            Ok(ack) if matches!(ack.status, PushStatus::Applied | PushStatus::Conflict) => {
                assert_eq!(took, 1, "{what}: {ack:?}");
                assert_eq!(ack.version, now, "{what}: {ack:?}");
                devs[who]
                    .known
                    .insert(ack.path.as_str().to_owned(), ack.version);
            }
            Ok(ack) if took == 1 => {
                // Only a RemoveDir that removed part of the directory.
                assert!(matches!(message, Message::RemoveDir(_)), "{what}: {ack:?}");
                assert_eq!(
                    (ack.status, ack.version),
                    (PushStatus::Stale, now),
                    "{what}"
                );
            }
            Ok(_) => {}
            Err(e) => assert_eq!(took, 0, "{what}: {e:?}"),
        }
        if took == 1 {
            if !matches!(message, Message::Ping | Message::MakeDir { .. }) {
                removals.insert(now, removes);
            }
            let other = &mut devs[1 - who].wire;
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                let seen = other.wait_notify(Duration::from_millis(500));
                if seen == Some(now) {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{what}: the other device got no Notify for head {now} (last {seen:?})"
                );
            }
        }
        head = now;
        if round % 10 == 9 && head > 1 {
            let cursor = rng.index(head as usize) as u64;
            let (_, full, entries) = observer.pull(cursor);
            for e in entries.iter().filter(|e| e.state == EntryState::Deleted) {
                assert!(!full, "seed {seed}: a full listing has a Deleted entry");
                assert!(
                    e.version > cursor && e.version <= head,
                    "seed {seed} round {round}: {e:?} after cursor {cursor}"
                );
                let by = removals.get(&e.version).unwrap_or_else(|| {
                    panic!(
                        "seed {seed} round {round}: {e:?}: change {} removed nothing",
                        e.version
                    )
                });
                checked += 1;
                let path = WirePath::new(e.path.as_str()).expect("valid");
                assert!(
                    by.iter().any(|r| path.is_within(&p(r))),
                    "seed {seed} round {round}: {e:?} is not below {by:?}"
                );
            }
        }
    }
    // The run exercised what it checks.
    assert!(head > 40, "seed {seed}: only {head} changes");
    assert!(
        checked > 5,
        "seed {seed}: only {checked} Deleted entries checked"
    );
}

/// Whether `path` can hold a new entry in `model`: no ancestor is a file.
fn placeable(model: &Tree, path: &str) -> bool {
    let mut prefix = String::new();
    for part in path.split('/') {
        if !prefix.is_empty() {
            if let Some(Some(_)) = model.get(&prefix) {
                return false;
            }
            prefix.push('/');
        }
        prefix.push_str(part);
    }
    true
}

#[test]
fn a_device_that_never_pulls_is_never_stale_against_itself() {
    let seed = seed("CONF_SEED").wrapping_add(1);
    println!("CONF_SEED={seed} (own-change run)");
    let mut rng = Rng::new(seed);
    let server = Server::start();
    let mut a = WireClient::new_user(server.addr);
    // Versions are never recorded: every base is 0 and every cursor 0, as
    // for a device that pushes many local changes before its next pull.
    let mut model = Tree::new();
    for round in 0..200 {
        let path = PATHS[rng.index(PATHS.len())];
        let what = format!("seed {seed} round {round}");
        let result = match model.get(path) {
            Some(Some(_)) if rng.index(2) == 0 => {
                model.remove(path);
                a.push(Message::Delete(Delete {
                    base_version: 0,
                    path: p(path),
                }))
            }
            Some(None) if rng.index(2) == 0 => {
                let below = format!("{path}/");
                model.retain(|k, _| k != path && !k.starts_with(&below));
                a.push(Message::RemoveDir(RemoveDir {
                    cursor: 0,
                    path: p(path),
                }))
            }
            Some(None) => continue,
            _ if !placeable(&model, path) => continue,
            _ if rng.index(3) == 0 => {
                if model.contains_key(path) {
                    continue;
                }
                add_parents(&mut model, path);
                model.insert(path.to_owned(), None);
                a.push(Message::MakeDir { path: p(path) })
            }
            _ => {
                let content = format!("{round}").into_bytes();
                add_parents(&mut model, path);
                model.insert(path.to_owned(), Some(content.clone()));
                a.put(path, &content, 0)
            }
        };
        let ack = result.unwrap_or_else(|e| panic!("{what}: {e:?}"));
        assert!(
            matches!(ack.status, PushStatus::Applied | PushStatus::Unchanged),
            "{what}: its own earlier push made this one {ack:?}"
        );
        assert_eq!(ack.path.as_str(), path, "{what}");
    }
    assert_eq!(tree(&server.user_dir(&a.user)), model, "seed {seed}");
}

/// Adds the missing parent directories of `path` to `model`.
fn add_parents(model: &mut Tree, path: &str) {
    let mut prefix = String::new();
    let parts: Vec<&str> = path.split('/').collect();
    for part in &parts[..parts.len() - 1] {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(part);
        model.entry(prefix.clone()).or_insert(None);
    }
}
