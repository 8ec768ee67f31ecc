//! Conformance of the server with PROTOCOL.md §4.6 (device credentials):
//! KeyHello/KeyWelcome byte by byte, device keys, join codes made by
//! `cloud-server rotate-join`, revocation by `cloud-server revoke` on the
//! running server, and the guess limiter on wrong keys. Also the real
//! client against a revocation (it stops and changes nothing).

mod common;

use common::raw::*;
use common::{actor_threads, eventually, tree, write, Client, Server, Verbosity};
use std::time::{Duration, Instant};

/// A user made with KeyHello NewUser: (connection, user, device 1's key).
fn keyed_user(server: &Server) -> (Raw, [u8; 16], [u8; 32]) {
    let (c, user, client, key) = Raw::key_new_user(server.addr);
    assert_eq!(client, 1);
    (c, user, key)
}

/// A KeyHello NewClient with `secret`: the KeyWelcome's (client, key).
fn key_join(server: &Server, user: [u8; 16], secret: [u8; 32]) -> (Raw, u64, [u8; 32]) {
    let mut c = Raw::connect(server.addr);
    c.send(&key_hello(1, 2, user, 0, secret, b"phone"));
    let w = c.expect(KEY_WELCOME, 1);
    assert_eq!(&w.payload[0..16], &user);
    (c, w.u64_at(16), welcome_key(&w))
}

/// Sends `hello` on a new connection; the server must answer Error `code`
/// with request ID 1 and close.
fn refused(server: &Server, hello: &[u8], code: u16) {
    let mut c = Raw::connect(server.addr);
    c.send(hello);
    c.expect_error(code, 1);
    c.expect_closed();
}

/// `key` with one random bit flipped.
fn flipped(key: [u8; 32], rng: &mut common::Rng) -> [u8; 32] {
    let mut other = key;
    let bit = rng.below(256) as usize;
    other[bit / 8] ^= 1 << (bit % 8);
    other
}

/// The join code `cloud-server rotate-join` printed (`USER:CODE`).
fn rotate(server: &Server, user: &[u8; 16]) -> [u8; 32] {
    let out = server.admin("rotate-join", &[&hex(user)]);
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("new devices join with: "))
        .expect("the USER:CODE line");
    let (u, code) = line.split_once(':').expect("USER:CODE");
    assert_eq!(u, hex(user));
    let bytes: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&code[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    bytes.try_into().expect("32 bytes")
}

#[test]
///
fn r_4_6_1_each_new_device_gets_its_own_random_key() {
    let server = Server::start();
    let (_a, user, key1) = keyed_user(&server);
    let (_b, client2, key2) = key_join(&server, user, [0; 32]);
    let (_c, client3, key3) = key_join(&server, user, [0; 32]);
    assert_eq!((client2, client3), (2, 3));
    for key in [key1, key2, key3] {
        assert_ne!(key, [0; 32], "never the all-zero key");
    }
    assert!(key1 != key2 && key2 != key3 && key1 != key3);
    // Only digests are kept, in a file only the server's user can read.
    let table = server
        .data
        .join(".cloudservice-server")
        .join(hex(&user))
        .join("devices.json");
    let text = std::fs::read_to_string(&table).expect("devices.json");
    for key in [key1, key2, key3] {
        let key_hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!text.contains(&key_hex), "a key in clear: {text}");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&table)
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "devices.json mode {mode:o}");
    assert!(text.contains("\"phone\""), "the device's name: {text}");
}

#[test]
///
fn r_4_6_2_resume_needs_the_devices_own_key() {
    let server = Server::start();
    // Each connection is closed before its device resumes again: one live
    // connection per device (R-4.6.13, tested below).
    let (_, user, key) = keyed_user(&server);
    let (_, client2, key2) = key_join(&server, user, [0; 32]);
    // The right key: KeyWelcome, same device, no new key.
    let (_, w) = Raw::key_resume(server.addr, user, 1, key);
    assert_eq!((w.kind, w.rid), (KEY_WELCOME, 1), "{w:?}");
    assert_eq!((w.u64_at(16), welcome_key(&w)), (1, [0; 32]));
    // Another device's key, a flipped bit, the zero secret: BadCredential.
    let mut rng = common::Rng::new(common::seed("DEVICES_SEED"));
    let mut wrong = vec![key2, [0; 32]];
    wrong.extend((0..5).map(|_| flipped(key, &mut rng)));
    for secret in wrong {
        refused(
            &server,
            &key_hello(1, 3, user, 1, secret, b""),
            BAD_CREDENTIAL,
        );
    }
    let (_, w) = Raw::key_resume(server.addr, user, client2, key2);
    assert_eq!(w.kind, KEY_WELCOME, "device 2 is untouched: {w:?}");
    // A keyless device (joined with a plain Hello) gets a key with its first
    // zero-secret KeyHello; then only that key opens it.
    let (_, keyless) = Raw::join(server.addr, user);
    refused(
        &server,
        &key_hello(1, 3, user, keyless, [7; 32], b""),
        BAD_CREDENTIAL,
    );
    let (_, w) = Raw::key_resume(server.addr, user, keyless, [0; 32]);
    assert_eq!(w.kind, KEY_WELCOME, "{w:?}");
    let given = welcome_key(&w);
    assert_ne!(given, [0; 32]);
    let (_, w) = Raw::key_resume(server.addr, user, keyless, given);
    assert_eq!((w.kind, welcome_key(&w)), (KEY_WELCOME, [0; 32]));
    refused(
        &server,
        &key_hello(1, 3, user, keyless, [0; 32], b""),
        BAD_CREDENTIAL,
    );
}

