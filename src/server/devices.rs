//! Per-device credentials of each user (PROTOCOL.md §4.6), as files under
//! the data directory:
//!
//! ```text
//! .cloudservice-server/<user>/devices.json   each device: id, name, joined, last seen,
//!                                            SHA-256 of its key (written by the user's actor)
//! .cloudservice-server/<user>/join_code      SHA-256 of the join code, if one was made
//!                                            (written by `cloud-server rotate-join`)
//! .cloudservice-server/<user>/join_code.generation
//!                                            "GENERATION MADE": how many rotations made
//!                                            it, when (R-4.6.17: a restore keeps the later)
//! .cloudservice-server/<user>/invites/<hex>  one file per unused one-time invite, named
//!                                            by the SHA-256 of its code (`cloud-server
//!                                            invite`); the join that uses it removes it
//! .cloudservice-server/revoked/<user>.<id>   present while device <id> is revoked
//!                                            (written by `cloud-server revoke`)
//! ```
//! Every file is replaced atomically (temporary file, rename) with mode
//! 0600. The running server's actor writes only `devices.json`; the
//! operator's commands write only the other two, so the two processes never
//! write the same file. Keys and codes are kept as SHA-256 digests (a copy of
//! the data directory does not hand out credentials) and compared in
//! constant time ([`subtle`]).

use crate::protocol::{ClientId, Secret, UserId};
use crate::server::security_state::JoinCode;
use crate::server::store::DataPaths;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use subtle::ConstantTimeEq;

/// File name of a user's device table.
pub const DEVICES_FILE: &str = "devices.json";
/// File name of a user's join-code digest.
pub const JOIN_CODE_FILE: &str = "join_code";
/// File name of its generation and making time (R-4.6.17).
pub const JOIN_GENERATION_FILE: &str = "join_code.generation";
/// Directory (under a user's state) of unused one-time invites.
pub const INVITES_DIR: &str = "invites";
/// Directory (under the state root) of revocation markers.
pub const REVOKED_DIR: &str = "revoked";

/// SHA-256 of a secret: what the data directory keeps instead of the secret.
pub fn digest(secret: &Secret) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, &secret.0);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Whether `presented` is the secret whose digest is `stored`, in time that
/// does not depend on where the bytes differ.
pub fn matches(stored: &[u8; 32], presented: &Secret) -> bool {
    bool::from(digest(presented).ct_eq(stored))
}

/// 64 hex digits.
pub fn hex32(bytes: &[u8; 32]) -> String {
    Secret(*bytes).to_hex()
}

/// The 32 bytes written as 64 hex digits (surrounding blanks ignored).
pub fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    text.parse::<Secret>().ok().map(|s| s.0)
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// One device of a user, as `devices.json` keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Its client ID.
    pub id: ClientId,
    /// The name it gave when joining (may be empty).
    pub name: String,
    /// When it joined, seconds since the Unix epoch.
    pub joined: u64,
    /// Its last accepted handshake, seconds since the Unix epoch.
    pub last_seen: u64,
    /// SHA-256 of its key, hex; `None`: a device that joined with a plain
    /// `Hello` and has no key yet (§4.6, keyless devices).
    pub key_sha256: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct DeviceFile {
    devices: Vec<Device>,
}

/// What a presented secret is worth for one registered device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCheck {
    /// The device has a key and this is it.
    Match,
    /// The device has a key and this is not it.
    Mismatch,
    /// The device has no key (joined with a plain `Hello`, or before keys
    /// existed).
    Keyless,
}

/// Why a device file or command failed.
#[derive(Debug)]
pub enum DevicesError {
    /// Reading or writing a file.
    Io(PathBuf, io::Error),
    /// A file that does not parse.
    Corrupt(PathBuf, String),
    /// No such user in the data directory.
    UnknownUser(UserId),
    /// No such device of that user.
    UnknownDevice(UserId, ClientId),
}

impl fmt::Display for DevicesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DevicesError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            DevicesError::Corrupt(p, why) => write!(f, "{} is damaged: {why}", p.display()),
            DevicesError::UnknownUser(u) => write!(f, "no user {u} in this data directory"),
            DevicesError::UnknownDevice(u, d) => write!(f, "user {u} has no device {d}"),
        }
    }
}

impl std::error::Error for DevicesError {}

/// Replaces `path` with `bytes` atomically, mode 0600.
///
/// # Errors
/// Creating, writing, syncing or renaming the temporary file.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), DevicesError> {
    write_file(path, bytes, true)
}

