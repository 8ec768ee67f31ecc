//! The command lines of both binaries as a user meets them (issue 12,
//! outside tester breaker10's finding 9), with the real binaries:
//! - a wrong command line, for the server, the client and every one of
//!   their commands, and for `cloud-load`, is one line on stderr naming the
//!   problem, exit 2, nothing on stdout (also a duration no option can
//!   hold, breaker15 F13, which panicked before); `--help` still prints clap's help
//!   and exits 0;
//! - README's synopsis blocks are, word for word, what `--help` prints
//!   under "Usage:" (the binaries' unit tests check those synopses against
//!   the parsers, so README cannot drift from the options either);
//! - `cloud-server devices` shows JOINED and LAST SEEN in UTC with a `Z`,
//!   `never` for a device with no time, as README "Devices" says.
//!
//! `CLOUD_TEST_SERVER_BIN` / `CLOUD_TEST_CLIENT_BIN` / `CLOUD_TEST_LOAD_BIN`
//! run them against other builds.

mod common;

use common::{Server, WireClient};
use std::path::PathBuf;
use std::process::{Command, Output};

fn bin(var: &str, built: &str) -> PathBuf {
    std::env::var_os(var).map_or_else(|| PathBuf::from(built), PathBuf::from)
}

fn server_bin() -> PathBuf {
    bin("CLOUD_TEST_SERVER_BIN", env!("CARGO_BIN_EXE_cloud-server"))
}

fn client_bin() -> PathBuf {
    bin("CLOUD_TEST_CLIENT_BIN", env!("CARGO_BIN_EXE_cloud-client"))
}

fn load_bin() -> PathBuf {
    bin("CLOUD_TEST_LOAD_BIN", env!("CARGO_BIN_EXE_cloud-load"))
}

fn run(program: &PathBuf, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run the binary")
}

const USER: &str = "9f1c2a7e4b6d8053c1e9f2a4b6c8d0e1";

/// Wrong command lines of `cloud-server`: arguments, and a needle the one
/// line must contain (the problem named). Every command is here.
const SERVER_CASES: &[(&[&str], &str)] = &[
    (&[], "required arguments were not provided: <PORT>"),
    (&["9000", "--fsynk"], "unexpected argument '--fsynk' found (a similar argument exists: '--fsync')"),
    (&["notaport"], "invalid value 'notaport' for '<PORT>'"),
    (&["9000", "--bind", "x"], "invalid value 'x' for '--bind <ADDR>'"),
    (&["9000", "--handshake-timeout", "0"], "'--handshake-timeout <SECS>': not a positive number"),
    (&["9000", "--idle-timeout=-3"], "'--idle-timeout <SECS>': not a positive number"),
    (&["9000", "--actor-idle", "inf"], "'--actor-idle <SECS>': not a positive number"),
    (&["9000", "--keep-versions", "0"], "'--keep-versions <DAYS>': not a positive number"),
    (&["9000", "--reap-every", "nan"], "'--reap-every <SECS>': not a positive number"),
    // Values no duration holds (breaker15 F13: a panic, exit 101) or that
    // round to nothing: the shared parser's bounds, named.
    (&["9000", "--keep-versions", "1e15"], "invalid value '1e15' for '--keep-versions <DAYS>': too large: at most 36525 days"),
    (&["9000", "--idle-timeout", "1e20"], "'--idle-timeout <SECS>': too large: at most 3155760000 seconds"),
    (&["9000", "--handshake-timeout", "18446744073709551615"], "'--handshake-timeout <SECS>': too large"),
    (&["9000", "--actor-idle", "1e20"], "'--actor-idle <SECS>': too large"),
    (&["9000", "--reap-every", "1e20"], "'--reap-every <SECS>': too large"),
    (&["9000", "--reap-every", "4e-324"], "'--reap-every <SECS>': too small: at least 0.001 seconds"),
    (&["9000", "--keep-versions", "1e-12"], "'--keep-versions <DAYS>': too small"),
    (&["export", "/tmp", USER, "--to", "x", "--wait", "1e20"], "'--wait <SECS>': too large"),
    (&["9000", "--versions-space", "10Q"], "is not a number of bytes"),
    (&["9000", "--shard", "256"], "'--shard <N>'"),
    (&["9000", "--tls-cert", "c.pem"], "--tls-key <FILE>"),
    (&["9000", "--insecure-plaintext", "--tls-cert", "c", "--tls-key", "k"], "cannot be used with"),
    (&["9000", "-v", "-q"], "cannot be used with"),
    (&["9000", "--metrics", "nowhere"], "'--metrics <ADDR>'"),
    (&["devices"], "required arguments were not provided: <DATA_DIR>, <USER_ID>; see cloud-server devices --help"),
    (&["devices", "/tmp", "zz"], "invalid value 'zz' for '<USER_ID>'"),
    (&["revoke", "/tmp", USER], "<DEVICE>; see cloud-server revoke --help"),
    (&["revoke", "/tmp", USER, "two"], "invalid value 'two' for '<DEVICE>'"),
    (&["reinstate", "/tmp", USER], "<DEVICE>; see cloud-server reinstate --help"),
    (&["rotate-join", "/tmp"], "<USER_ID>; see cloud-server rotate-join --help"),
    (&["invite", "/tmp", USER, "extra"], "unexpected argument 'extra' found"),
    (&["export", "/tmp", USER], "--to <DIR>; see cloud-server export --help"),
    (&["export", "/tmp", USER, "--to", "x", "--wait", "-1"], "see cloud-server export --help"),
    (&["import", "/tmp"], "<DIR>; see cloud-server import --help"),
    (&["restore", "/tmp"], "--from <BACKUP>; see cloud-server restore --help"),
    (&["shard-map", "/tmp"], "--shard <N>; see cloud-server shard-map --help"),
    (&["route", USER, "shard1"], "--map <FILE>; see cloud-server route --help"),
];