#[test]
///
fn r_4_6_3_the_user_id_alone_no_longer_resumes_a_keyed_device() {
    let server = Server::start();
    let (_, user, _key) = keyed_user(&server);
    refused(&server, &hello(1, 3, user, 1), BAD_CREDENTIAL);
    // A keyless device still resumes with a plain Hello (its joining
    // connection closed first, R-4.6.13).
    let (_, keyless) = Raw::join(server.addr, user);
    let mut c = Raw::connect(server.addr);
    c.send(&hello(1, 3, user, keyless));
    assert_eq!(c.expect(WELCOME, 1).u64_at(16), keyless);
}

#[test]
///
fn r_4_6_4_a_rotated_join_code_is_needed_to_join() {
    let server = Server::start();
    let (_, user, key) = keyed_user(&server);
    // No code yet: a non-zero secret is refused, a zero one joins.
    refused(
        &server,
        &key_hello(1, 2, user, 0, [9; 32], b""),
        BAD_CREDENTIAL,
    );
    key_join(&server, user, [0; 32]);
    let first = rotate(&server, &user);
    refused(
        &server,
        &key_hello(1, 2, user, 0, [0; 32], b""),
        BAD_CREDENTIAL,
    );
    refused(&server, &hello(1, 2, user, 0), BAD_CREDENTIAL);
    refused(
        &server,
        &key_hello(1, 2, user, 0, [9; 32], b""),
        BAD_CREDENTIAL,
    );
    let (_b, client, _) = key_join(&server, user, first);
    assert_eq!(client, 3);
    // A new code retires the old one; registered devices do not notice.
    let second = rotate(&server, &user);
    refused(
        &server,
        &key_hello(1, 2, user, 0, first, b""),
        BAD_CREDENTIAL,
    );
    assert_eq!(key_join(&server, user, second).1, 4);
    let (_c, w) = Raw::key_resume(server.addr, user, 1, key);
    assert_eq!(w.kind, KEY_WELCOME, "{w:?}");
    // The command refuses a user that does not exist.
    let out = server.admin_output("rotate-join", &["00112233445566778899aabbccddeeff"]);
    assert!(!out.status.success());
}

/// The code `cloud-server invite` printed (`USER:CODE`).
fn invite(server: &Server, user: &[u8; 16]) -> [u8; 32] {
    let out = server.admin("invite", &[&hex(user)]);
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("one device joins with: "))
        .expect("the USER:CODE line");
    let code = line.split_once(':').expect("USER:CODE").1;
    let bytes: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&code[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    bytes.try_into().expect("32 bytes")
}

/// The text of the Error `BadCredential` answering `hello` (request ID 1).
fn refusal_text(server: &Server, hello: &[u8]) -> Vec<u8> {
    let mut c = Raw::connect(server.addr);
    c.send(hello);
    let f = c.next_reply();
    assert_eq!(
        (f.kind, f.error_code(), f.rid),
        (ERROR, Some(BAD_CREDENTIAL), 1),
        "{f:?}"
    );
    f.payload[4..].to_vec()
}

#[test]
///
fn r_4_6_11_a_used_invite_a_retired_one_and_a_wrong_code_get_one_answer() {
    let server = Server::start();
    let (_a, user, _) = keyed_user(&server);
    let used = invite(&server, &user);
    key_join(&server, user, used);
    let retired = invite(&server, &user);
    rotate(&server, &user);
    let mut rng = common::Rng::new(common::seed("R_4_6_11_SEED"));
    let mut wrong = [0u8; 32];
    wrong.iter_mut().for_each(|b| *b = rng.below(256) as u8);
    let texts: Vec<Vec<u8>> = [used, retired, wrong]
        .iter()
        .map(|code| refusal_text(&server, &key_hello(1, 2, user, 0, *code, b"")))
        .collect();
    assert_eq!(texts[0], texts[1], "a used invite answers as a retired one");
    assert_eq!(texts[0], texts[2], "a used invite answers as a wrong code");
    let text = String::from_utf8_lossy(&texts[0]);
    assert!(
        text.contains("bad join code") && text.contains("unused invite") && text.contains("once"),
        "the text names every reason: {text}"
    );
}

#[test]
///
fn r_4_6_10_an_invite_lets_exactly_one_device_join() {
    let server = Server::start();
    let (_a, user, _) = keyed_user(&server);
    // Without a join code, and with one.
    let first = invite(&server, &user);
    let (_b, client, key) = key_join(&server, user, first);
    assert_eq!(client, 2);
    assert_ne!(key, [0; 32]);
    refused(
        &server,
        &key_hello(1, 2, user, 0, first, b""),
        BAD_CREDENTIAL,
    );
    let code = rotate(&server, &user);
    let second = invite(&server, &user);
    let third = invite(&server, &user);
    assert_ne!(second, third);
    assert_eq!(key_join(&server, user, second).1, 3);
    refused(
        &server,
        &key_hello(1, 2, user, 0, second, b""),
        BAD_CREDENTIAL,
    );
    assert_eq!(
        key_join(&server, user, code).1,
        4,
        "the join code still works"
    );
    // A new join code retires the unused invite.
    rotate(&server, &user);
    refused(
        &server,
        &key_hello(1, 2, user, 0, third, b""),
        BAD_CREDENTIAL,
    );
}