fn write_file(path: &Path, bytes: &[u8], sync: bool) -> Result<(), DevicesError> {
    let io_err = |e| DevicesError::Io(path.to_path_buf(), e);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err)?;
    file.write_all(bytes).map_err(io_err)?;
    if sync {
        file.sync_all().map_err(io_err)?;
    }
    std::fs::rename(&tmp, path).map_err(io_err)
}

/// A user's device table, owned by the user's actor while the server runs.
#[derive(Debug)]
pub struct DeviceBook {
    file: PathBuf,
    devices: BTreeMap<ClientId, Device>,
}

impl DeviceBook {
    /// Reads `devices.json` of `user` (an absent file is an empty table).
    ///
    /// # Errors
    /// Reading the file, or a file that does not parse.
    pub fn load(paths: &DataPaths, user: &UserId) -> Result<DeviceBook, DevicesError> {
        let file = paths.user_state(user).join(DEVICES_FILE);
        let devices = match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice::<DeviceFile>(&bytes)
                .map_err(|e| DevicesError::Corrupt(file.clone(), e.to_string()))?
                .devices
                .into_iter()
                .map(|d| (d.id, d))
                .collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(DevicesError::Io(file, e)),
        };
        Ok(DeviceBook { file, devices })
    }

    /// Writes the table back, synced to disk.
    ///
    /// # Errors
    /// [`write_private`]'s.
    pub fn save(&self) -> Result<(), DevicesError> {
        self.save_with(true)
    }

    /// Writes the table back; `sync`: fsync before the rename (the server's
    /// `--fsync`), else it survives a crash of the process only.
    ///
    /// # Errors
    /// [`write_private`]'s.
    pub fn save_with(&self, sync: bool) -> Result<(), DevicesError> {
        let table = DeviceFile {
            devices: self.devices.values().cloned().collect(),
        };
        let bytes = serde_json::to_vec_pretty(&table)
            .map_err(|e| DevicesError::Corrupt(self.file.clone(), e.to_string()))?;
        write_file(&self.file, &bytes, sync)
    }

    /// Every device, by ID.
    pub fn devices(&self) -> impl Iterator<Item = &Device> {
        self.devices.values()
    }

    /// Registers device `id` (replacing a record a crash left behind for
    /// an ID the journal never gave out) with `key`, or without one.
    pub fn add(&mut self, id: ClientId, name: &str, key: Option<&Secret>, now: u64) {
        self.devices.insert(
            id,
            Device {
                id,
                name: name.to_owned(),
                joined: now,
                last_seen: now,
                key_sha256: key.map(|k| hex32(&digest(k))),
            },
        );
    }

    /// Gives device `id` a key (a keyless device's first `KeyHello`).
    pub fn set_key(&mut self, id: ClientId, key: &Secret, now: u64) {
        match self.devices.get_mut(&id) {
            Some(d) => {
                d.key_sha256 = Some(hex32(&digest(key)));
                d.last_seen = now;
            }
            None => self.add(id, "", Some(key), now),
        }
    }

    /// Takes back `key` from device `id` when it is still the device's key:
    /// the handshake that gave it (a keyless device's first `KeyHello`) was
    /// refused after all, so its client never learned it (R-4.6.2,
    /// R-4.6.13). True when the device is keyless again.
    pub fn withdraw_key(&mut self, id: ClientId, key: &Secret) -> bool {
        if self.check(id, key) != KeyCheck::Match {
            return false;
        }
        match self.devices.get_mut(&id) {
            Some(d) => {
                d.key_sha256 = None;
                true
            }
            None => false,
        }
    }

    /// Records an accepted handshake of `id`.
    pub fn touch(&mut self, id: ClientId, now: u64) {
        if let Some(d) = self.devices.get_mut(&id) {
            d.last_seen = now;
        }
    }

    /// Checks `presented` against device `id`'s key. A device absent from
    /// the table joined before keys existed: keyless. A damaged digest
    /// matches nothing.
    pub fn check(&self, id: ClientId, presented: &Secret) -> KeyCheck {
        let Some(stored) = self.devices.get(&id).and_then(|d| d.key_sha256.as_ref()) else {
            return KeyCheck::Keyless;
        };
        match parse_hex32(stored) {
            Some(stored) if matches(&stored, presented) => KeyCheck::Match,
            _ => KeyCheck::Mismatch,
        }
    }
}

