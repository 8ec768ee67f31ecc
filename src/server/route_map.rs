//! The load balancer's user map (PROTOCOL.md §16.1, `deploy/haproxy/`): the
//! lines `cloud-server shard-map` prints for the users a data directory
//! holds against its tag, and the change `cloud-server route` makes when a
//! user moves: the map file rewritten atomically (so a reload sees it) and,
//! given HAProxy's stats socket, the same change made at run time through
//! its runtime API (`set map`, or `add map` for a new key), so no reload is
//! needed. A user routed back to the shard its tag names loses its line
//! (`del map`): the user map holds only users living off their tag's shard
//! one line each.

use super::moves::{self, Away};
use super::store::DataPaths;
use crate::protocol::UserId;
use crate::tls::routing::{key_of_sni, shard_tag, sni_for};
use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Why a route could not be changed.
#[derive(Debug)]
pub enum RouteError {
    /// Neither a user ID nor an SNI of the form `r<32 hex>.route.cloudservice`.
    BadKey(String),
    /// A backend name HAProxy would not take (empty, spaces, `#`).
    BadBackend(String),
    /// The map file cannot be read or written.
    Map(io::Error),
    /// The tag map (`cloudservice-shards.map`) cannot be read.
    Tags(io::Error),
    /// The stats socket cannot be reached.
    Socket(io::Error),
    /// HAProxy answered the command with an error.
    Refused(String),
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteError::BadKey(k) => write!(
                f,
                "{k:?} is neither a user ID nor a routing SNI (r<32 hex digits>.route.cloudservice)"
            ),
            RouteError::BadBackend(b) => write!(f, "{b:?} is not a backend name"),
            RouteError::Map(e) => write!(f, "map file: {e}"),
            RouteError::Tags(e) => write!(f, "tag map: {e}"),
            RouteError::Socket(e) => write!(f, "HAProxy stats socket: {e}"),
            RouteError::Refused(text) => write!(f, "HAProxy refused: {}", text.trim()),
        }
    }
}

impl std::error::Error for RouteError {}

/// The map key for `key`: a user ID becomes its SNI; an SNI is kept (lower
/// case).
///
/// # Errors
/// [`RouteError::BadKey`].
pub fn map_key(key: &str) -> Result<String, RouteError> {
    if let Ok(user) = key.parse::<UserId>() {
        return Ok(sni_for(Some(&user)));
    }
    let lower = key.to_ascii_lowercase();
    match key_of_sni(&lower) {
        Some(_) => Ok(lower),
        None => Err(RouteError::BadKey(key.to_owned())),
    }
}

fn check_backend(backend: &str) -> Result<(), RouteError> {
    let fine = !backend.is_empty()
        && backend
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    if fine {
        Ok(())
    } else {
        Err(RouteError::BadBackend(backend.to_owned()))
    }
}

/// The user-map lines for `paths`' users that shard `shard` holds although
/// their tag names another shard (users made before sharding, users moved
/// in), sorted; users marked moved away are left out.
///
/// # Errors
/// `AllClients/` cannot be listed.
pub fn exceptions(paths: &DataPaths, shard: u8, backend: &str) -> io::Result<Vec<String>> {
    let mut lines = Vec::new();
    let entries = match std::fs::read_dir(paths.all_clients()) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(lines),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Some(user) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<UserId>().ok())
        else {
            continue;
        };
        if shard_tag(&user) != shard && moves::marker(paths, &user) != Some(Away::Moved) {
            lines.push(format!("{} {backend}", sni_for(Some(&user))));
        }
    }
    lines.sort();
    Ok(lines)
}