/// Waits for `c`'s Error `Revoked` (request ID 0) and the close; returns
/// when the Error arrived.
fn revoked_at(c: &mut Raw) -> Instant {
    let f = c.next_reply();
    let at = Instant::now();
    assert_eq!(
        (f.kind, f.error_code(), f.rid),
        (ERROR, Some(REVOKED), 0),
        "{f:?}"
    );
    c.expect_closed();
    at
}

#[test]
///
fn r_4_6_5_a_revoked_device_is_closed_within_a_second_and_refused() {
    let server = Server::start();
    let (mut a, user, key) = keyed_user(&server);
    let (mut b, client2, key2) = key_join(&server, user, [0; 32]);
    a.ping_pong(2);
    let listing = server.admin("devices", &[&hex(&user)]);
    assert!(
        listing.contains("phone") && listing.contains("active"),
        "{listing}"
    );
    let start = Instant::now();
    let said = server.admin("revoke", &[&hex(&user), "1"]);
    assert!(said.contains("revoked device 1"), "{said}");
    // No join code yet: the user ID alone still joins, and revoke says so.
    assert!(
        said.contains(&format!(
            "rotate-join {} {}",
            server.data.display(),
            hex(&user)
        )),
        "{said}"
    );
    let closed = revoked_at(&mut a);
    assert!(
        closed - start < Duration::from_secs(1),
        "closed {:?} after the command",
        closed - start
    );
    // Its key is refused, with or without it; the other device goes on.
    refused(&server, &key_hello(1, 3, user, 1, key, b""), REVOKED);
    refused(&server, &hello(1, 3, user, 1), REVOKED);
    b.ping_pong(2);
    // Device 2 resumes once its first connection is closed.
    drop(b);
    let (_c, w) = Raw::key_resume(server.addr, user, client2, key2);
    assert_eq!(w.kind, KEY_WELCOME);
    let log = server.wait_log("revoked by the operator");
    assert!(log.contains("request=revoke"), "{log}");
    let listing = server.admin("devices", &[&hex(&user)]);
    let row = listing
        .lines()
        .find(|l| l.starts_with("1 "))
        .expect("device 1 listed");
    assert!(row.contains("revoked"), "{listing}");
    // Unknown device or user: a clear error, nothing written.
    assert!(!server
        .admin_output("revoke", &[&hex(&user), "9"])
        .status
        .success());
    // Reinstated: the key works again.
    server.admin("reinstate", &[&hex(&user), "1"]);
    assert!(eventually(Duration::from_secs(5), || {
        let (_d, w) = Raw::key_resume(server.addr, user, 1, key);
        w.kind == KEY_WELCOME
    }));
}