/// The same for `cloud-client`.
const CLIENT_CASES: &[(&[&str], &str)] = &[
    (&[], "required arguments were not provided: <SERVER_IP>, <SERVER_PORT>, <FOLDER_PATH>, <PULLING_RATE>"),
    (&["127.0.0.1"], "<SERVER_PORT>, <FOLDER_PATH>, <PULLING_RATE>"),
    (&["127.0.0.1", "99999", "/tmp", "1"], "invalid value '99999' for '<SERVER_PORT>'"),
    (&["127.0.0.1", "9000", "/tmp", "0"], "invalid value '0' for '<PULLING_RATE>': not a positive number of seconds"),
    (&["127.0.0.1", "9000", "/tmp", "fast"], "invalid value 'fast' for '<PULLING_RATE>'"),
    (&["127.0.0.1", "9000", "/tmp", "1e20"], "invalid value '1e20' for '<PULLING_RATE>': too large: at most 3155760000 seconds"),
    (&["127.0.0.1", "9000", "/tmp", "18446744073709551616"], "for '<PULLING_RATE>': too large"),
    (&["127.0.0.1", "9000", "/tmp", "1e-9"], "invalid value '1e-9' for '<PULLING_RATE>': too small: at least 0.1 seconds"),
    (&["127.0.0.1", "9000", "/tmp", "4e-324"], "for '<PULLING_RATE>': too small"),
    (&["127.0.0.1", "9000", "/tmp", "0.05"], "for '<PULLING_RATE>': too small"),
    (&["127.0.0.1", "9000", "/tmp", "1", "nothex"], "USER_ID: "),
    (&["127.0.0.1", "9000", "/tmp", "1", "9f1c2a7e4b6d8053c1e9f2a4b6c8d0e1:short"], "JOIN_CODE: "),
    (&["127.0.0.1", "9000", "/tmp", "1", "--onse"], "unexpected argument '--onse' found (a similar argument exists: '--once')"),
    (&["127.0.0.1", "9000", "/tmp", "1", "--server-fingerprint", "abc"], "'--server-fingerprint <HEX>'"),
    (&["127.0.0.1", "9000", "/tmp", "1", "--ca", "f", "--insecure-plaintext"], "cannot be used with"),
    (&["status"], "<FOLDER>; see cloud-client status --help"),
    (&["status", "/tmp", "--jsn"], "unexpected argument '--jsn' found"),
    (&["versions"], "<FOLDER>; see cloud-client versions --help"),
    (&["versions", "/tmp", "a", "b"], "unexpected argument 'b' found"),
    (&["restore", "/tmp", "p"], "--version <N>; see cloud-client restore --help"),
    (&["restore", "/tmp", "p", "--version", "1", "--at", "2026-01-01T00:00:00Z"], "cannot be used with"),
    (&["restore", "/tmp", "p", "--version", "x"], "invalid value 'x' for '--version <N>'"),
];

