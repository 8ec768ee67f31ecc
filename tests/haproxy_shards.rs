//! Three shards behind a real HAProxy (PROTOCOL.md §16, README "Running
//! several servers"), with the shipped `deploy/haproxy/` configuration (its
//! addresses and paths replaced by loopback ports and a temporary folder):
//! 30 users with two real clients each sync through the proxy; every user
//! lives on exactly one shard; one shard is SIGKILLed and restarted mid-run;
//! one user is moved to another shard mid-run (export, import, and the user
//! map changed through HAProxy's runtime API) and back (its user-map line
//! removed, R-16.3.3); every folder converges with its server copy, by
//! content, and nothing written is lost. A plaintext client through the
//! proxy is refused at once with a clear error (plaintext is not routed).
//!
//! Needs `haproxy` (Debian package; `.ci/run` installs it). Without it the
//! test says so loudly and passes, unless `CI` is set: then it fails.
//! `HAPROXY_SHARDS_SEED` replays a run.

mod common;

use cloudservice::protocol::UserId;
use cloudservice::server::limiter;
use cloudservice::server::route_map;
use cloudservice::tls::routing::{shard_tag, sni_for};
use common::raw::{self, Raw};
use common::{
    eventually, free_port, tree, wait_port, write, Client, Conn, Proc, Rng, Server, Tree,
};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const SHARDS: usize = 3;
const USERS: usize = 30;
/// Everything converges within this after the last change.
const CONVERGE: Duration = Duration::from_secs(150);

/// Whether HAProxy can run here; panics under CI when it cannot.
fn haproxy_present() -> bool {
    let found = Command::new("haproxy")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is not installed but CI is set: .ci/run must install it (apt-get install -y haproxy)"
        );
        eprintln!(
            "\n=== WARNING: haproxy not installed: SKIPPING tests/haproxy_shards.rs \
             (apt-get install -y haproxy) ===\n"
        );
    }
    found
}

/// The shipped configuration, pointed at this test's ports and folder.
fn config(dir: &Path, port: u16, shards: &[u16]) -> String {
    let shipped = include_str!("../deploy/haproxy/haproxy.cfg");
    let mut text = shipped
        .replace("/etc/haproxy/", &format!("{}/", dir.display()))
        .replace(
            "/run/haproxy/cloudservice.sock",
            &dir.join("admin.sock").display().to_string(),
        )
        .replace("bind :7000", &format!("bind 127.0.0.1:{port}"))
        .replace("log /dev/log local0\n", "")
        .replace("maxconn 100000", "maxconn 2000")
        .replace("maxconn 50000", "maxconn 500")
        // Health checks every 500 ms: a killed shard is marked down quickly.
        .replace(" check\n", " check inter 500ms fall 2 rise 1\n");
    for (n, shard_port) in shards.iter().enumerate() {
        text = text.replace(
            &format!("10.0.0.1{n}:7000"),
            &format!("127.0.0.1:{shard_port}"),
        );
    }
    assert!(!text.contains("10.0.0."), "every shard address replaced");
    text
}

/// One user: its two folders and clients, the shard that holds it, and
/// what the test wrote (path → content) that must end up everywhere.
struct User {
    id: String,
    a: PathBuf,
    b: PathBuf,
    clients: Vec<Client>,
    written: Tree,
}

impl User {
    fn write(&mut self, rng: &mut Rng, what: &str) {
        let folder = if rng.chance(0.5) { &self.a } else { &self.b };
        let path = format!("{what}-{}.txt", rng.below(1_000_000));
        let len = 1 + rng.index(4000);
        let content = rng.bytes(len);
        write(folder, &path, &content);
        self.written.insert(path, Some(content));
    }
}

/// The shards whose data directory serves `user` (holds it, not moved away).
fn holders(data: &[PathBuf], user: &str) -> Vec<usize> {
    (0..data.len())
        .filter(|&n| {
            let served = data[n].join("AllClients").join(user).is_dir();
            let moved =
                std::fs::read_to_string(data[n].join(".cloudservice-server/moves").join(user))
                    .is_ok_and(|t| t.trim() == "moved");
            served && !moved
        })
        .collect()
}