/// Resumes device `client` until a connection is admitted and stays open
/// for 400 ms. `Busy` (a revocation changing, R-4.6.5), `DeviceInUse`
/// (the previous connection not yet seen closed) and a close are retried
/// for up to 5 s; `Revoked` at any point fails the test: the device is
/// not revoked.
fn resume_settled(server: &Server, user: [u8; 16], client: u64, key: [u8; 32]) -> Raw {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let (mut c, reply) = Raw::key_resume(server.addr, user, client, key);
        assert_ne!(
            reply.error_code(),
            Some(REVOKED),
            "a reinstated device's Resume was refused as revoked"
        );
        if reply.kind == KEY_WELCOME {
            match c.read(Duration::from_millis(400)) {
                Got::Timeout => return c,
                Got::Frame(f) => assert_ne!(
                    f.error_code(),
                    Some(REVOKED),
                    "a reinstated device was admitted, then closed as revoked: {:?}",
                    String::from_utf8_lossy(&f.payload)
                ),
                Got::Closed => {}
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("device {client} was not admitted within 5 s of its reinstatement");
}

#[test]
///
fn r_4_6_5_a_resume_right_after_reinstate_is_never_told_revoked() {
    // The server learns of revocations by listing them every 100 ms; a
    // Resume right after `reinstate` found the device active on disk, was
    // admitted, then closed with `Revoked` from the stale listing, and the
    // real client stopped for good (outside tester, 3/3).
    let server = Server::start();
    let (mut a, user, _key) = keyed_user(&server);
    let (b, client2, key2) = key_join(&server, user, [0; 32]);
    a.ping_pong(2);
    drop(b);
    for _ in 0..5 {
        let c = resume_settled(&server, user, client2, key2);
        server.admin("revoke", &[&hex(&user), &client2.to_string()]);
        let mut c = c;
        revoked_at(&mut c);
        // Let the watcher's listing hold the revocation, then lift it and
        // resume at once, inside the listing's period.
        std::thread::sleep(Duration::from_millis(300));
        server.admin("reinstate", &[&hex(&user), &client2.to_string()]);
        drop(resume_settled(&server, user, client2, key2));
    }
    // And a device revoked for real is still told so.
    server.admin("revoke", &[&hex(&user), &client2.to_string()]);
    refused(&server, &key_hello(1, 3, user, client2, key2, b""), REVOKED);
    a.ping_pong(3);
}

#[test]
///
fn r_4_6_6_wrong_keys_feed_the_guess_limiter() {
    let server = Server::start();
    // Closed at once: no live connection to probe.
    let (_, user, key) = keyed_user(&server);
    let (_, client2, key2) = key_join(&server, user, [0; 32]);
    let code = rotate(&server, &user);
    let mut rng = common::Rng::new(common::seed("DEVICES_SEED"));
    for _ in 0..10 {
        refused(
            &server,
            &key_hello(1, 3, user, 1, flipped(key, &mut rng), b""),
            BAD_CREDENTIAL,
        );
    }
    // The address is now refused without a lookup: every handshake that
    // does not prove a device key gets the retryable TooManyAttempts,
    // whatever the ID (a real one, a random one, the right join code).
    let stranger: [u8; 16] = std::array::from_fn(|_| rng.below(256) as u8);
    for hello in [
        key_hello(1, 2, user, 0, code, b""),
        key_hello(1, 2, stranger, 0, code, b""),
        hello(1, 2, user, 0),
        hello(1, 3, user, 1),
        key_hello(1, 3, user, 1, [0; 32], b""),
    ] {
        let mut c = Raw::connect(server.addr);
        c.send(&hello);
        let f = c.expect_error(TOO_MANY_ATTEMPTS, 1);
        let text = String::from_utf8_lossy(&f.payload[4..]).into_owned();
        assert!(
            text.contains("too many failed attempts") && text.contains(" s"),
            "{text}"
        );
        c.expect_closed();
    }
    // A device that proves its 256-bit key is not locked out by guesses
    // made from its address: both devices resume.
    let (_, w) = Raw::key_resume(server.addr, user, 1, key);
    assert_eq!(w.kind, KEY_WELCOME);
    let (_, w) = Raw::key_resume(server.addr, user, client2, key2);
    assert_eq!(w.kind, KEY_WELCOME);
    // A wrong key, a wrong device or a random user from the limited
    // address learns nothing: the same refusal, and guessing goes on
    // being refused.
    for hello in [
        key_hello(1, 3, user, 1, flipped(key, &mut rng), b""),
        key_hello(1, 3, user, 9, key, b""),
        key_hello(1, 3, stranger, 1, key, b""),
    ] {
        refused(&server, &hello, TOO_MANY_ATTEMPTS);
    }
    let (_e, w) = Raw::key_resume(server.addr, user, 1, key);
    assert_eq!(w.kind, KEY_WELCOME);
}

/// Revoke-to-close latency: N devices of one user, each with a Ready
/// connection, revoked one by one; each close within a second. Prints the
/// median (the figure README quotes).
#[test]
fn revocation_latency_is_under_a_second() {
    const N: usize = 15;
    let server = Server::start();
    let (_a, user, _) = keyed_user(&server);
    let mut times = Vec::new();
    for _ in 0..N {
        let (mut c, client, _) = key_join(&server, user, [0; 32]);
        c.ping_pong(2);
        let start = Instant::now();
        server.admin("revoke", &[&hex(&user), &client.to_string()]);
        let took = revoked_at(&mut c) - start;
        assert!(took < Duration::from_secs(1), "{took:?}");
        times.push(took);
    }
    times.sort();
    println!(
        "revoke-to-close over {N} runs: median {:?}, max {:?}",
        times[N / 2],
        times[N - 1]
    );
}

#[test]
///
fn r_4_6_9_a_revoked_client_stops_and_changes_nothing() {
    // Over TLS, as a device runs by default.
    let server = Server::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a).expect("a");
    std::fs::create_dir_all(&b).expect("b");
    write(&a, "notes.txt", "mine");
    write(&a, "sub/deep.txt", "deeper");
    let user = common::new_user(server.port, &a);
    let mut client_b = Client::options(server.port, &b)
        .user(Some(&user))
        .verbosity(Verbosity::Quiet)
        .capture_stderr()
        .start();
    // Every file, not one: downloads are placed as their fsyncs come back,
    // in no fixed order.
    let want = tree(&a);
    assert!(eventually(Duration::from_secs(20), || tree(&b) == want));
    let before = tree(&b);
    let server_before = tree(&server.user_dir(&user));
    server.admin("revoke", &[&user, "2"]);
    let status = client_b.wait_exit(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| !s.success()),
        "stops with an error: {status:?}"
    );
    let said = client_b.stderr_lines().join("\n");
    assert!(said.contains("revoked"), "a clear message: {said}");
    assert_eq!(tree(&b), before, "nothing changed in the folder");
    assert_eq!(tree(&server.user_dir(&user)), server_before);
    // Started again, it is refused at once and still changes nothing.
    let out = Client::options(server.port, &b).rate("0.2").run_once();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("revoked"));
    assert_eq!(tree(&b), before);
}