/// `text` (a map file) with `key`'s line set to `backend` (replaced where
/// it was, else added at the end); comments and other lines kept.
pub fn with_entry(text: &str, key: &str, backend: &str) -> String {
    let mut out = String::new();
    let mut done = false;
    for line in text.lines() {
        if line.split_whitespace().next() == Some(key) {
            if !done {
                out.push_str(&format!("{key} {backend}\n"));
                done = true;
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if !done {
        out.push_str(&format!("{key} {backend}\n"));
    }
    out
}

/// `text` (a map file) without `key`'s lines; comments and other lines kept.
pub fn without_entry(text: &str, key: &str) -> String {
    text.lines()
        .filter(|line| line.split_whitespace().next() != Some(key))
        .map(|line| format!("{line}\n"))
        .collect()
}

/// The backend the tag map `tags` (the text of `cloudservice-shards.map`)
/// sends `sni` to, as HAProxy's `map_beg` does: the first line whose key
/// begins `sni`; comments (`#`) and blank lines skipped.
pub fn tag_backend<'a>(tags: &'a str, sni: &str) -> Option<&'a str> {
    tags.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .find_map(|line| {
            let mut words = line.split_whitespace();
            let key = words.next()?;
            let backend = words.next()?;
            sni.starts_with(key).then_some(backend)
        })
}

/// What [`route`] did to the user map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routed {
    /// The user's line now names the backend (the user lives off its tag's
    /// shard).
    Set(String),
    /// The backend is the one the tag map names for the user, so its line
    /// was removed (or was not there): the tag map routes it.
    Removed(String),
}

/// Routes `key` (a user ID or its SNI) to `backend`: when the tag map
/// `tags` sends the user's tag there, removes the user's line from the map
/// file `map`, else sets it. The file is rewritten atomically (a temporary
/// file renamed over it); with `socket`, the running HAProxy gets the same
/// change (`del map`, or `set map` / `add map`).
///
/// # Errors
/// [`RouteError`]: the file is left as it was when writing fails.
pub fn route(
    map: &Path,
    tags: &Path,
    socket: Option<&Path>,
    key: &str,
    backend: &str,
) -> Result<Routed, RouteError> {
    let key = map_key(key)?;
    check_backend(backend)?;
    let tag_text = std::fs::read_to_string(tags).map_err(RouteError::Tags)?;
    let home = tag_backend(&tag_text, &key) == Some(backend);
    let text = match std::fs::read_to_string(map) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(RouteError::Map(e)),
    };
    let new_text = if home {
        without_entry(&text, &key)
    } else {
        with_entry(&text, &key, backend)
    };
    if new_text != text || !map.exists() {
        let dir = map.parent().unwrap_or(Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(RouteError::Map)?;
        tmp.write_all(new_text.as_bytes())
            .map_err(RouteError::Map)?;
        tmp.as_file().sync_all().map_err(RouteError::Map)?;
        tmp.persist(map).map_err(|e| RouteError::Map(e.error))?;
    }
    if let Some(socket) = socket {
        let name = map.display();
        if home {
            // `del map` answers "Key not found." for a key HAProxy does
            // not have: nothing to remove, which is the goal.
            let reply = command(socket, &format!("del map {name} {key}"))?;
            if !reply.trim().is_empty() && !reply.to_ascii_lowercase().contains("key not found") {
                return Err(RouteError::Refused(reply));
            }
        } else {
            // `set map` changes an entry HAProxy has; it fails for a new
            // key, which `add map` then adds.
            let reply = command(socket, &format!("set map {name} {key} {backend}"))?;
            if !reply.trim().is_empty() {
                let reply = command(socket, &format!("add map {name} {key} {backend}"))?;
                if !reply.trim().is_empty() {
                    return Err(RouteError::Refused(reply));
                }
            }
        }
    }
    Ok(if home {
        Routed::Removed(key)
    } else {
        Routed::Set(key)
    })
}

