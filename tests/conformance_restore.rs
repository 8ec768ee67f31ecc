//! Conformance of the server to PROTOCOL.md §14.3 for what a restore
//! places and keeps: a file comes back with its content and executable bit
//! as one change and keeps only the state it replaced.

mod common;

use cloudservice::protocol::{
    KeptKind, KeptVersion, ListVersions, Message, PushStatus, Restore, SetMode,
};
use common::{p, Server, WireClient};
use std::os::unix::fs::PermissionsExt;

/// Every kept entry at or below `under`.
fn list_all(c: &mut WireClient, under: &str) -> Vec<KeptVersion> {
    let mut request = ListVersions {
        after_seq: 0,
        after: None,
        under: Some(p(under)),
    };
    let mut all = Vec::new();
    loop {
        let rid = c.send(Message::ListVersions(request.clone()));
        let page = match c.reply(rid) {
            Message::VersionList(page) => page,
            other => panic!("expected VersionList, got {other:?}"),
        };
        if let Some(last) = page.entries.last() {
            request.after_seq = last.seq;
            request.after = Some(last.path.clone());
        }
        let more = page.more;
        all.extend(page.entries);
        if !more {
            return all;
        }
    }
}

fn set_mode(c: &mut WireClient, path: &str, base: u64, executable: bool) -> u64 {
    let ack = c
        .push(Message::SetMode(SetMode {
            base_version: base,
            executable,
            path: p(path),
        }))
        .expect("SetMode answered with a PushAck");
    assert_eq!(ack.status, PushStatus::Applied, "{ack:?}");
    ack.version
}

/// The content and executable bit of the server's copy of `path`.
fn server_copy(server: &Server, c: &WireClient, path: &str) -> (Vec<u8>, bool) {
    let file = server.user_dir(&c.user).join(path);
    let bytes = std::fs::read(&file).expect("server copy");
    let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
    (bytes, mode & 0o100 != 0)
}

/// (size, executable) of each kept file entry, in listing order.
fn kept_states(entries: &[KeptVersion]) -> Vec<(u64, u64, bool)> {
    entries
        .iter()
        .filter_map(|e| match e.kind {
            KeptKind::File {
                size, executable, ..
            } => Some((e.seq, size, executable)),
            KeptKind::Dir => None,
        })
        .collect()
}

fn restore(c: &mut WireClient, seq: u64, path: &str) -> cloudservice::protocol::PushAck {
    c.push(Message::Restore(Restore { seq, path: p(path) }))
        .expect("Restore answered with a PushAck")
}

/// A deleted executable file comes back executable as the one change after
/// the deletion, and nothing new is kept (nothing was at the path); a
/// non-executable version restored over an executable file is one change
/// too, and the one version it keeps is the file it replaced, with its bit
/// (outside tester breaker10: two changes, and the content without the bit
/// kept as a version the file never had).
///
#[test]
fn r_14_3_6_a_restore_is_one_change_with_content_and_bit() {
    let server = Server::start();
    let mut c = WireClient::new_user(server.addr);
    let v1 = c.put("s.sh", b"#!/bin/sh\n", 0).expect("put").version;
    let x = set_mode(&mut c, "s.sh", v1, true);
    let rid = c.send(Message::Delete(cloudservice::protocol::Delete {
        base_version: x,
        path: p("s.sh"),
    }));
    let deleted = match c.reply(rid) {
        Message::PushAck(ack) => ack.version,
        other => panic!("expected PushAck, got {other:?}"),
    };
    let before = list_all(&mut c, "s.sh");
    let ack = restore(&mut c, deleted, "s.sh");
    assert_eq!(ack.status, PushStatus::Applied, "{ack:?}");
    assert_eq!(ack.version, deleted + 1, "one change");
    let (head, _, _) = c.pull(0);
    assert_eq!(head, deleted + 1, "one change");
    assert_eq!(
        server_copy(&server, &c, "s.sh"),
        (b"#!/bin/sh\n".to_vec(), true)
    );
    assert_eq!(list_all(&mut c, "s.sh"), before, "no version kept");

    // The reverse: 'one' (not executable) over 'two!' (executable).
    let v1 = c.put("t.sh", b"one", 0).expect("put").version;
    let v2 = c.put("t.sh", b"two!", v1).expect("put").version;
    set_mode(&mut c, "t.sh", v2, true);
    let before = list_all(&mut c, "t.sh");
    let ack = restore(&mut c, v2, "t.sh");
    let (head, _, _) = c.pull(0);
    assert_eq!((ack.version, head), (head, ack.version));
    assert_eq!(
        ack.version,
        before.iter().map(|e| e.seq).max().unwrap_or(0) + 1,
        "one change"
    );
    assert_eq!(server_copy(&server, &c, "t.sh"), (b"one".to_vec(), false));
    let after = list_all(&mut c, "t.sh");
    assert_eq!(after[..before.len()], before[..]);
    // Kept by the restore: 'two!' (4 bytes), executable; nothing else.
    assert_eq!(
        kept_states(&after[before.len()..]),
        vec![(ack.version, 4, true)]
    );
}