/// The same for `cloud-load` (every option that takes a value, and the
/// positional arguments).
const LOAD_CASES: &[(&[&str], &str)] = &[
    (
        &[],
        "required arguments were not provided: <SERVER_IP>, <SERVER_PORT>; see cloud-load --help",
    ),
    (
        &["127.0.0.1"],
        "required arguments were not provided: <SERVER_PORT>",
    ),
    (
        &["localhost", "7000"],
        "invalid value 'localhost' for '<SERVER_IP>'",
    ),
    (
        &["127.0.0.1", "70000"],
        "invalid value '70000' for '<SERVER_PORT>'",
    ),
    (
        &["127.0.0.1", "7000", "--duratoin", "3"],
        "unexpected argument '--duratoin' found (a similar argument exists: '--duration')",
    ),
    (
        &["127.0.0.1", "7000", "-n", "many"],
        "invalid value 'many' for '--connections <CONNECTIONS>'",
    ),
    (
        &["127.0.0.1", "7000", "-u", "ten"],
        "invalid value 'ten' for '--users <USERS>'",
    ),
    (
        &["127.0.0.1", "7000", "-r", "0"],
        "invalid value '0' for '--pull-every <SECS>': not a positive number",
    ),
    (
        &["127.0.0.1", "7000", "--push-every", "nan"],
        "'--push-every <SECS>': not a positive number",
    ),
    (
        &["127.0.0.1", "7000", "-r", "1e20"],
        "'--pull-every <SECS>': too large",
    ),
    (
        &["127.0.0.1", "7000", "--push-every", "1e30"],
        "'--push-every <SECS>': too large",
    ),
    (
        &["127.0.0.1", "7000", "-d", "18446744073709551616"],
        "'--duration <SECS>': too large",
    ),
    (
        &["127.0.0.1", "7000", "--setup-timeout", "1e20"],
        "'--setup-timeout <SECS>': too large",
    ),
    (
        &["127.0.0.1", "7000", "--reply-timeout", "4e-324"],
        "'--reply-timeout <SECS>': too small",
    ),
    (
        &["127.0.0.1", "7000", "--push-size", "1K"],
        "'--push-size <PUSH_SIZE>'",
    ),
    (
        &["127.0.0.1", "7000", "-d", "0.0"],
        "invalid value '0.0' for '--duration <SECS>'",
    ),
    (
        &["127.0.0.1", "7000", "--duration=inf"],
        "'--duration <SECS>': not a positive number",
    ),
    (
        &["127.0.0.1", "7000", "--source", "::1"],
        "invalid value '::1' for '--source <SOURCES>'",
    ),
    (
        &["127.0.0.1", "7000", "--connect-rate", "fast"],
        "'--connect-rate <CONNECT_RATE>'",
    ),
    (
        &["127.0.0.1", "7000", "--max-handshakes", "x"],
        "'--max-handshakes <MAX_HANDSHAKES>'",
    ),
    (
        &["127.0.0.1", "7000", "--setup-timeout", "0"],
        "'--setup-timeout <SECS>': not a positive number",
    ),
    (
        &["127.0.0.1", "7000", "--reply-timeout=-1"],
        "'--reply-timeout <SECS>': not a positive number",
    ),
    (
        &["127.0.0.1", "7000", "--go-file"],
        "a value is required for '--go-file <GO_FILE>'",
    ),
    (
        &["127.0.0.1", "7000", "extra"],
        "unexpected argument 'extra' found",
    ),
];