/// A user's devices with whether each is revoked, for `cloud-server
/// devices`.
///
/// # Errors
/// [`DevicesError::UnknownUser`]; reading the table.
pub fn list(paths: &DataPaths, user: &UserId) -> Result<Vec<(Device, bool)>, DevicesError> {
    if !user_exists(paths, user) {
        return Err(DevicesError::UnknownUser(*user));
    }
    let book = DeviceBook::load(paths, user)?;
    Ok(book
        .devices()
        .map(|d| (d.clone(), is_revoked(paths, user, d.id)))
        .collect())
}

/// Lifts the revocation of device `id` of `user` (its key works again).
/// Returns whether it was revoked.
///
/// # Errors
/// Removing the marker.
pub fn reinstate(paths: &DataPaths, user: &UserId, id: ClientId) -> Result<bool, DevicesError> {
    let file = revocation_file(paths, user, id);
    match std::fs::remove_file(&file) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(DevicesError::Io(file, e)),
    }
}

/// `.cloudservice-server/<user>/join_code`.
pub fn join_code_file(paths: &DataPaths, user: &UserId) -> PathBuf {
    paths.user_state(user).join(JOIN_CODE_FILE)
}

/// The digest of `user`'s join code; `None` while no code was made (then
/// the user ID alone lets a device join, as before device keys).
///
/// # Errors
/// Reading the file, or a file that is not 64 hex digits.
pub fn join_digest(paths: &DataPaths, user: &UserId) -> Result<Option<[u8; 32]>, DevicesError> {
    let file = join_code_file(paths, user);
    match std::fs::read_to_string(&file) {
        Ok(text) => parse_hex32(&text)
            .map(Some)
            .ok_or_else(|| DevicesError::Corrupt(file, "not a SHA-256 digest".into())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(DevicesError::Io(file, e)),
    }
}

/// `user`'s join code with its generation (R-4.6.17); `None` while no
/// code was made. A code made before generations were counted is
/// generation 1, made when its file was last written.
///
/// # Errors
/// [`join_digest`]'s; a generation file that does not parse.
pub fn join_code(paths: &DataPaths, user: &UserId) -> Result<Option<JoinCode>, DevicesError> {
    let Some(digest) = join_digest(paths, user)? else {
        return Ok(None);
    };
    let file = paths.user_state(user).join(JOIN_GENERATION_FILE);
    let (generation, made) = match std::fs::read_to_string(&file) {
        Ok(text) => {
            let mut words = text.split_whitespace().map(str::parse::<u64>);
            match (words.next(), words.next()) {
                (Some(Ok(generation)), Some(Ok(made))) => (generation, made),
                _ => return Err(DevicesError::Corrupt(file, "not GENERATION MADE".into())),
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let code = join_code_file(paths, user);
            let made = std::fs::metadata(&code)
                .and_then(|m| m.modified())
                .map_err(|e| DevicesError::Io(code, e))?
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            (1, made)
        }
        Err(e) => return Err(DevicesError::Io(file, e)),
    };
    Ok(Some(JoinCode {
        generation,
        made,
        digest,
    }))
}

/// Makes `code` `user`'s join code. The generation is written first: a
/// crash between the two files leaves the old code claiming the newer
/// generation, which a restore's merge (R-4.6.17) resolves to the same
/// code, never to an older one.
///
/// # Errors
/// Writing either file.
pub fn set_join_code(
    paths: &DataPaths,
    user: &UserId,
    code: &JoinCode,
) -> Result<(), DevicesError> {
    write_private(
        &paths.user_state(user).join(JOIN_GENERATION_FILE),
        format!("{} {}\n", code.generation, code.made).as_bytes(),
    )?;
    write_private(&join_code_file(paths, user), hex32(&code.digest).as_bytes())
}

/// Whether `user` exists in the data directory (its folder and state).
pub fn user_exists(paths: &DataPaths, user: &UserId) -> bool {
    paths.user_root(user).is_dir() && paths.user_state(user).is_dir()
}

/// Makes a new join code for `user` and keeps its digest; the previous
/// code (or the bare user ID) and every unused invite stop letting devices
/// join. Registered
/// devices are not touched: they authenticate with their keys.
///
/// # Errors
/// [`DevicesError::UnknownUser`]; writing the file.
pub fn rotate_join(paths: &DataPaths, user: &UserId) -> Result<Secret, DevicesError> {
    if !user_exists(paths, user) {
        return Err(DevicesError::UnknownUser(*user));
    }
    let generation = join_code(paths, user)?.map_or(0, |c| c.generation) + 1;
    let code = Secret::random();
    set_join_code(
        paths,
        user,
        &JoinCode {
            generation,
            made: unix_now(),
            digest: digest(&code),
        },
    )?;
    // A new code retires every earlier way in, unused invites included.
    let invites = invites_dir(paths, user);
    match std::fs::remove_dir_all(&invites) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(DevicesError::Io(invites, e));
        }
        _ => {}
    }
    Ok(code)
}