/// The outside tester's F1 with the real binaries: two devices of a user
/// and a device of another user run from 127.0.0.1; eleven joins with a
/// stale join code from the same address are refused (the last one with
/// the retryable TooManyAttempts); then every device restarts (a reboot,
/// a blip) while the address is refused: each comes back with its device
/// key and keeps syncing.
#[test]
///
fn r_2_2_4_bad_joins_from_an_address_do_not_stop_its_devices() {
    let server = Server::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b, g) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("g"),
    );
    for d in [&a, &b, &g] {
        std::fs::create_dir_all(d).expect("folder");
    }
    write(&a, "one.txt", "1");
    write(&g, "g.txt", "g");
    let user = common::new_user(server.port, &a);
    let other = common::new_user(server.port, &g);
    let joined = Client::options(server.port, &b)
        .user(Some(&user))
        .run_once();
    assert!(joined.status.success(), "{joined:?}");
    server.admin("rotate-join", &[&user]);
    let mut devices: Vec<Client> = [&a, &b, &g]
        .iter()
        .map(|d| Client::start(server.port, d, None))
        .collect();
    let stale = format!("{user}:{}", "0".repeat(64));
    let mut last = String::new();
    for i in 0..11 {
        let w = dir.path().join(format!("w{i}"));
        std::fs::create_dir_all(&w).expect("folder");
        let out = Client::options(server.port, &w)
            .user(Some(&stale))
            .run_once();
        assert!(!out.status.success(), "join {i} refused");
        last = String::from_utf8_lossy(&out.stderr).into_owned();
    }
    assert!(
        last.contains("TooManyAttempts") && last.contains("too many failed attempts"),
        "{last}"
    );
    for device in &mut devices {
        device.restart();
    }
    write(&a, "after.txt", "written after the guesses");
    write(&g, "g2.txt", "other user");
    assert!(
        eventually(Duration::from_secs(20), || {
            std::fs::read(b.join("after.txt")).is_ok_and(|c| c == b"written after the guesses")
                && std::fs::read(server.user_dir(&other).join("g2.txt"))
                    .is_ok_and(|c| c == b"other user")
        }),
        "devices stopped syncing: {}",
        devices[1].log_tail(2_000)
    );
    for device in &mut devices {
        assert!(device.is_running());
        device.stop();
    }
}

/// `last_seen` (Unix seconds) of `device` in the user's device table.
fn last_seen(server: &Server, user: &str, device: u64) -> (u64, u64) {
    let file = server
        .data
        .join(".cloudservice-server")
        .join(user)
        .join("devices.json");
    let text = std::fs::read_to_string(&file).expect("devices.json");
    let table: serde_json::Value = serde_json::from_str(&text).expect("json");
    let entry = table["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .find(|d| d["id"].as_u64() == Some(device))
        .expect("the device");
    (
        entry["joined"].as_u64().expect("joined"),
        entry["last_seen"].as_u64().expect("last_seen"),
    )
}

/// LAST SEEN of `cloud-server devices` follows a device that stays
/// connected and keeps pushing, and its disconnection (outside tester's
/// finding 5: it never moved past the join time). Written back at most
/// once a minute, so this test runs for about 70 s.
#[test]
fn last_seen_follows_a_device_that_stays_connected() {
    let server = Server::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let a = dir.path().join("a");
    std::fs::create_dir_all(&a).expect("a");
    write(&a, "first.txt", "first");
    let user = common::new_user(server.port, &a);
    let (joined, seen) = last_seen(&server, &user, 1);
    assert!(seen >= joined);
    let mut client = Client::options(server.port, &a)
        .verbosity(Verbosity::Quiet)
        .start();
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(66) {
        n += 1;
        write(&a, &format!("edit{}.txt", n % 3), format!("edit {n}"));
        std::thread::sleep(Duration::from_secs(3));
    }
    // Connected the whole time (no reconnect), pushing: seen a minute on.
    let (_, seen) = last_seen(&server, &user, 1);
    assert!(
        seen >= joined + 60,
        "last seen {seen} moved less than a minute past joined {joined}"
    );
    let listing = server.admin("devices", &[&user]);
    let row = listing
        .lines()
        .find(|l| l.starts_with("1 "))
        .expect("device 1's row");
    let words: Vec<&str> = row.split_whitespace().collect();
    // YYYY-MM-DDTHH:MM:SSZ (UTC, README "Devices").
    let stamps: Vec<String> = words
        .iter()
        .filter(|w| w.len() == 20 && w.as_bytes()[10] == b'T' && w.ends_with('Z'))
        .map(|w| (*w).to_owned())
        .collect();
    assert_eq!(stamps.len(), 2, "JOINED and LAST SEEN: {listing}");
    assert!(
        stamps[1] > stamps[0] && row.ends_with("active"),
        "LAST SEEN later than JOINED, active: {listing}"
    );
    client.stop();
}

/// A device's name cannot forge a row of `cloud-server devices` or drive
/// the operator's terminal, and an operator command whose stdout is closed
/// (`| head -1`) says so on stderr with its result, exit 1, never a panic
/// (outside tester breaker10's findings 8 and 1: a fake "active" row, and a
/// Rust backtrace after the new join code was already stored).
#[test]
fn device_names_are_escaped_and_a_closed_stdout_loses_no_join_code() {
    let server = Server::start();
    let (_a, user, _key) = keyed_user(&server);
    // At most 64 bytes (§4.6): a forged row and an erase-line sequence.
    let forged = b"evil\n7      laptop  2026-01-01 00:00  active\x1b[2K";
    assert!(forged.len() <= 64);
    let mut c = Raw::connect(server.addr);
    c.send(&key_hello(1, 2, user, 0, [0; 32], forged));
    c.expect(KEY_WELCOME, 1);
    let listing = server.admin("devices", &[&hex(&user)]);
    assert_eq!(listing.lines().count(), 3, "header and two rows: {listing}");
    assert!(
        !listing.chars().any(|ch| ch.is_control() && ch != '\n'),
        "{listing:?}"
    );
    assert!(listing.contains("evil\\n7"), "{listing}");
    // A stdout that refuses every write (/dev/full: as a closed pipe, but
    // without a race): rotate-join stores a code, so the operator must
    // still see it.
    let full = std::fs::File::options()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cloud-server"))
        .arg("rotate-join")
        .arg(&server.data)
        .arg(hex(&user))
        .stdout(full)
        .output()
        .expect("run cloud-server");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("cannot write to stdout") && err.contains("new devices join with:"),
        "{err}"
    );
}

