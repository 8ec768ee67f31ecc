//! Conformance of the real server with PROTOCOL.md §6 (paths) and §8
//! (limits): the rules P1–P13 written out again here from the spec (not
//! taken from src/protocol/path.rs) decide a few hundred random paths, and
//! the server must agree with every decision.

mod common;

use common::raw::*;
use common::{Rng, Server};
use std::net::SocketAddr;

/// §6.1, from the spec's table: `None` if `path` is legal, else the rule.
fn oracle(path: &[u8]) -> Option<&'static str> {
    let Ok(text) = std::str::from_utf8(path) else {
        return Some("P1");
    };
    if text.is_empty() {
        return Some("P2");
    }
    if path.len() > 4096 {
        return Some("P3");
    }
    if text.starts_with('/') {
        return Some("P4");
    }
    if text.contains('\0') {
        return Some("P5");
    }
    if text.contains('\\') {
        return Some("P6");
    }
    if text
        .chars()
        .any(|c| ('\u{1}'..='\u{1f}').contains(&c) || c == '\u{7f}')
    {
        return Some("P7");
    }
    let parts: Vec<&str> = text.split('/').collect();
    if parts.len() > 64 {
        return Some("P8");
    }
    if parts.iter().any(|p| p.is_empty()) {
        return Some("P9");
    }
    if parts.contains(&".") {
        return Some("P10");
    }
    if parts.contains(&"..") {
        return Some("P11");
    }
    if parts.iter().any(|p| p.len() > 255) {
        return Some("P12");
    }
    if parts[0] == ".cloudservice" {
        return Some("P13");
    }
    None
}

/// A random path built from pieces that sit on the rules' edges.
fn random_path(rng: &mut Rng) -> Vec<u8> {
    const PIECES: &[&[u8]] = &[
        b"a",
        b"dir",
        b".",
        b"..",
        b"...",
        b".hidden",
        b".cloudservice",
        b"",
        b"x y",
        b"caf\xc3\xa9",
        b"\xf0\x9f\x93\x81",
        b"a\\b",
        b"nul\0",
        b"tab\t",
        b"del\x7f",
        b"c1\xc2\x80ok",
        b"bad\xff",
        b"half\xc3",
    ];
    let parts = 1 + rng.index(4);
    let mut out = Vec::new();
    if rng.index(12) == 0 {
        out.push(b'/');
    }
    for i in 0..parts {
        if i > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(PIECES[rng.index(PIECES.len())]);
    }
    if rng.index(12) == 0 {
        out.push(b'/');
    }
    out
}

/// Tries MakeDir of `path`: `Ok(status)` or `Err(error code)`; a refusal
/// must close the connection.
fn try_make_dir(addr: SocketAddr, user: [u8; 16], path: &[u8]) -> Result<u8, u16> {
    let (mut c, _) = Raw::join(addr, user);
    c.send(&frame(MAKE_DIR, 2, &path_field(path)));
    let f = c.next_reply();
    if f.kind == PUSH_ACK {
        Ok(f.payload[0])
    } else {
        c.expect_closed();
        Err(f.error_code().unwrap_or(0))
    }
}

/// 300 random paths: the server accepts exactly those the spec's rules
/// accept, refuses the rest with BadPath and a close, and applies nothing
/// of a refused frame; each accepted path is listed back byte for byte.
#[test]
///
fn r_6_1_1_the_server_applies_exactly_the_path_rules() {
    let server = Server::start();
    let (mut a, user, _) = Raw::new_user(server.addr);
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    let mut accepted = std::collections::BTreeSet::new();
    let mut refused = 0;
    for i in 0..300 {
        let path = random_path(&mut rng);
        let want = oracle(&path);
        // Refusals go on fresh connections; the guess limiter counts only
        // failed Hellos, so joining many times is fine.
        let got = try_make_dir(server.addr, user, &path);
        match (want, got) {
            (None, Ok(status)) => {
                assert!(
                    status == 0 || status == 1 || status == 3,
                    "{path:?}: status {status}"
                );
                if status != 1 {
                    accepted.insert(String::from_utf8(path).expect("legal is UTF-8"));
                }
            }
            (Some(rule), Err(code)) => {
                assert_eq!(code, BAD_PATH, "#{i} {path:?} ({rule})");
                refused += 1;
            }
            (want, got) => panic!(
                "#{i} {:?}: spec says {want:?}, server {got:?}",
                String::from_utf8_lossy(&path)
            ),
        }
    }
    assert!(
        refused > 50 && accepted.len() > 20,
        "{refused} refused, {} accepted",
        accepted.len()
    );
    let listed: std::collections::BTreeSet<String> =
        entries(&a.pull(9, 0)).into_iter().map(|e| e.path).collect();
    for p in &accepted {
        assert!(listed.contains(p), "{p:?} accepted but not listed");
    }
    for p in &listed {
        assert_eq!(
            oracle(p.as_bytes()),
            None,
            "server lists an illegal path {p:?}"
        );
    }
}