/// `.cloudservice-server/<user>/invites/`.
pub fn invites_dir(paths: &DataPaths, user: &UserId) -> PathBuf {
    paths.user_state(user).join(INVITES_DIR)
}

/// Makes a one-time invite for `user`: a code that lets exactly one device
/// join (beside the join code, if any). It stays valid until used or until
/// the next `rotate_join`.
///
/// # Errors
/// [`DevicesError::UnknownUser`]; writing the file.
pub fn invite(paths: &DataPaths, user: &UserId) -> Result<Secret, DevicesError> {
    if !user_exists(paths, user) {
        return Err(DevicesError::UnknownUser(*user));
    }
    let dir = invites_dir(paths, user);
    crate::private_dir::create_all(&dir).map_err(|e| DevicesError::Io(dir.clone(), e))?;
    let code = Secret::random();
    write_private(
        &dir.join(hex32(&digest(&code))),
        format!("invited {}\n", unix_now()).as_bytes(),
    )?;
    Ok(code)
}

/// Uses up the invite whose code is `secret`: true when there was one (it
/// is gone now). The file is found by the SHA-256 of the secret, so the
/// lookup reveals nothing about any other invite's code.
///
/// # Errors
/// Removing the file for a reason other than its absence.
pub fn take_invite(
    paths: &DataPaths,
    user: &UserId,
    secret: &Secret,
) -> Result<bool, DevicesError> {
    if secret.is_none() {
        return Ok(false);
    }
    let file = invites_dir(paths, user).join(hex32(&digest(secret)));
    match std::fs::remove_file(&file) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(DevicesError::Io(file, e)),
    }
}

/// `.cloudservice-server/revoked/`.
pub fn revoked_dir(paths: &DataPaths) -> PathBuf {
    paths.state_root().join(REVOKED_DIR)
}

fn revocation_file(paths: &DataPaths, user: &UserId, id: ClientId) -> PathBuf {
    revoked_dir(paths).join(format!("{user}.{id}"))
}

/// Whether device `id` of `user` is revoked.
pub fn is_revoked(paths: &DataPaths, user: &UserId, id: ClientId) -> bool {
    revocation_file(paths, user, id).exists()
}

/// Revokes device `id` of `user`: its key is refused from now on, and a
/// running server closes its connections (it watches [`revoked_dir`]).
///
/// # Errors
/// Unknown user or device; writing the marker.
pub fn revoke(paths: &DataPaths, user: &UserId, id: ClientId) -> Result<(), DevicesError> {
    if !user_exists(paths, user) {
        return Err(DevicesError::UnknownUser(*user));
    }
    let book = DeviceBook::load(paths, user)?;
    if !book.devices.contains_key(&id) {
        return Err(DevicesError::UnknownDevice(*user, id));
    }
    let dir = revoked_dir(paths);
    crate::private_dir::create_all(&dir).map_err(|e| DevicesError::Io(dir, e))?;
    write_private(
        &revocation_file(paths, user, id),
        format!("revoked {}\n", unix_now()).as_bytes(),
    )
}

/// Marks device `id` of `user` revoked without looking it up: a restore
/// carries a revocation forward for a device the backup may not list
/// (R-4.6.17).
///
/// # Errors
/// Writing the marker.
pub fn mark_revoked(
    paths: &DataPaths,
    user: &UserId,
    id: ClientId,
    why: &str,
) -> Result<(), DevicesError> {
    let dir = revoked_dir(paths);
    crate::private_dir::create_all(&dir).map_err(|e| DevicesError::Io(dir, e))?;
    write_private(
        &revocation_file(paths, user, id),
        format!("revoked {} {why}\n", unix_now()).as_bytes(),
    )
}