/// One command on HAProxy's runtime API (non-interactive: HAProxy answers
/// and closes); its answer, empty on success for `set map` / `add map`.
///
/// # Errors
/// [`RouteError::Socket`].
pub fn command(socket: &Path, line: &str) -> Result<String, RouteError> {
    let mut stream = UnixStream::connect(socket).map_err(RouteError::Socket)?;
    let limit = Some(Duration::from_secs(10));
    stream.set_read_timeout(limit).map_err(RouteError::Socket)?;
    stream
        .set_write_timeout(limit)
        .map_err(RouteError::Socket)?;
    stream
        .write_all(format!("{line}\n").as_bytes())
        .map_err(RouteError::Socket)?;
    let mut reply = String::new();
    // HAProxy's answers to these commands are a line or two.
    stream
        .take(64 * 1024)
        .read_to_string(&mut reply)
        .map_err(RouteError::Socket)?;
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_user_ids_or_their_sni() {
        let user: UserId = "9f1c2a7e4b6d8053c1e9f2a4b6c8d0e1".parse().unwrap();
        let sni = "rc99c117fa24baea129134c4bf65f1a8b.route.cloudservice";
        assert_eq!(map_key(&user.to_string()).unwrap(), sni);
        assert_eq!(map_key(&sni.to_uppercase()).unwrap(), sni);
        for bad in ["", "new.cloudservice", "rzz.route.cloudservice", "12"] {
            assert!(matches!(map_key(bad), Err(RouteError::BadKey(_))), "{bad}");
        }
        assert!(check_backend("shard_1").is_ok());
        for bad in ["", "a b", "x#", "a\nb"] {
            assert!(check_backend(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_entry_is_replaced_in_place_or_added() {
        let text = "# users\nra shard0\nrb shard1\n";
        assert_eq!(
            with_entry(text, "ra", "shard2"),
            "# users\nra shard2\nrb shard1\n"
        );
        assert_eq!(
            with_entry(text, "rc", "shard2"),
            "# users\nra shard0\nrb shard1\nrc shard2\n"
        );
        assert_eq!(with_entry("", "rc", "s"), "rc s\n");
        // A key named twice (edited by hand) ends up once.
        assert_eq!(with_entry("ra x\nra y\n", "ra", "z"), "ra z\n");
    }

    #[test]
    fn the_map_file_is_rewritten_without_a_socket() {
        let dir = tempfile::tempdir().unwrap();
        let map = dir.path().join("users.map");
        let tags = dir.path().join("shards.map");
        let user = UserId([9; 16]);
        let key = sni_for(Some(&user));
        let home = format!("shard{}", shard_tag(&user));
        std::fs::write(&tags, format!("# tags\nr{:02x} {home}\n", shard_tag(&user))).unwrap();
        let routed = route(&map, &tags, None, &user.to_string(), "shard_x").unwrap();
        assert_eq!(routed, Routed::Set(key.clone()));
        route(&map, &tags, None, &key, "shard_y").unwrap();
        let text = std::fs::read_to_string(&map).unwrap();
        assert_eq!(text, format!("{key} shard_y\n"));
        let missing = dir.path().join("no.sock");
        assert!(matches!(
            route(&map, &tags, Some(&missing), &key, "shard_z"),
            Err(RouteError::Socket(_))
        ));
        assert_eq!(
            route(&map, &tags, None, &key, &home).unwrap(),
            Routed::Removed(key)
        );
        assert_eq!(std::fs::read_to_string(&map).unwrap(), "");
        assert!(matches!(
            route(&map, &dir.path().join("none"), None, &user.to_string(), "s"),
            Err(RouteError::Tags(_))
        ));
    }

    #[test]
    fn the_tag_map_is_read_as_haproxy_reads_it() {
        let tags = "# comment\n\nr00 shard0\n  r2a   shard42  \nr2 other\nbroken\n";
        assert_eq!(
            tag_backend(tags, "r00ab.route.cloudservice"),
            Some("shard0")
        );
        assert_eq!(
            tag_backend(tags, "r2a11.route.cloudservice"),
            Some("shard42")
        );
        assert_eq!(tag_backend(tags, "r2b11.route.cloudservice"), Some("other"));
        assert_eq!(tag_backend(tags, "rff11.route.cloudservice"), None);
        assert_eq!(tag_backend("", "r00"), None);
        let text = "# users\nra s1\nrb s2\nra s3\n";
        assert_eq!(without_entry(text, "ra"), "# users\nrb s2\n");
        assert_eq!(without_entry(text, "rc"), text);
    }

    #[test]
    fn exceptions_list_users_held_against_their_tag() {
        let dir = tempfile::tempdir().unwrap();
        let paths = DataPaths {
            base: dir.path().to_path_buf(),
        };
        let mut users: Vec<UserId> = (0..40u8).map(|i| UserId([i + 1; 16])).collect();
        users.sort();
        for u in &users {
            std::fs::create_dir_all(paths.user_root(u)).unwrap();
        }
        std::fs::create_dir_all(paths.all_clients().join("junk")).unwrap();
        let shard = shard_tag(&users[0]);
        moves::set_marker(&paths, &users[1], Some(Away::Moved)).unwrap();
        let lines = exceptions(&paths, shard, "shard9").unwrap();
        let want: Vec<String> = {
            let mut w: Vec<String> = users
                .iter()
                .filter(|u| shard_tag(u) != shard && **u != users[1])
                .map(|u| format!("{} shard9", sni_for(Some(u))))
                .collect();
            w.sort();
            w
        };
        assert_eq!(lines, want);
    }
}