#[test]
fn thirty_users_sync_through_haproxy_across_a_crash_and_a_move() {
    if !haproxy_present() {
        return;
    }
    let started = Instant::now();
    let mut rng = Rng::new(common::seed("HAPROXY_SHARDS_SEED"));
    let tmp = tempfile::tempdir().expect("temp dir");
    let data: Vec<PathBuf> = (0..SHARDS)
        .map(|n| tmp.path().join(format!("shard{n}")))
        .collect();
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs");

    // Shard 0 makes the certificate; all shards serve it (a client pins
    // the first certificate it meets and may meet any shard).
    let mut shards: Vec<Server> = Vec::new();
    for n in 0..SHARDS {
        let shard = n.to_string();
        // HAProxy (127.0.0.1) sends a PROXY v2 header (send-proxy-v2).
        let mut args = vec![
            "--shard".to_owned(),
            shard,
            "--proxy-protocol".to_owned(),
            "127.0.0.1".to_owned(),
        ];
        if n > 0 {
            let tls = data[0].join("tls");
            args.extend([
                "--tls-cert".to_owned(),
                tls.join("server.crt").display().to_string(),
                "--tls-key".to_owned(),
                tls.join("server.key").display().to_string(),
            ]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        shards.push(
            Server::options()
                .data(&data[n])
                .args(&args)
                .log(&logs.join(format!("shard{n}.log")))
                .start(),
        );
    }
    assert!(shards
        .iter()
        .all(|s| s.fingerprint == shards[0].fingerprint));

    // HAProxy with the shipped configuration and maps.
    let proxy_dir = tmp.path().join("haproxy");
    std::fs::create_dir_all(&proxy_dir).expect("haproxy dir");
    let tags: String = (0..SHARDS)
        .map(|n| format!("r{n:02x} shard{n}\n"))
        .collect();
    std::fs::write(proxy_dir.join("cloudservice-shards.map"), tags).expect("tag map");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/haproxy/cloudservice-users.map"
        ),
        proxy_dir.join("cloudservice-users.map"),
    )
    .expect("user map");
    let port = free_port();
    let ports: Vec<u16> = shards.iter().map(|s| s.port).collect();
    let cfg = proxy_dir.join("haproxy.cfg");
    std::fs::write(&cfg, config(&proxy_dir, port, &ports)).expect("config");
    let check = Command::new("haproxy")
        .arg("-c")
        .arg("-f")
        .arg(&cfg)
        .output()
        .expect("haproxy -c");
    assert!(
        check.status.success(),
        "haproxy -c: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let mut cmd = Command::new("haproxy");
    cmd.arg("-db").arg("-f").arg(&cfg);
    let mut proxy = Proc::spawn_to_files("haproxy", cmd, &logs.join("haproxy.out"));
    assert!(wait_port(port, Duration::from_secs(20)), "haproxy listens");

    // Plaintext is not routed (PROTOCOL.md §16.1): a plaintext client, new
    // or joining, reaches some TLS shard, which refuses it at once
    // (R-12.4.1); the client stops with that line and changes nothing in
    // its folder. "At once": sooner than HAProxy's 5 s inspect-delay, so
    // the proxy did not sit on the connection waiting for a ClientHello.
    for (n, user) in [None, Some("9f1c2a7e4b6d8053c1e9f2a4b6c8d0e1")]
        .into_iter()
        .enumerate()
    {
        let folder = tmp.path().join(format!("plain{n}"));
        write(&folder, "mine.txt", "kept");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cloud-client"));
        cmd.args(["127.0.0.1", &port.to_string()])
            .arg(&folder)
            .arg("1")
            .args(user)
            .args(["--insecure-plaintext", "--once"]);
        let asked = Instant::now();
        let out = cmd.output().expect("cloud-client");
        let took = asked.elapsed();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("this server requires TLS"),
            "plaintext client {n}: {err}"
        );
        assert!(took < Duration::from_millis(4500), "refused after {took:?}");
        let mut names: Vec<String> = std::fs::read_dir(&folder)
            .expect("folder")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, [".cloudservice", "mine.txt"]);
        assert_eq!(
            std::fs::read_to_string(folder.join("mine.txt")).expect("mine"),
            "kept"
        );
    }

    // 30 users through the proxy: device A creates the user (New User goes
    // to any shard), device B joins it.
    let mut users: Vec<User> = Vec::new();
    for i in 0..USERS {
        let a = tmp.path().join(format!("u{i}a"));
        let b = tmp.path().join(format!("u{i}b"));
        std::fs::create_dir_all(&a).expect("folder");
        std::fs::create_dir_all(&b).expect("folder");
        let mut user = User {
            id: String::new(),
            a,
            b,
            clients: Vec::new(),
            written: Tree::new(),
        };
        user.written
            .insert("first.txt".into(), Some(format!("user {i}").into_bytes()));
        write(&user.a, "first.txt", format!("user {i}"));
        let client = Client::options(port, &user.a)
            .rate("1")
            .log(&logs.join(format!("u{i}a.log")))
            .start();
        user.clients.push(client);
        users.push(user);
    }
    for (i, user) in users.iter_mut().enumerate() {
        let line = user.clients[0]
            .wait_line("user id: ", Duration::from_secs(60))
            .unwrap_or_else(|| panic!("user {i} was created"));
        user.id = line
            .trim()
            .strip_prefix("user id: ")
            .expect("user id line")
            .to_owned();
        let b = Client::options(port, &user.b)
            .rate("1")
            .user(Some(&user.id))
            .log(&logs.join(format!("u{i}b.log")))
            .start();
        user.clients.push(b);
    }
    // Each user on exactly one shard, the one its tag names; and New User
    // spread over every shard.
    let mut per_shard = [0usize; SHARDS];
    for user in &users {
        let id: UserId = user.id.parse().expect("user id");
        let tag = usize::from(shard_tag(&id));
        assert_eq!(holders(&data, &user.id), vec![tag], "user {}", user.id);
        per_shard[tag] += 1;
    }
    assert!(
        per_shard.iter().all(|&n| n > 0),
        "users per shard: {per_shard:?}"
    );
    eprintln!("users per shard: {per_shard:?}");

    // Changes, a crash of shard 1 with changes while it is down, more
    // changes after it is back.
    for user in users.iter_mut() {
        user.write(&mut rng, "before");
    }
    std::thread::sleep(Duration::from_secs(2));
    shards[1].kill9();
    for user in users.iter_mut() {
        user.write(&mut rng, "down");
    }
    std::thread::sleep(Duration::from_secs(3));
    shards[1].start_again();

    // Move a user of shard 2 to shard 0 while its devices write.
    let moved = users
        .iter()
        .position(|u| shard_tag(&u.id.parse::<UserId>().expect("id")) == 2)
        .expect("a user on shard 2");
    users[moved].write(&mut rng, "moving");
    let export = tmp.path().join("export");
    let out = shards[2].admin(
        "export",
        &[&users[moved].id, "--to", export.to_str().unwrap()],
    );
    assert!(out.contains("WrongShard"), "{out}");
    users[moved].write(&mut rng, "exported");
    let out = shards[0].admin("import", &[export.to_str().unwrap()]);
    assert!(out.contains("serves it now"), "{out}");
    let route = Command::new(env!("CARGO_BIN_EXE_cloud-server"))
        .args(["route", &users[moved].id, "shard0", "--map"])
        .arg(proxy_dir.join("cloudservice-users.map"))
        .arg("--socket")
        .arg(proxy_dir.join("admin.sock"))
        .output()
        .expect("cloud-server route");
    assert!(
        route.status.success(),
        "route: {}",
        String::from_utf8_lossy(&route.stderr)
    );
    for user in users.iter_mut() {
        user.write(&mut rng, "after");
    }
    assert_eq!(
        holders(&data, &users[moved].id),
        vec![0],
        "moved user on shard 0 only"
    );
    let users_map = proxy_dir.join("cloudservice-users.map");
    let sni = sni_for(Some(&users[moved].id.parse::<UserId>().expect("id")));
    let live_map = || {
        route_map::command(
            &proxy_dir.join("admin.sock"),
            &format!("show map {}", users_map.display()),
        )
        .expect("show map")
    };
    assert!(
        live_map().contains(&format!("{sni} shard0")),
        "{}",
        live_map()
    );

    // And back to shard 2, the shard its tag names, while its devices
    // write: its user-map line goes, from the file and from HAProxy
    // (R-16.3.3), and the tag map routes it again.
    let back = tmp.path().join("back");
    shards[0].admin(
        "export",
        &[&users[moved].id, "--to", back.to_str().unwrap()],
    );
    users[moved].write(&mut rng, "moving-back");
    shards[2].admin("import", &[back.to_str().unwrap()]);
    let route = Command::new(env!("CARGO_BIN_EXE_cloud-server"))
        .args(["route", &users[moved].id, "shard2", "--map"])
        .arg(&users_map)
        .arg("--socket")
        .arg(proxy_dir.join("admin.sock"))
        .output()
        .expect("cloud-server route");
    let text = String::from_utf8_lossy(&route.stdout);
    assert!(
        route.status.success() && text.contains("no line"),
        "route back: {text}"
    );
    assert!(!std::fs::read_to_string(&users_map)
        .expect("user map")
        .contains(&sni));
    assert!(!live_map().contains(&sni), "{}", live_map());
    users[moved].write(&mut rng, "back");
    assert_eq!(
        holders(&data, &users[moved].id),
        vec![2],
        "moved-back user on shard 2 only"
    );

    // Everything converges: both folders and the holding shard's copy equal
    // what was written, by content.
    let deadline = Instant::now() + CONVERGE;
    for user in &users {
        let holder = holders(&data, &user.id);
        assert_eq!(holder.len(), 1, "user {} on one shard: {holder:?}", user.id);
        let server = data[holder[0]].join("AllClients").join(&user.id);
        let left = deadline.saturating_duration_since(Instant::now());
        let ok = eventually(left, || {
            tree(&user.a) == user.written
                && tree(&user.b) == user.written
                && tree(&server) == user.written
        });
        assert!(
            ok,
            "user {} did not converge (shard {}): missing on a: {:?}, on b: {:?}, on the server: {:?}",
            user.id,
            holder[0],
            missing(&user.written, &tree(&user.a)),
            missing(&user.written, &tree(&user.b)),
            missing(&user.written, &tree(&server)),
        );
    }
    eprintln!(
        "converged: {USERS} users x 2 clients through HAProxy in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for user in users.iter_mut() {
        for client in user.clients.iter_mut() {
            client.stop();
        }
    }
    // cloud-load through the proxy reports per-shard figures.
    let load = Command::new(env!("CARGO_BIN_EXE_cloud-load"))
        .args(["127.0.0.1", &port.to_string()])
        .args(["-n", "60", "-u", "30", "-r", "0.5", "-d", "3"])
        .output()
        .expect("cloud-load");
    let text = String::from_utf8_lossy(&load.stdout);
    assert!(load.status.success(), "cloud-load: {text}");
    assert!(text.contains("| 60 / 60 / 60 |"), "all held: {text}");
    for n in 0..SHARDS {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("| {n:02x} | "))),
            "a row for shard {n}: {text}"
        );
    }
    eprintln!("{text}");
    proxy.terminate(Duration::from_secs(5));
}