/// The Error frame `DeviceInUse` for request 1, byte by byte: header, code
/// 29, the message's length; returns the message.
fn device_in_use_text(f: &RawFrame) -> String {
    let bytes = f.bytes();
    assert_eq!(&bytes[..8], &[0x43, 0x53, 0x01, 0x05, 0, 0, 0, 1], "{f:?}");
    assert_eq!(&f.payload[..2], &[0x00, 0x1d], "code 29: {f:?}");
    let len = u16::from_be_bytes([f.payload[2], f.payload[3]]) as usize;
    assert_eq!(f.payload.len(), 4 + len, "{f:?}");
    String::from_utf8(f.payload[4..].to_vec()).expect("UTF-8 message")
}

/// Reads `c`'s next frame; it must be the probe: a Ping with request ID 0
/// . Answers it when `answer`.
fn probed(c: &mut Raw, answer: bool) {
    let f = c.next_reply();
    assert_eq!((f.kind, f.rid, f.payload.len()), (PING, 0, 0), "{f:?}");
    if answer {
        c.send(&frame(PONG, 0, &[]));
    }
}

#[test]
///
fn r_4_6_13_a_second_resume_of_a_live_device_is_refused_device_in_use() {
    let server = Server::start();
    let (_, user, key) = keyed_user(&server);
    let (_, client2, key2) = key_join(&server, user, [0; 32]);
    let (mut a, w) = Raw::key_resume(server.addr, user, 1, key);
    assert_eq!(w.kind, KEY_WELCOME);
    let a_addr = a.stream.tcp().local_addr().expect("local address");
    // The same key again while `a` answers: DeviceInUse naming a's address.
    let mut b = Raw::connect(server.addr);
    b.send(&key_hello(1, 3, user, 1, key, b"clone"));
    probed(&mut a, true);
    let text = device_in_use_text(&b.next_reply());
    assert!(
        text.starts_with(&format!(
            "device 1 of this user is connected from {a_addr} since "
        )) && text.ends_with("; one live connection per device"),
        "{text}"
    );
    b.expect_closed();
    // A wrong key learns nothing of the device: BadCredential, no address,
    // and no probe of `a`.
    let mut rng = common::Rng::new(common::seed("DEVICES_SEED"));
    let mut c = Raw::connect(server.addr);
    c.send(&key_hello(1, 3, user, 1, flipped(key, &mut rng), b""));
    let f = c.expect_error(BAD_CREDENTIAL, 1);
    assert!(!String::from_utf8_lossy(&f.payload).contains("connected from"));
    c.expect_closed();
    a.expect_silence(Duration::from_millis(300));
    // The live connection is untouched; another device is not concerned.
    a.ping_pong(2);
    let (_d, w) = Raw::key_resume(server.addr, user, client2, key2);
    assert_eq!(w.kind, KEY_WELCOME);
    let log = server.wait_log("one live connection per device");
    let line = log
        .lines()
        .find(|l| l.contains("one live connection per device"))
        .expect("the refusal's line");
    assert!(
        line.contains("request=resume")
            && line.contains("outcome=error")
            && line.contains("client=1"),
        "{line}"
    );
    // Closed: the device resumes at once.
    drop(a);
    let start = Instant::now();
    assert!(eventually(Duration::from_secs(2), || {
        Raw::key_resume(server.addr, user, 1, key).1.kind == KEY_WELCOME
    }));
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[test]
///
fn r_4_6_13_two_resumes_at_once_admit_exactly_one() {
    let server = Server::start();
    let (_, user, key) = keyed_user(&server);
    for round in 0..5 {
        // Both hellos on the wire before either is answered; each side
        // answers probes for 5 s, as a running client would.
        let replies: Vec<(u8, Option<u16>)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        let mut c = Raw::connect(server.addr);
                        c.send(&key_hello(1, 3, user, 1, key, b""));
                        let mut first = None;
                        let until = Instant::now() + Duration::from_secs(5);
                        while Instant::now() < until {
                            match c.read(Duration::from_millis(200)) {
                                Got::Frame(f) if f.kind == PING => c.send(&frame(PONG, f.rid, &[])),
                                Got::Frame(f) => {
                                    first.get_or_insert((f.kind, f.error_code()));
                                }
                                Got::Closed => break,
                                Got::Timeout => {}
                            }
                        }
                        first.expect("an answer to the Resume")
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect()
        });
        let welcomed = replies.iter().filter(|r| r.0 == KEY_WELCOME).count();
        let in_use = replies
            .iter()
            .filter(|r| *r == &(ERROR, Some(DEVICE_IN_USE)))
            .count();
        assert_eq!((welcomed, in_use), (1, 1), "round {round}: {replies:?}");
    }
}

