//! End-to-end: `status` of a folder whose first run failed (issue 13): a
//! join the server refused (an unknown user, a wrong join code) or one that
//! never reached a server says "not joined" and why (human and `--json`,
//! exit 1), and a retry with what was missing joins.

mod common;

use common::{free_port, new_user, run_once, status_json, status_text, write, Client, Server};
use std::path::Path;

/// Checks that `folder` reads as not joined, with a last error containing
/// `why`, in both forms.
fn assert_not_joined(folder: &Path, why: &str) {
    let (code, value) = status_json(folder);
    assert_eq!(code, 1, "{value:#}");
    assert_eq!(value["joined"], false, "{value:#}");
    assert_eq!(value["in_sync"], false, "{value:#}");
    assert_eq!(value["device"], 0, "{value:#}");
    let error = value["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains(why),
        "last error {error:?} should say {why:?}"
    );
    let (code, text) = status_text(folder, false);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("state:         not joined"), "{text}");
    assert!(text.contains(why), "{text}");
}

#[test]
fn a_refused_or_unreachable_first_join_is_reported_as_not_joined_and_a_retry_joins() {
    let server = Server::start();
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    let c = tempfile::tempdir().expect("tempdir");
    let (a, b, c) = (a.path(), b.path(), c.path());
    write(a, "k", "k");
    let user = new_user(server.port, a);

    // An unknown user: refused by the server.
    let unknown = "0123456789abcdef0123456789abcdef";
    let out = run_once(server.port, b, Some(unknown));
    assert_eq!(out.status.code(), Some(1));
    assert_not_joined(b, "UnknownUser");
    let (_, value) = status_json(b);
    assert_eq!(value["user"], unknown, "the user it tried: {value:#}");

    // The retry with the right user joins.
    let out = run_once(server.port, b, Some(&user));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, value) = status_json(b);
    assert_eq!(value["joined"], true, "{value:#}");
    assert_eq!(value["user"], user.as_str(), "{value:#}");
    assert!(value["device"].as_u64().is_some_and(|d| d > 0), "{value:#}");
    assert!(value["last_error"].is_null(), "{value:#}");
    assert_eq!(
        std::fs::read_to_string(b.join("k")).ok().as_deref(),
        Some("k")
    );

    // No server at all (a closed port).
    let closed = free_port();
    let out = Client::options(closed, c)
        .user(Some(&user))
        .plaintext()
        .run_once();
    assert_eq!(out.status.code(), Some(1));
    let (_, value) = status_json(c);
    assert_eq!(value["joined"], false, "{value:#}");
    assert!(
        value["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{value:#}"
    );
    let (code, text) = status_text(c, false);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("not joined"), "{text}");
}