/// Paths of `want` that `have` lacks or holds with other content.
fn missing(want: &Tree, have: &Tree) -> Vec<String> {
    want.iter()
        .filter(|(p, c)| have.get(*p) != Some(*c))
        .map(|(p, _)| p.clone())
        .collect()
}

/// HAProxy with the shipped configuration in `dir`, every shard line
/// pointed at `shards`; returns it and its port.
fn start_haproxy(dir: &Path, logs: &Path, shards: &[u16]) -> (Proc, u16) {
    std::fs::create_dir_all(dir).expect("haproxy dir");
    let tags: String = (0..shards.len())
        .map(|n| format!("r{n:02x} shard{n}\n"))
        .collect();
    std::fs::write(dir.join("cloudservice-shards.map"), tags).expect("tag map");
    std::fs::write(dir.join("cloudservice-users.map"), "").expect("user map");
    let port = free_port();
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(&cfg, config(dir, port, shards)).expect("config");
    let mut cmd = Command::new("haproxy");
    cmd.arg("-db").arg("-f").arg(&cfg);
    let proxy = Proc::spawn_to_files("haproxy", cmd, &logs.join("haproxy.out"));
    assert!(wait_port(port, Duration::from_secs(20)), "haproxy listens");
    (proxy, port)
}

/// The connection log's lines of `peer` (exactly that address and port).
fn lines_of(log: &str, peer: SocketAddr) -> Vec<&str> {
    let field = format!(" peer={peer} ");
    log.lines().filter(|l| l.contains(&field)).collect()
}