/// Every revoked (user, device), from the marker names (others ignored).
///
/// # Errors
/// Listing the directory (an absent one is empty).
pub fn all_revoked(paths: &DataPaths) -> io::Result<BTreeSet<(UserId, ClientId)>> {
    let mut out = BTreeSet::new();
    let entries = match std::fs::read_dir(revoked_dir(paths)) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let name = entry?.file_name();
        let Some((user, id)) = name.to_str().and_then(|n| n.split_once('.')) else {
            continue;
        };
        if let (Ok(user), Ok(id)) = (user.parse::<UserId>(), id.parse::<ClientId>()) {
            out.insert((user, id));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_in(dir: &Path) -> (DataPaths, UserId) {
        let paths = DataPaths {
            base: dir.to_path_buf(),
        };
        let user = UserId([7; 16]);
        std::fs::create_dir_all(paths.user_root(&user)).unwrap();
        std::fs::create_dir_all(paths.user_state(&user)).unwrap();
        (paths, user)
    }

    #[test]
    fn keys_match_only_themselves_and_survive_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let (paths, user) = user_in(dir.path());
        let mut book = DeviceBook::load(&paths, &user).unwrap();
        let key = Secret::random();
        book.add(1, "laptop", Some(&key), 100);
        book.add(2, "old", None, 100);
        book.save().unwrap();
        let book = DeviceBook::load(&paths, &user).unwrap();
        assert_eq!(book.check(1, &key), KeyCheck::Match);
        for _ in 0..64 {
            let mut other = key;
            other.0[rand::random_range(0..32)] ^= 1 << rand::random_range(0..8);
            assert_eq!(book.check(1, &other), KeyCheck::Mismatch);
        }
        assert_eq!(book.check(1, &Secret::NONE), KeyCheck::Mismatch);
        assert_eq!(book.check(2, &key), KeyCheck::Keyless);
        assert_eq!(book.check(3, &key), KeyCheck::Keyless);
        let file = paths.user_state(&user).join(DEVICES_FILE);
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(!text.contains(&key.to_hex()), "only the digest is stored");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn join_codes_rotate_and_revocations_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let (paths, user) = user_in(dir.path());
        assert_eq!(join_digest(&paths, &user).unwrap(), None);
        let first = rotate_join(&paths, &user).unwrap();
        let second = rotate_join(&paths, &user).unwrap();
        let stored = join_digest(&paths, &user).unwrap().unwrap();
        assert!(matches(&stored, &second) && !matches(&stored, &first));
        // Each rotation counts one generation up (R-4.6.17); a code made
        // before generations were counted is generation 1.
        let now = join_code(&paths, &user).unwrap().unwrap();
        assert_eq!((now.generation, now.digest), (2, stored));
        std::fs::remove_file(paths.user_state(&user).join(JOIN_GENERATION_FILE)).unwrap();
        assert_eq!(join_code(&paths, &user).unwrap().unwrap().generation, 1);
        rotate_join(&paths, &user).unwrap();
        assert_eq!(join_code(&paths, &user).unwrap().unwrap().generation, 2);
        let stranger = UserId([8; 16]);
        assert!(matches!(
            rotate_join(&paths, &stranger),
            Err(DevicesError::UnknownUser(_))
        ));
        let once = invite(&paths, &user).unwrap();
        assert!(!take_invite(&paths, &user, &Secret::NONE).unwrap());
        assert!(!take_invite(&paths, &user, &second).unwrap());
        assert!(take_invite(&paths, &user, &once).unwrap());
        assert!(!take_invite(&paths, &user, &once).unwrap(), "used up");
        let dropped = invite(&paths, &user).unwrap();
        rotate_join(&paths, &user).unwrap();
        assert!(
            !take_invite(&paths, &user, &dropped).unwrap(),
            "rotation drops invites"
        );
        let mut book = DeviceBook::load(&paths, &user).unwrap();
        book.add(1, "a", Some(&Secret::random()), 1);
        book.save().unwrap();
        assert!(matches!(
            revoke(&paths, &user, 2),
            Err(DevicesError::UnknownDevice(_, 2))
        ));
        assert!(!is_revoked(&paths, &user, 1));
        revoke(&paths, &user, 1).unwrap();
        assert!(is_revoked(&paths, &user, 1));
        std::fs::write(revoked_dir(&paths).join("junk"), b"").unwrap();
        let all = all_revoked(&paths).unwrap();
        assert_eq!(all.into_iter().collect::<Vec<_>>(), vec![(user, 1)]);
    }
}