#[test]
///
fn r_4_6_14_a_silent_or_closed_connection_frees_its_device_within_the_bound() {
    let server = Server::start();
    let (_, user, key) = keyed_user(&server);
    // Silent: the old connection reads the probe and never answers.
    let (mut old, w) = Raw::key_resume(server.addr, user, 1, key);
    assert_eq!(w.kind, KEY_WELCOME);
    let start = Instant::now();
    let mut new = Raw::connect(server.addr);
    new.send(&key_hello(1, 3, user, 1, key, b""));
    probed(&mut old, false);
    let w = new.expect(KEY_WELCOME, 1);
    let took = start.elapsed();
    assert_eq!(w.u64_at(16), 1);
    assert!(
        took >= Duration::from_millis(2900) && took < Duration::from_secs(5),
        "admitted after {took:?}"
    );
    let f = old.expect_error(TIMEOUT, 0);
    assert!(String::from_utf8_lossy(&f.payload).contains("probe"));
    old.expect_closed();
    new.ping_pong(2);
    // Gone without a FIN: a connection whose peer vanished (its socket
    // left open here, nothing ever read) is the silent case above. Closed
    // while the Resume waits: admitted at once.
    let mut third = Raw::connect(server.addr);
    third.send(&key_hello(1, 3, user, 1, key, b""));
    probed(&mut new, false);
    let start = Instant::now();
    drop(new);
    third.expect(KEY_WELCOME, 1);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    // A connection that is busy sending is alive: an upload in progress
    // keeps its device (nothing it sends after the probe is lost).
    let content = vec![7u8; 8 * 1024 * 1024];
    let bytes = upload(5, 0, &content, "big.bin", 256 * 1024);
    let (first, rest) = bytes.split_at(bytes.len() / 2);
    third.send(first);
    let mut fourth = Raw::connect(server.addr);
    fourth.send(&key_hello(1, 3, user, 1, key, b""));
    third.send(rest);
    let f = fourth.expect_error(DEVICE_IN_USE, 1);
    assert!(device_in_use_text(&f).contains("device 1"));
    let mut probe_seen = false;
    loop {
        let f = third.next_reply();
        if f.kind == PING && f.rid == 0 {
            probe_seen = true;
            continue;
        }
        assert_eq!((f.kind, f.rid), (PUSH_ACK, 5), "{f:?}");
        break;
    }
    assert!(probe_seen, "the probe reached the busy connection");
    third.ping_pong(6);
}

#[test]
///
fn r_4_6_15_a_visit_runs_next_to_the_live_connection_and_never_pulls() {
    let server = Server::start();
    let (_, user, key) = keyed_user(&server);
    let (mut a, w) = Raw::key_resume(server.addr, user, 1, key);
    assert_eq!(w.kind, KEY_WELCOME);
    // A Visit with the key: admitted at once, no probe on `a`.
    let mut v = Raw::connect(server.addr);
    v.send(&key_hello(1, 4, user, 1, key, b""));
    let w = v.expect(KEY_WELCOME, 1);
    assert_eq!((w.u64_at(16), welcome_key(&w)), (1, [0; 32]));
    a.expect_silence(Duration::from_millis(500));
    v.ping_pong(2);
    // A Resume while the Visit is open is decided by `a` alone.
    let mut b = Raw::connect(server.addr);
    b.send(&key_hello(1, 3, user, 1, key, b""));
    probed(&mut a, true);
    b.expect_error(DEVICE_IN_USE, 1);
    // Checked as a Resume: a wrong key is refused.
    let mut rng = common::Rng::new(common::seed("DEVICES_SEED"));
    refused(
        &server,
        &key_hello(1, 4, user, 1, flipped(key, &mut rng), b""),
        BAD_CREDENTIAL,
    );
    // Pull and Ack (and PullModes, a version 3 kind) are not for a Visit.
    for (kind, rid) in [(PULL, 3u32), (ACK, 3)] {
        let mut v = Raw::connect(server.addr);
        v.send(&key_hello(1, 4, user, 1, key, b""));
        v.expect(KEY_WELCOME, 1);
        v.send(&frame(kind, rid, &0u64.to_be_bytes()));
        v.expect_error(WRONG_PHASE, rid);
        v.expect_closed();
    }
    a.ping_pong(4);
}