/// PROTOCOL.md §17 through a real HAProxy with `send-proxy-v2` (the
/// shipped configuration): the shard, started with `--proxy-protocol` for
/// the proxy's address, logs each client's own address and port (clients on
/// 127.0.0.2 and 127.0.0.3, HAProxy on 127.0.0.1), and the failed-guess
/// limiter (R-2.2.4) refuses the guessing client while another client
/// through the same proxy still joins. A PROXY header sent straight to the
/// shard from an address not trusted is refused like any other garbage
/// before TLS, and the address it claims appears nowhere; a trusted
/// address without a header is closed with a `request=proxy` line.
#[test]
fn each_client_behind_haproxy_is_seen_with_its_own_address() {
    if !haproxy_present() {
        return;
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs");
    let shard = Server::options()
        .data(&tmp.path().join("shard0"))
        .args(&["--shard", "0", "--proxy-protocol", "127.0.0.1/32"])
        .log(&logs.join("shard0.log"))
        .start();
    let ports = [shard.port; SHARDS];
    let (mut proxy, port) = start_haproxy(&tmp.path().join("haproxy"), &logs, &ports);
    let front: SocketAddr = ([127, 0, 0, 1], port).into();
    let guesser = Ipv4Addr::new(127, 0, 0, 2);
    let member = Ipv4Addr::new(127, 0, 0, 3);

    // A user, made through the proxy from 127.0.0.3.
    let (mut maker, maker_addr) = Raw::connect_from(member, front);
    maker.send(&raw::hello(1, 1, [0; 16], 0));
    let welcome = maker.expect(raw::WELCOME, 1);
    let user: [u8; 16] = welcome.payload[0..16].try_into().expect("16 bytes");
    let log = shard.wait_log(&format!("peer={maker_addr} "));
    let made = lines_of(&log, maker_addr);
    assert!(
        made.iter()
            .any(|l| l.contains("request=new-user outcome=ok")),
        "the new user's line names its client {maker_addr}:\n{log}"
    );

    // 127.0.0.2 guesses (join with no user ID) until it is refused.
    let mut guesses = Vec::new();
    for attempt in 0..limiter::MAX_FAILURES {
        let (mut c, addr) = Raw::connect_from(guesser, front);
        c.send(&raw::hello(1, 2, [0; 16], 0));
        c.expect_error(raw::UNKNOWN_USER, 1);
        guesses.push(addr);
        assert!(attempt < 20);
    }
    let (mut refused, refused_addr) = Raw::connect_from(guesser, front);
    refused.send(&raw::hello(1, 2, user, 0));
    refused.expect_error(raw::TOO_MANY_ATTEMPTS, 1);
    // 127.0.0.3, through the same proxy, still joins the user.
    let (mut joiner, joiner_addr) = Raw::connect_from(member, front);
    joiner.send(&raw::hello(1, 2, user, 0));
    joiner.expect(raw::WELCOME, 1);

    let log = shard.wait_log(&format!("peer={joiner_addr} "));
    for addr in &guesses {
        let lines = lines_of(&log, *addr);
        assert!(
            lines.len() == 1 && lines[0].contains("request=hello outcome=error"),
            "one refused hello of {addr}: {lines:?}\n{log}"
        );
    }
    assert!(
        lines_of(&log, refused_addr)
            .iter()
            .any(|l| l.contains("too many failed attempts")),
        "{log}"
    );
    assert!(
        lines_of(&log, joiner_addr)
            .iter()
            .any(|l| l.contains("request=new-client outcome=ok")),
        "{log}"
    );
    // No line is HAProxy's (127.0.0.1): not even its health checks'
    // (LOCAL headers, then a close, are not logged).
    assert!(!log.contains("peer=127.0.0.1:"), "{log}");

    // Spoofing: a PROXY v2 header straight to the shard from 127.0.0.3
    // (not trusted) claiming 10.9.9.9 is the start of a TLS handshake that
    // fails; the line names the real address.
    let direct: SocketAddr = ([127, 0, 0, 1], shard.port).into();
    let mut spoof = Conn::tcp_from(member, direct);
    let spoof_addr = spoof.local_addr().expect("local");
    let mut header = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    header.extend_from_slice(&[10, 9, 9, 9, 127, 0, 0, 1, 0x1f, 0x90, 0x1b, 0x58]);
    spoof.write_all(&header).expect("send header");
    let mut spoofed = Raw::from_conn(Conn::tls(spoof));
    spoofed.send(&raw::hello(1, 2, user, 0));
    spoofed.expect_closed();
    let log = shard.wait_log(&format!("peer={spoof_addr} "));
    assert!(
        lines_of(&log, spoof_addr)
            .iter()
            .any(|l| l.contains("request=tls outcome=error")),
        "{log}"
    );
    assert!(!log.contains("10.9.9.9"), "{log}");

    // A trusted address (HAProxy's) that sends no header: closed, with
    // the reason.
    let mut bare = Raw::connect_from(Ipv4Addr::LOCALHOST, direct).0;
    bare.send(&raw::hello(1, 2, user, 0));
    bare.expect_closed();
    let log = shard.wait_log("request=proxy");
    assert!(
        log.lines().any(|l| l.contains("peer=127.0.0.1:")
            && l.contains("request=proxy outcome=error detail=\"no PROXY protocol header")),
        "{log}"
    );
    proxy.terminate(Duration::from_secs(5));
}
