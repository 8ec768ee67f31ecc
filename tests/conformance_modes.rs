//! The server's side of the executable bit (PROTOCOL.md §15), driven with
//! frames over a socket against the real `cloud-server`: the version 3 kinds
//! travel under their own header byte, PullModes answers as Pull with each
//! file's bit, SetMode follows its table, and the bit stays with the file
//! through uploads, renames, restarts and the re-scan after a crash.

mod common;

use cloudservice::protocol::{
    decode_all, ChangeBatch, ChangeEntry, EntryState, ErrorCode, Message, PushAck, PushStatus,
    SetMode,
};
use common::{p, Read1, Rng, Server, WireClient};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

/// PullModes after `cursor`: (head, full, entries with their modes).
fn pull_modes(c: &mut WireClient, cursor: u64) -> (u64, bool, Vec<ChangeEntry>) {
    let rid = c.send(Message::PullModes { cursor });
    let mut entries = Vec::new();
    loop {
        match c.reply(rid) {
            Message::ModeBatch(ChangeBatch {
                head,
                full,
                last,
                entries: more,
            }) => {
                entries.extend(more);
                if last {
                    return (head, full, entries);
                }
            }
            other => panic!("unexpected reply to a PullModes: {other:?}"),
        }
    }
}

fn set_mode(c: &mut WireClient, path: &str, base: u64, executable: bool) -> PushAck {
    c.push(Message::SetMode(SetMode {
        base_version: base,
        executable,
        path: p(path),
    }))
    .expect("SetMode answered with a PushAck")
}

/// The permission bits of the server's copy of `path`.
fn disk_mode(server: &Server, c: &WireClient, path: &str) -> u32 {
    let file = server.user_dir(&c.user).join(path);
    std::fs::metadata(&file)
        .expect("server copy")
        .permissions()
        .mode()
        & 0o7777
}

fn exec_of(entries: &[ChangeEntry], path: &str) -> bool {
    entries
        .iter()
        .rev()
        .find(|e| e.path.as_str() == path)
        .unwrap_or_else(|| panic!("{path} not listed: {entries:?}"))
        .executable
}