#[test]
///
fn r_4_6_14_only_a_resume_whose_key_verifies_probes_the_live_connection() {
    let server = Server::start();
    let (_, user, key) = keyed_user(&server);
    let (mut a, w) = Raw::key_resume(server.addr, user, 1, key);
    assert_eq!(w.kind, KEY_WELCOME);
    // Every Resume of device 1 that does not prove the key: random wrong
    // keys (one bit off, or any bits), the all-zero secret, and a plain
    // Hello with the user ID alone. Seven in all, under the guess
    // limiter's ten. `a` never answers a probe here: under the
    // old rule each would have been held 3 s and then closed `a`.
    let mut rng = common::Rng::new(common::seed("DEVICES_SEED"));
    let mut wrong: Vec<Vec<u8>> = Vec::new();
    for _ in 0..3 {
        wrong.push(key_hello(1, 3, user, 1, flipped(key, &mut rng), b""));
    }
    for _ in 0..2 {
        let mut other = [0u8; 32];
        for b in other.iter_mut() {
            *b = rng.below(256) as u8;
        }
        wrong.push(key_hello(1, 3, user, 1, other, b"guess"));
    }
    wrong.push(key_hello(1, 3, user, 1, [0; 32], b""));
    wrong.push(hello(1, 3, user, 1));
    for (i, h) in wrong.iter().enumerate() {
        let start = Instant::now();
        let mut c = Raw::connect(server.addr);
        c.send(h);
        let f = c.expect_error(BAD_CREDENTIAL, 1);
        assert!(
            !String::from_utf8_lossy(&f.payload).contains("connected from"),
            "attempt {i}: {f:?}"
        );
        c.expect_closed();
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "attempt {i}: refused after {:?}: held for a probe",
            start.elapsed()
        );
        a.expect_silence(Duration::from_millis(100));
    }
    // `a` is untouched and still the device's live connection: the right
    // key is probed (and refused DeviceInUse once `a` answers).
    a.ping_pong(2);
    let mut b = Raw::connect(server.addr);
    b.send(&key_hello(1, 3, user, 1, key, b"clone"));
    probed(&mut a, true);
    b.expect_error(DEVICE_IN_USE, 1);
    b.expect_closed();
    a.ping_pong(3);
    // A request pipelined behind a Resume that waits for the probe is
    // answered, in order, once the Resume is admitted (`a` closed).
    let mut c = Raw::connect(server.addr);
    let mut bytes = key_hello(1, 3, user, 1, key, b"");
    bytes.extend(frame(PING, 2, &[]));
    c.send(&bytes);
    probed(&mut a, false);
    drop(a);
    c.expect(KEY_WELCOME, 1);
    c.expect(PONG, 2);
}

#[test]
///
fn r_4_6_15_a_visit_stays_a_visit_after_the_users_worker_restarts() {
    // Workers retire after 0.2 s idle; the connections stay open and the
    // next worker adopts them.
    let server = Server::start_with(&["--actor-idle", "0.2"]);
    let pid = server.pid();
    let (first, user, key) = keyed_user(&server);
    drop(first);
    let mut v = Raw::connect(server.addr);
    v.send(&key_hello(1, 4, user, 1, key, b""));
    v.expect(KEY_WELCOME, 1);
    assert!(eventually(Duration::from_secs(5), || actor_threads(pid) == 0));
    // The device's client starts while the Visit is open: a Visit is not
    // its live connection, before or after the restart.
    let (mut a, w) = Raw::key_resume(server.addr, user, 1, key);
    assert_eq!(w.kind, KEY_WELCOME, "{w:?}");
    v.expect_silence(Duration::from_millis(300));
    // Still a Visit for the new worker: no Pull, no Ack.
    v.send(&frame(PULL, 2, &0u64.to_be_bytes()));
    v.expect_error(WRONG_PHASE, 2);
    v.expect_closed();
    // The live connection adopted by a later worker is still told apart:
    // a second Resume is refused, and DeviceInUse gives the time `a` was
    // accepted, not the adoption's.
    let accepted = std::time::SystemTime::now();
    assert!(eventually(Duration::from_secs(5), || actor_threads(pid) == 0));
    std::thread::sleep(Duration::from_millis(2100));
    let mut b = Raw::connect(server.addr);
    b.send(&key_hello(1, 3, user, 1, key, b"clone"));
    probed(&mut a, true);
    let text = device_in_use_text(&b.next_reply());
    let since = text
        .split(" since ")
        .nth(1)
        .and_then(|t| t.split(" UTC").next())
        .expect("the time in the text");
    let since = chrono::NaiveDateTime::parse_from_str(since, "%Y-%m-%d %H:%M:%S")
        .expect("a UTC time")
        .and_utc();
    let accepted = chrono::DateTime::<chrono::Utc>::from(accepted);
    assert!(
        (accepted - since).num_seconds().abs() <= 1,
        "since {since}, accepted at {accepted}: {text}"
    );
    a.ping_pong(2);
}

#[test]
///
fn r_4_6_13_a_keyless_devices_refused_key_hello_leaves_it_keyless() {
    // The zero-secret KeyHello of a keyless device whose (keyless) live
    // connection answers the probe is refused DeviceInUse. The key that
    // handshake was to give is never sent, so it must not be kept: the live
    // client, still keyless, would be refused at its next reconnection.
    let server = Server::start();
    let (_, user, _key) = keyed_user(&server);
    let (_, keyless) = Raw::join(server.addr, user);
    for round in 0..3 {
        let mut live = Raw::connect(server.addr);
        live.send(&hello(1, 3, user, keyless));
        assert_eq!(live.expect(WELCOME, 1).u64_at(16), keyless, "round {round}");
        let mut second = Raw::connect(server.addr);
        second.send(&key_hello(1, 3, user, keyless, [0; 32], b""));
        probed(&mut live, true);
        let text = device_in_use_text(&second.next_reply());
        assert!(text.contains("one live connection per device"), "{text}");
        second.expect_closed();
        live.ping_pong(2);
        drop(live);
        // The device is still keyless: its plain Hello is admitted.
        assert!(
            eventually(Duration::from_secs(5), || {
                let mut c = Raw::connect(server.addr);
                c.send(&hello(1, 3, user, keyless));
                c.next_reply().kind == WELCOME
            }),
            "round {round}: the keyless device is shut out"
        );
    }
    // And its first admitted zero-secret KeyHello still gets a key.
    let (_, w) = Raw::key_resume(server.addr, user, keyless, [0; 32]);
    assert_eq!(w.kind, KEY_WELCOME, "{w:?}");
    assert_ne!(welcome_key(&w), [0; 32]);
}