/// The spec's own examples: every "Allowed" path is stored, every
/// "Refused" one is BadPath, also in an upload's FileBegin (nothing stored).
#[test]
///
fn r_6_1_1_the_spec_examples() {
    let server = Server::start();
    let (mut a, user, _) = Raw::new_user(server.addr);
    for ok in [
        "a",
        "dir/file.txt",
        ".hidden",
        "...",
        "with space/x y",
        "naïve café/ünï cödé 📁.bin",
        "a/.cloudservice",
    ] {
        assert_eq!(oracle(ok.as_bytes()), None);
        assert_eq!(
            try_make_dir(server.addr, user, ok.as_bytes()).map(|s| s != 1),
            Ok(true),
            "{ok}"
        );
    }
    for bad in [
        "",
        "/etc/passwd",
        "a\\b",
        "a/./b",
        "../x",
        "a/../../x",
        "a//b",
        "a/",
        ".cloudservice/index",
    ] {
        assert!(oracle(bad.as_bytes()).is_some());
        assert_eq!(
            try_make_dir(server.addr, user, bad.as_bytes()),
            Err(BAD_PATH),
            "{bad:?}"
        );
        let (mut c, _) = Raw::join(server.addr, user);
        let mut payload = vec![0u8; 16];
        payload.extend_from_slice(blake3::hash(b"").as_bytes());
        payload.extend_from_slice(&path_field(bad.as_bytes()));
        c.send(&frame(FILE_BEGIN, 3, &payload));
        c.send(&frame(FILE_END, 3, &[]));
        assert_eq!(c.next_reply().error_code(), Some(BAD_PATH), "{bad:?}");
        c.expect_closed();
    }
    let listed: Vec<String> = entries(&a.pull(2, 0)).into_iter().map(|e| e.path).collect();
    assert!(listed.iter().all(|p| oracle(p.as_bytes()).is_none()));
    assert!(!listed
        .iter()
        .any(|p| p.contains("etc") || p.contains("index")));
}

/// The limits: 64 components and 255-byte components are legal, one more
/// is BadPath; a 4,097-byte path is BadPath; a payload of 1,048,577 bytes
/// is BadFrame.
#[test]
fn r_8_1_limits_are_the_tables_numbers() {
    let server = Server::start();
    let (_, user, _) = Raw::new_user(server.addr);
    let deep64 = vec!["d"; 64].join("/");
    let deep65 = vec!["d"; 65].join("/");
    let wide255 = "w".repeat(255);
    let wide256 = "w".repeat(256);
    let long4097 = vec!["l".repeat(255); 17].join("/")[..4097].to_string();
    assert_eq!(try_make_dir(server.addr, user, deep64.as_bytes()), Ok(0));
    assert_eq!(
        try_make_dir(server.addr, user, deep65.as_bytes()),
        Err(BAD_PATH)
    );
    assert_eq!(try_make_dir(server.addr, user, wide255.as_bytes()), Ok(0));
    assert_eq!(
        try_make_dir(server.addr, user, wide256.as_bytes()),
        Err(BAD_PATH)
    );
    assert_eq!(
        try_make_dir(server.addr, user, long4097.as_bytes()),
        Err(BAD_PATH)
    );
    let (mut c, _) = Raw::join(server.addr, user);
    let mut header = frame(FILE_CHUNK, 4, &[]);
    header[8..12].copy_from_slice(&1_048_577u32.to_be_bytes());
    c.send(&header);
    assert_eq!(c.next_reply().error_code(), Some(BAD_FRAME));
    c.expect_closed();
}

/// The longest legal path (4,096 bytes) is stored like any other.
#[test]
///
fn r_8_1_the_longest_legal_path_is_stored() {
    let server = Server::start();
    let (mut a, user, _) = Raw::new_user(server.addr);
    let path = format!(
        "a/{}/{}",
        vec!["p".repeat(255); 15].join("/"),
        "p".repeat(254)
    );
    assert_eq!(path.len(), 4096);
    assert_eq!(oracle(path.as_bytes()), None);
    assert_eq!(try_make_dir(server.addr, user, path.as_bytes()), Ok(0));
    let file = format!("{}q", &path[..4095]);
    a.send(&upload(3, 0, b"deep", &file, 8));
    assert_eq!(a.expect_ack(3).0, 0);
}