/// A frame of `kind` under header version `version`, with `payload`.
fn raw(version: u8, kind: u8, rid: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x43, 0x53, version, kind];
    out.extend_from_slice(&rid.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Sends `bytes` on a fresh connection of a new user and expects Error
/// BadFrame, then the close.
fn refused(server: &Server, bytes: &[u8]) {
    let mut c = WireClient::new_user(server.addr);
    c.send_raw(bytes);
    let frames = c.until_closed();
    let last = frames.last().expect("an Error before the close");
    match &last.message {
        Message::Error(e) => assert_eq!(e.code, ErrorCode::BadFrame, "{e:?}"),
        other => panic!("expected Error BadFrame, got {other:?}"),
    }
}

#[test]
///
fn r_15_1_1_mode_kinds_travel_under_version_3_only() {
    let server = Server::start();
    let cursor = 0u64.to_be_bytes();
    // PullModes under 1 and 2: unknown there.
    refused(&server, &raw(1, 0x18, 1, &cursor));
    refused(&server, &raw(2, 0x18, 1, &cursor));
    // SetMode under 1: unknown there.
    let mut set = 0u64.to_be_bytes().to_vec();
    set.push(1);
    set.extend_from_slice(&[0, 1, b'a']);
    refused(&server, &raw(1, 0x35, 1, &set));
    // Pull under 3: a version 1 kind has one encoding.
    refused(&server, &raw(3, 0x10, 1, &cursor));
    // Under 3 they work, and Pull under 1 still does.
    let mut c = WireClient::new_user(server.addr);
    assert_eq!(pull_modes(&mut c, 0), (0, true, Vec::new()));
    assert_eq!(c.pull(0), (0, true, Vec::new()));
    let bytes = raw(3, 0x18, 7, &cursor);
    c.send_raw(&bytes);
    assert!(matches!(c.reply(7), Message::ModeBatch(_)));
}

#[test]
///
fn r_15_2_2_reserved_mode_bits_are_refused() {
    let server = Server::start();
    for mode in [0x02u8, 0x03, 0x80, 0xff] {
        let mut payload = 0u64.to_be_bytes().to_vec();
        payload.push(mode);
        payload.extend_from_slice(&[0, 1, b'a']);
        refused(&server, &raw(3, 0x35, 1, &payload));
    }
    // The codec refuses a ModeBatch entry with a reserved bit, or with the
    // bit on a directory or a deletion.
    let mut c = WireClient::new_user(server.addr);
    let put = c.put("d/x", b"x", 0).expect("upload");
    let ack = set_mode(&mut c, "d/x", put.version, true);
    assert_eq!(ack.status, PushStatus::Applied);
    let rid = c.send(Message::PullModes { cursor: 0 });
    let Message::ModeBatch(batch) = c.reply(rid) else {
        panic!("ModeBatch expected");
    };
    let bytes = cloudservice::protocol::Frame::new(rid, Message::ModeBatch(batch)).to_bytes();
    // Entries start after 12 header bytes and 11 batch bytes; the first is
    // the directory `d`, its mode byte right after its state byte.
    assert_eq!(bytes[23], 2, "first entry is the directory");
    assert_eq!(bytes[24], 0);
    for (at, value) in [(24usize, 1u8), (24, 2)] {
        let mut bad = bytes.clone();
        bad[at] = value;
        assert!(decode_all(&bad).1.is_err(), "mode {value} on a directory");
    }
    let dir_len = 1 + 1 + 8 + 8 + 32 + 2 + 1;
    let file_mode = 23 + dir_len + 1;
    assert_eq!(bytes[file_mode], 1, "d/x is executable");
    let mut bad = bytes.clone();
    bad[file_mode] = 0x81;
    assert!(decode_all(&bad).1.is_err(), "reserved bit on a file");
}

/// What the test expects of the server: file path → executable.
type Model = BTreeMap<String, bool>;

#[test]
///
fn r_15_2_1_pullmodes_answers_as_pull_with_each_files_bit() {
    let server = Server::start();
    let mut c = WireClient::new_user(server.addr);
    let mut rng = Rng::new(0x1521);
    let names = ["a.sh", "b.sh", "d/c.sh", "d/e.txt", "f"];
    let mut model: Model = BTreeMap::new();
    let mut versions: BTreeMap<String, u64> = BTreeMap::new();
    for step in 0..60 {
        let name = names[rng.below(names.len() as u64) as usize];
        let base = versions.get(name).copied().unwrap_or(0);
        match rng.below(5) {
            0 | 1 => {
                let len = 1 + rng.below(40) as usize;
                let content = rng.bytes(len);
                let ack = c.put(name, &content, base).expect("upload");
                assert_eq!(ack.status, PushStatus::Applied, "step {step}");
                // New content over a file keeps its bit; a new file has none.
                model.entry(name.to_owned()).or_insert(false);
                versions.insert(name.to_owned(), ack.version);
            }
            2 | 3 => {
                let on = rng.below(2) == 1;
                let ack = set_mode(&mut c, name, base, on);
                match model.get(name) {
                    None => assert_eq!(ack.status, PushStatus::Stale, "step {step}"),
                    Some(was) if *was == on => {
                        assert_eq!(ack.status, PushStatus::Unchanged, "step {step}")
                    }
                    Some(_) => {
                        assert_eq!(ack.status, PushStatus::Applied, "step {step}");
                        model.insert(name.to_owned(), on);
                        versions.insert(name.to_owned(), ack.version);
                    }
                }
            }
            _ => {
                let to = names[rng.below(names.len() as u64) as usize];
                if model.contains_key(name) && !model.contains_key(to) && !to.starts_with('f') {
                    let ack = c
                        .push(Message::Rename(cloudservice::protocol::Rename {
                            base_version: base,
                            from: p(name),
                            to: p(to),
                        }))
                        .expect("rename");
                    assert_eq!(ack.status, PushStatus::Applied, "step {step}");
                    let bit = model.remove(name).expect("moved");
                    model.insert(to.to_owned(), bit);
                    versions.remove(name);
                    versions.insert(to.to_owned(), ack.version);
                }
            }
        }
    }
    let (head, _, _) = c.pull(0);
    for cursor in 0..=head {
        let (h1, full1, plain) = c.pull(cursor);
        let (h2, full2, moded) = pull_modes(&mut c, cursor);
        assert_eq!((h1, full1), (h2, full2), "cursor {cursor}");
        let stripped: Vec<ChangeEntry> = moded
            .iter()
            .map(|e| ChangeEntry {
                executable: false,
                ..e.clone()
            })
            .collect();
        assert_eq!(stripped, plain, "cursor {cursor}: same entries as Pull");
        for e in &moded {
            match e.state {
                EntryState::File { .. } => {
                    let want = model.get(e.path.as_str()).copied();
                    assert_eq!(Some(e.executable), want, "cursor {cursor}: {}", e.path);
                }
                _ => assert!(!e.executable, "{e:?}"),
            }
        }
    }
    for (name, bit) in &model {
        let mode = disk_mode(&server, &c, name);
        assert_eq!(mode & 0o100 != 0, *bit, "server copy of {name}: {mode:o}");
        if !bit {
            assert_eq!(mode & 0o111, 0, "{name}: {mode:o}");
        }
    }
}

#[test]
///
fn r_15_3_1_setmode_follows_its_table() {
    let server = Server::start();
    let mut a = WireClient::new_user(server.addr);
    let mut b = WireClient::new_client(server.addr, a.user);
    // Absent: Stale, version 0.
    let ack = set_mode(&mut a, "nothing.sh", 0, true);
    assert_eq!((ack.status, ack.version), (PushStatus::Stale, 0));
    // A directory: Stale with its version.
    let dir = a.push(Message::MakeDir { path: p("dir") }).expect("mkdir");
    let ack = set_mode(&mut a, "dir", dir.version, true);
    assert_eq!((ack.status, ack.version), (PushStatus::Stale, dir.version));
    // Applied: the bit is set, in the server's copy too, as a new change.
    let put = a.put("run.sh", b"#!/bin/sh\n", 0).expect("upload");
    assert_eq!(disk_mode(&server, &a, "run.sh") & 0o111, 0);
    let ack = set_mode(&mut a, "run.sh", put.version, true);
    assert_eq!(ack.status, PushStatus::Applied);
    assert!(ack.version > put.version);
    let mode = disk_mode(&server, &a, "run.sh");
    assert_eq!(mode & 0o100, 0o100, "{mode:o}");
    assert_eq!((mode & 0o444) >> 2, mode & 0o111, "x wherever r: {mode:o}");
    // The same bit again: Unchanged, the version it has.
    let again = set_mode(&mut a, "run.sh", ack.version, true);
    assert_eq!(
        (again.status, again.version),
        (PushStatus::Unchanged, ack.version)
    );
    // Another device changed it meanwhile: Stale, kept.
    let other = b
        .put("run.sh", b"#!/bin/sh\necho b\n", ack.version)
        .expect("b");
    assert_eq!(other.status, PushStatus::Applied);
    let stale = set_mode(&mut a, "run.sh", ack.version, false);
    assert_eq!(
        (stale.status, stale.version),
        (PushStatus::Stale, other.version)
    );
    assert_eq!(disk_mode(&server, &a, "run.sh") & 0o100, 0o100);
    // On the current base: cleared, every x dropped.
    let clear = set_mode(&mut a, "run.sh", other.version, false);
    assert_eq!(clear.status, PushStatus::Applied);
    assert_eq!(disk_mode(&server, &a, "run.sh") & 0o111, 0);
    // The other device hears of it and pulls the new mode.
    assert!(b.wait_notify(Duration::from_secs(5)).is_some());
    let (_, _, entries) = pull_modes(&mut b, other.version);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].version, clear.version);
    assert!(!entries[0].executable);
}