fn check_one_line(program: &str, path: &PathBuf, args: &[&str], needle: &str) {
    let out = run(path, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{program} {args:?}: exit 2\n{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "{program} {args:?}: nothing on stdout"
    );
    assert_eq!(
        stderr.matches('\n').count(),
        1,
        "{program} {args:?}: one line, got:\n{stderr}"
    );
    assert!(stderr.ends_with('\n'), "{program} {args:?}: {stderr:?}");
    assert!(
        stderr.starts_with(&format!("{program}: ")),
        "{program} {args:?}: {stderr}"
    );
    assert!(
        stderr.contains(needle),
        "{program} {args:?}: {needle:?} not in {stderr}"
    );
    assert!(
        !stderr.contains("error:") && !stderr.contains("Usage:"),
        "{program} {args:?}: clap's report folded into one line: {stderr}"
    );
}

#[test]
fn every_wrong_command_line_is_one_line_and_exit_2() {
    for (args, needle) in SERVER_CASES {
        check_one_line("cloud-server", &server_bin(), args, needle);
    }
    for (args, needle) in CLIENT_CASES {
        check_one_line("cloud-client", &client_bin(), args, needle);
    }
    for (args, needle) in LOAD_CASES {
        check_one_line("cloud-load", &load_bin(), args, needle);
    }
    // A join code is a secret: a malformed one is named, never echoed.
    let code = "9f1c2a7e4b6d8053c1e9f2a4b6c8d0e1:secretsecret";
    let out = run(&client_bin(), &["127.0.0.1", "9000", "/tmp", "1", code]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("secretsecret"));
}

#[test]
fn help_and_version_are_still_clap_s() {
    let subs: [(&PathBuf, &[&str]); 7] = [
        (&server_bin(), &["--help"]),
        (&server_bin(), &["devices", "--help"]),
        (&server_bin(), &["export", "--help"]),
        (&client_bin(), &["--help"]),
        (&client_bin(), &["status", "--help"]),
        (&client_bin(), &["restore", "--help"]),
        (&load_bin(), &["--help"]),
    ];
    for (path, args) in subs {
        let out = run(path, args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(
            stdout.contains("Usage:") && stdout.contains("Options:"),
            "{args:?}: {stdout}"
        );
        assert!(stdout.lines().count() > 5, "{args:?}: the whole help");
    }
    for path in [server_bin(), client_bin(), load_bin()] {
        let out = run(&path, &["--version"]);
        assert_eq!(out.status.code(), Some(0));
        assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
    }
}

/// The lines of README's ```text block that starts with `first`.
fn readme_block(first: &str) -> String {
    let readme = include_str!("../README.md");
    let start = readme
        .find(&format!("```text\n{first}"))
        .unwrap_or_else(|| panic!("README has a block starting {first:?}"))
        + "```text\n".len();
    let end = start + readme[start..].find("```").expect("end of the block");
    readme[start..end].trim_end().to_owned()
}

/// What `--help` prints between "Usage:" and the next blank line.
fn help_usage(path: &PathBuf) -> String {
    let out = run(path, &["--help"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let start = text.find("Usage:\n").expect("a Usage: heading") + "Usage:\n".len();
    let end = start
        + text[start..]
            .find("\n\n")
            .expect("a blank line after the usage");
    text[start..end].to_owned()
}

#[test]
fn readme_synopses_are_what_help_prints() {
    assert_eq!(
        readme_block("cloud-server PORT"),
        help_usage(&server_bin()),
        "README 'Running a server' synopsis vs cloud-server --help"
    );
    assert_eq!(
        readme_block("cloud-client SERVER_IP"),
        help_usage(&client_bin()),
        "README 'Running a client' synopsis vs cloud-client --help"
    );
    // Every option --help lists is in the synopsis (also checked against
    // the parser by the binaries' unit tests).
    for path in [server_bin(), client_bin()] {
        let help = String::from_utf8_lossy(&run(&path, &["--help"]).stdout).into_owned();
        let usage = help_usage(&path);
        for word in help.split_whitespace().filter(|w| w.starts_with("--")) {
            let option = word.trim_end_matches([',', '.', ')']);
            if option.len() > 2 && !option.contains('=') && help.contains(&format!("  {option}")) {
                assert!(
                    usage.contains(option),
                    "{option} of --help missing in the synopsis"
                );
            }
        }
    }
}

#[test]
fn devices_shows_utc_times_with_a_z_and_never_for_no_time() {
    let mut server = Server::options().plaintext().start();
    let client = WireClient::new_user(server.addr);
    let user = client.user.to_string();
    let data = server.data.to_str().expect("utf-8 path").to_owned();
    let list = || {
        let out = run(&server_bin(), &["devices", &data, &user]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let header = "DEVICE NAME                     JOINED (UTC)         LAST SEEN (UTC)      STATE";
    let text = list();
    assert_eq!(text.lines().next(), Some(header), "{text}");
    // README's example has the same header.
    let readme = include_str!("../README.md");
    assert!(
        readme.contains(&format!("\n{header}\n")),
        "README Devices example header"
    );
    // Joined now and seen now (the device is connected): both UTC, the
    // same second or a few apart.
    let row = text.lines().nth(1).expect("one device");
    let fields: Vec<&str> = row.split_whitespace().collect();
    let now = chrono::Utc::now();
    for field in [fields[2], fields[3]] {
        let t = chrono::DateTime::parse_from_rfc3339(field).expect("RFC 3339 time");
        assert!(field.ends_with('Z') && field.len() == 20, "{field}");
        assert!(
            (now - t.with_timezone(&chrono::Utc)).num_seconds().abs() < 120,
            "{field}"
        );
    }
    drop(client);
    // The server stopped (the command reads the data directory either
    // way), so the connection's end writes nothing after the edit below.
    server.stop();
    // An old device and one with no time recorded, written as the
    // server's device table holds them (seconds since the epoch).
    let table = server
        .data
        .join(".cloudservice-server")
        .join(&user)
        .join("devices.json");
    let json = std::fs::read_to_string(&table).expect("devices.json");
    let mut value: serde_json::Value = serde_json::from_str(&json).expect("json");
    let devices = value["devices"].as_array_mut().expect("devices");
    devices[0]["joined"] = 1_577_934_245u64.into();
    devices[0]["last_seen"] = 1_609_556_645u64.into();
    let mut never = devices[0].clone();
    never["id"] = 2.into();
    never["last_seen"] = 0.into();
    devices.push(never);
    std::fs::write(&table, serde_json::to_vec(&value).expect("json")).expect("write");
    let text = list();
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert!(
        rows[0].contains(" 2020-01-02T03:04:05Z 2021-01-02T03:04:05Z "),
        "{text}"
    );
    assert!(rows[1].contains(" 2020-01-02T03:04:05Z never "), "{text}");
}
