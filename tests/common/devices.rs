//! The usual end-to-end fixture: the real server, a user created from
//! folder `a` with `--once`, and watching clients on `a` and on a second
//! folder `b` of that user, converged.
//!
//! ```ignore
//! let d = TwoDevices::start(|a| write(a, "x.txt", "aaaa"));
//! write(d.a.path(), "y.txt", "new");
//! converge("y.txt travels", &[d.a.path(), d.b.path()]);
//! ```
//! Bind the value (or its clients) for the whole test: dropping a client
//! kills it.

use super::client::{new_user, Client};
use super::server::Server;
use super::wait::converge;
use std::path::Path;
use std::time::Duration;

/// Longer than the client's settle window (a file younger than it counts
/// as still being written and waits): sleep this after writing files a
/// client should treat as finished.
pub const SETTLE: Duration = Duration::from_millis(400);

/// Sleeps [`SETTLE`].
pub fn settle() {
    std::thread::sleep(SETTLE);
}

/// A server and one user with two running devices `a` and `b`.
pub struct TwoDevices {
    pub server: Server,
    pub a: tempfile::TempDir,
    pub b: tempfile::TempDir,
    /// The user ID `new_user` printed.
    pub user: String,
    /// The watching client on `a`.
    pub ca: Client,
    /// The watching client on `b`.
    pub cb: Client,
}

impl TwoDevices {
    /// Fills folder `a` with `prepare`, waits [`SETTLE`], creates the user
    /// from it, starts both clients and waits until `a` and `b` converge.
    pub fn start(prepare: impl FnOnce(&Path)) -> TwoDevices {
        TwoDevices::start_in(&std::env::temp_dir(), prepare)
    }

    /// [`TwoDevices::start`] with both folders made under `base` (a test
    /// that needs a file system with some property chooses where).
    pub fn start_in(base: &Path, prepare: impl FnOnce(&Path)) -> TwoDevices {
        let server = Server::start();
        let a = tempfile::tempdir_in(base).expect("temp dir");
        let b = tempfile::tempdir_in(base).expect("temp dir");
        prepare(a.path());
        settle();
        let user = new_user(server.port, a.path());
        let ca = Client::start(server.port, a.path(), None);
        let cb = Client::start(server.port, b.path(), Some(&user));
        converge("initial", &[a.path(), b.path()]);
        TwoDevices {
            server,
            a,
            b,
            user,
            ca,
            cb,
        }
    }
}