#[test]
///
fn r_15_3_2_the_bit_stays_with_the_file() {
    let mut server = Server::start();
    let mut a = WireClient::new_user(server.addr);
    let mut b = WireClient::new_client(server.addr, a.user);
    let put = a.put("bin/tool", b"v1", 0).expect("upload");
    let set = set_mode(&mut a, "bin/tool", put.version, true);
    // New content over it keeps the bit.
    let v2 = a.put("bin/tool", b"v2", set.version).expect("upload");
    assert_eq!(v2.status, PushStatus::Applied);
    assert_eq!(disk_mode(&server, &a, "bin/tool") & 0o100, 0o100);
    // A concurrent edit makes a conflict copy: a new file, without the bit.
    let conflict = b.put("bin/tool", b"b's", set.version).expect("upload");
    assert_eq!(conflict.status, PushStatus::Conflict);
    let copy = conflict.path.as_str().to_owned();
    assert_eq!(disk_mode(&server, &a, &copy) & 0o111, 0);
    // A rename moves it with the bit.
    let moved = a
        .push(Message::Rename(cloudservice::protocol::Rename {
            base_version: v2.version,
            from: p("bin"),
            to: p("tools"),
        }))
        .expect("rename");
    assert_eq!(moved.status, PushStatus::Applied);
    let (_, _, entries) = pull_modes(&mut a, 0);
    assert!(exec_of(&entries, "tools/tool"));
    let moved_copy = copy.replacen("bin/", "tools/", 1);
    assert!(!exec_of(&entries, &moved_copy));
    assert_eq!(disk_mode(&server, &a, "tools/tool") & 0o100, 0o100);
    // A clean restart keeps it (the journal's mode record).
    let (user, client) = (a.user, a.client);
    drop((a, b));
    server.restart();
    let mut c = WireClient::resume(server.addr, user, client);
    let (_, _, after) = pull_modes(&mut c, 0);
    assert!(exec_of(&after, "tools/tool"));
    // A crash, then a chmod behind the server's back: the re-scan takes
    // the bit from the folder.
    server.kill9();
    let folder = server.user_dir(&c.user);
    set_disk_exec(&folder.join(&moved_copy), true);
    set_disk_exec(&folder.join("tools/tool"), false);
    server.start_again();
    let mut c = WireClient::resume(server.addr, user, client);
    let (_, _, after) = pull_modes(&mut c, 0);
    assert!(!exec_of(&after, "tools/tool"));
    assert!(exec_of(&after, &moved_copy));
}

fn set_disk_exec(path: &Path, on: bool) {
    let mode = std::fs::metadata(path).expect("file").permissions().mode();
    let mode = if on { mode | 0o111 } else { mode & !0o111 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn an_old_style_pull_is_unchanged_by_modes() {
    let server = Server::start();
    let mut c = WireClient::new_user(server.addr);
    let put = c.put("x.sh", b"x", 0).expect("upload");
    set_mode(&mut c, "x.sh", put.version, true);
    let rid = c.send(Message::Pull { cursor: 0 });
    match c.read(Duration::from_secs(5)) {
        Read1::Frame(f) => {
            assert_eq!(f.request_id, rid);
            assert!(matches!(f.message, Message::ChangeBatch(_)), "{f:?}");
        }
        other => panic!("{other:?}"),
    }
}

/// The server's state of `f.sh` as PullModes gives it: (version, executable).
fn state_of(c: &mut WireClient, path: &str) -> (u64, bool) {
    let (_, _, entries) = pull_modes(c, 0);
    let e = entries
        .iter()
        .find(|e| e.path.as_str() == path)
        .unwrap_or_else(|| panic!("{path} listed: {entries:?}"));
    (e.version, e.executable)
}

#[test]
///
fn r_15_3_4_mode_changes_alone_do_not_make_an_upload_stale() {
    let mut server = Server::start();
    let mut a = WireClient::new_user(server.addr);
    let mut b = WireClient::new_client(server.addr, a.user);
    let v1 = a.put("f.sh", b"v1", 0).expect("upload");
    // Another device's SetMode, then an upload on the base before it:
    // applied, and the bit stays.
    let s1 = set_mode(&mut b, "f.sh", v1.version, true);
    assert_eq!(s1.status, PushStatus::Applied);
    let up = a.put("f.sh", b"a's edit", v1.version).expect("upload");
    assert_eq!((up.status, up.path.as_str()), (PushStatus::Applied, "f.sh"));
    assert_eq!(disk_mode(&server, &a, "f.sh") & 0o100, 0o100);
    assert_eq!(state_of(&mut a, "f.sh"), (up.version, true));
    // Several SetModes between (one across a restart): still applied, on
    // the base before them or on any of them.
    let mut base = up.version;
    let mut bases = vec![up.version];
    for (i, on) in [false, true, false].into_iter().enumerate() {
        let s = set_mode(&mut b, "f.sh", base, on);
        assert_eq!(s.status, PushStatus::Applied);
        base = s.version;
        bases.push(base);
        if i == 1 {
            let (user, ca, cb) = (a.user, a.client, b.client);
            drop((a, b));
            server.restart();
            a = WireClient::resume(server.addr, user, ca);
            b = WireClient::resume(server.addr, user, cb);
        }
    }
    let up2 = a.put("f.sh", b"after three", up.version).expect("upload");
    assert_eq!(up2.status, PushStatus::Applied);
    assert_eq!(state_of(&mut a, "f.sh"), (up2.version, false));
    let s = set_mode(&mut b, "f.sh", up2.version, true);
    let up3 = a
        .put("f.sh", b"on the mode's version", s.version)
        .expect("upload");
    assert_eq!(up3.status, PushStatus::Applied);
    assert_eq!(state_of(&mut a, "f.sh"), (up3.version, true));
    // The other order: the upload first, then a SetMode on the old base is
    // Stale and the device sends it again on the new version.
    let late = set_mode(&mut b, "f.sh", s.version, false);
    assert_eq!(
        (late.status, late.version),
        (PushStatus::Stale, up3.version)
    );
    let again = set_mode(&mut b, "f.sh", up3.version, false);
    assert_eq!(again.status, PushStatus::Applied);
    assert_eq!(state_of(&mut a, "f.sh"), (again.version, false));
    assert_eq!(
        std::fs::read(server.user_dir(&a.user).join("f.sh")).expect("copy"),
        b"on the mode's version"
    );
    // New content from another device after the base, even with SetModes
    // after it: a Conflict, as before.
    let other = b.put("f.sh", b"b's edit", again.version).expect("b");
    let s = set_mode(&mut b, "f.sh", other.version, true);
    assert_eq!(s.status, PushStatus::Applied);
    let lost = a.put("f.sh", b"a's stale edit", again.version).expect("a");
    assert_eq!(lost.status, PushStatus::Conflict);
    // Moved after the base: a Conflict at the new path too.
    let r = b
        .push(Message::Rename(cloudservice::protocol::Rename {
            base_version: s.version,
            from: p("f.sh"),
            to: p("g.sh"),
        }))
        .expect("rename");
    assert_eq!(r.status, PushStatus::Applied);
    let moved = a.put("g.sh", b"a on the old place", s.version).expect("a");
    assert_eq!(moved.status, PushStatus::Conflict);
}

#[test]
///
fn r_15_3_4_random_uploads_and_mode_changes_follow_the_model() {
    let seed = common::seed("MODES_SEED");
    let mut rng = Rng::new(seed);
    let server = Server::start();
    let mut a = WireClient::new_user(server.addr);
    let mut b = WireClient::new_client(server.addr, a.user);
    let first = a.put("f", b"0", 0).expect("upload");
    // The model: the current version, the version of the current content,
    // who made the current version (true: a), the bit, the versions seen.
    let (mut current, mut content, mut by_a, mut exec) =
        (first.version, first.version, true, false);
    let mut seen = vec![first.version];
    for step in 1..=120u32 {
        let what = format!("seed {seed} step {step}");
        match rng.below(3) {
            0 => {
                let on = rng.chance(0.5);
                let ack = set_mode(&mut b, "f", current, on);
                if on == exec {
                    assert_eq!(ack.status, PushStatus::Unchanged, "{what}");
                } else {
                    assert_eq!(ack.status, PushStatus::Applied, "{what}");
                    (current, by_a, exec) = (ack.version, false, on);
                    seen.push(current);
                }
            }
            1 => {
                let data = format!("b {step}");
                let ack = b.put("f", data.as_bytes(), current).expect("b");
                assert_eq!(ack.status, PushStatus::Applied, "{what}");
                (current, content, by_a) = (ack.version, ack.version, false);
                seen.push(current);
            }
            _ => {
                let base = *rng.pick(&seen);
                let data = format!("a {step}");
                let ack = a.put("f", data.as_bytes(), base).expect("a");
                let applies = (content <= base && base <= current) || by_a;
                if applies {
                    assert_eq!(
                        (ack.status, ack.path.as_str()),
                        (PushStatus::Applied, "f"),
                        "{what}: base {base}, content {content}, current {current}"
                    );
                    (current, content, by_a) = (ack.version, ack.version, true);
                    seen.push(current);
                } else {
                    assert_eq!(
                        ack.status,
                        PushStatus::Conflict,
                        "{what}: base {base}, content {content}, current {current}"
                    );
                }
            }
        }
        if step % 30 == 0 {
            assert_eq!(state_of(&mut a, "f"), (current, exec), "{what}");
            let on_disk = disk_mode(&server, &a, "f") & 0o100 == 0o100;
            assert_eq!(on_disk, exec, "{what}: the server's copy");
        }
    }
}

#[test]
///
fn r_15_3_5_mode_changes_alone_do_not_make_a_delete_stale() {
    let server = Server::start();
    let mut a = WireClient::new_user(server.addr);
    let mut b = WireClient::new_client(server.addr, a.user);
    let delete = |c: &mut WireClient, path: &str, base: u64| {
        c.push(Message::Delete(cloudservice::protocol::Delete {
            base_version: base,
            path: p(path),
        }))
        .expect("Delete answered with a PushAck")
    };
    // SetMode by b after a's base: a's Delete is Applied (was Stale).
    let f = a.put("f.sh", b"f", 0).expect("f");
    let m = set_mode(&mut b, "f.sh", f.version, true);
    assert_eq!(m.status, PushStatus::Applied);
    let d = delete(&mut a, "f.sh", f.version);
    assert_eq!((d.status, d.path.as_str()), (PushStatus::Applied, "f.sh"));
    assert!(!server.user_dir(&a.user).join("f.sh").exists());
    // A content upload by b after the base: still Stale, the file stays.
    let g = a.put("g.sh", b"g", 0).expect("g");
    let m = set_mode(&mut b, "g.sh", g.version, true);
    let e = b.put("g.sh", b"g edited", m.version).expect("edit");
    assert_eq!(e.status, PushStatus::Applied);
    let d = delete(&mut a, "g.sh", g.version);
    assert_eq!((d.status, d.version), (PushStatus::Stale, e.version));
    // A rename by b after the base: a's Delete of the old name is
    // Unchanged (nothing there), the moved file stays.
    let h = a.put("h.sh", b"h", 0).expect("h");
    let r = b
        .push(Message::Rename(cloudservice::protocol::Rename {
            base_version: h.version,
            from: p("h.sh"),
            to: p("i.sh"),
        }))
        .expect("rename");
    assert_eq!(r.status, PushStatus::Applied);
    let d = delete(&mut a, "h.sh", h.version);
    assert_eq!(d.status, PushStatus::Unchanged);
    assert!(server.user_dir(&a.user).join("i.sh").exists());
}

#[test]
///
fn r_15_3_5_random_deletes_after_mode_changes_follow_the_model() {
    let seed = common::seed("MODES_SEED");
    let mut rng = Rng::new(seed);
    let server = Server::start();
    let mut a = WireClient::new_user(server.addr);
    let mut b = WireClient::new_client(server.addr, a.user);
    let first = a.put("f", b"0", 0).expect("upload");
    // The model, as for uploads: current version, version of the current
    // content, made by a, the versions the file had since it was created.
    let (mut current, mut content, mut by_a) = (first.version, first.version, true);
    let mut exec = false;
    let mut seen = vec![first.version];
    for step in 1..=150u32 {
        let what = format!("seed {seed} step {step}");
        match rng.below(3) {
            0 => {
                let on = !exec;
                let ack = set_mode(&mut b, "f", current, on);
                assert_eq!(ack.status, PushStatus::Applied, "{what}");
                (current, by_a, exec) = (ack.version, false, on);
                seen.push(current);
            }
            1 => {
                let ack = b
                    .put("f", format!("b {step}").as_bytes(), current)
                    .expect("b");
                assert_eq!(ack.status, PushStatus::Applied, "{what}");
                (current, content, by_a) = (ack.version, ack.version, false);
                seen.push(current);
            }
            _ => {
                let base = *rng.pick(&seen);
                let ack = a
                    .push(Message::Delete(cloudservice::protocol::Delete {
                        base_version: base,
                        path: p("f"),
                    }))
                    .expect("delete");
                let applies = (content <= base && base <= current) || by_a;
                if applies {
                    assert_eq!(ack.status, PushStatus::Applied, "{what}: base {base}");
                    // Created again by a: a new file, without the bit.
                    let again = a.put("f", format!("a {step}").as_bytes(), 0).expect("a");
                    assert_eq!(again.status, PushStatus::Applied, "{what}");
                    (current, content, by_a, exec) = (again.version, again.version, true, false);
                    seen = vec![current];
                } else {
                    assert_eq!(
                        (ack.status, ack.version),
                        (PushStatus::Stale, current),
                        "{what}: base {base}, content {content}, current {current}"
                    );
                }
            }
        }
    }
    assert_eq!(state_of(&mut a, "f"), (current, exec), "seed {seed}");
}
