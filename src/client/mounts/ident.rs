//! A file system's identity beyond its device number (PROTOCOL.md
//! outside tester breaker19 G1): Linux hands a tmpfs re-created
//! after the old one was unmounted the anonymous device number just freed,
//! and a second disk image attached to the same loop device (a disk swapped
//! on the same port) is the same `/dev/loopN` again, so `st_dev` alone took
//! another file system for the drive and its missing files for removals.
//!
//! What is recorded per device number, in `FOLDER/.cloudservice/mounts`
//! (a sidecar of the index: no index format change):
//!
//! - `statfs`' `f_fsid`: ext4, xfs and btrfs derive it from the file
//!   system's UUID (another `mkfs` is another one; a block-level copy of
//!   the drive has the same), tmpfs gives a random one per instance on
//!   recent kernels (6.18: two tmpfs mounted one after the other at the
//!   same place got `ecc5bf9b06b231bd` and `b58981b0cfb3fb00`, both device
//!   0:40); 0 where the file system gives none (older tmpfs, many FUSE
//!   file systems).
//! - `statfs`' `f_type`: the kind of file system.
//! - `statx`' `STATX_MNT_ID_UNIQUE` (Linux 6.8 and later): a mount ID never
//!   handed out again. The same drive mounted again gets a new one, so it
//!   only says "the very mount seen before"; 0 where the kernel lacks it.
//!
//! With the identity, where the file system was mounted inside the folder
//! (its top directory, found by device numbers when it was recorded;
//! outside tester breaker20 F2): when another file system is at that place
//! later, a missing file's place is on "the file system around the
//! recorded one's mount point" only if it is above that directory, however
//! deep the recorded files sat (all of them below `Photos/d` made
//! `Photos/d` look like the mount point, and another drive at `Photos`
//! look like the old one gone, for ever).
//!
//! [`same_fs`] is the decision; [`FsIdent::of`] reads a path's; the sidecar
//! is [`load`] and [`save`].

use crate::client::fsutil::write_atomic;
use crate::protocol::WirePath;
use std::collections::BTreeMap;
use std::path::Path;

/// The name of the sidecar in the state folder.
pub const MOUNTS_FILE: &str = "mounts";

/// The sidecar's first line (its format version): 2 adds the mount point.
const HEADER: &str = "cloudservice-mounts 2";

/// Version 1's first line (no mount points), still read.
const HEADER_1: &str = "cloudservice-mounts 1";

/// `STATX_MNT_ID_UNIQUE` (linux/stat.h; not named by rustix 1.1).
const STATX_MNT_ID_UNIQUE: u32 = 0x4000;

/// What tells one file system from another where device numbers do not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsIdent {
    /// `f_fsid` (0: none given).
    pub fsid: u64,
    /// `f_type`.
    pub kind: u64,
    /// The unique mount ID (0: unknown).
    pub mount: u64,
    /// Its top directory in the folder when recorded (its mount point;
    /// `None`: unknown, or the folder's own file system). Not part of the
    /// identity ([`same_fs`] does not look at it).
    pub point: Option<WirePath>,
}

/// Whether a file system is the one recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sameness {
    /// The same mount, or the same file system ID.
    Same,
    /// Another kind of file system, or another file system ID.
    Other,
    /// Another mount (or none known) and no file system ID on either side:
    /// the same only with a recorded file found untouched on it (the
    /// judge's evidence).
    Unsure,
}

/// `now` against `recorded`, for one device number. The same
/// unique mount ID is the same mount; otherwise the file system IDs decide
/// where both are known (the same drive mounted again keeps its ID, another
/// drive or a re-created tmpfs has another); with none, "unsure". A
/// block-level copy of the drive has the drive's ID: the ctime rule
/// ([`super::older_state`]) is what tells it apart.
pub fn same_fs(recorded: &FsIdent, now: &FsIdent) -> Sameness {
    if recorded.mount != 0 && recorded.mount == now.mount {
        Sameness::Same
    } else if recorded.kind != now.kind {
        Sameness::Other
    } else if recorded.fsid != 0 && now.fsid != 0 {
        if recorded.fsid == now.fsid {
            Sameness::Same
        } else {
            Sameness::Other
        }
    } else {
        Sameness::Unsure
    }
}

impl FsIdent {
    /// The identity of the file system holding `path` (a symlink is not
    /// followed for the mount ID; `statfs` looks at what it names, so call
    /// it on directories and regular files). `None` when it cannot be
    /// looked at.
    pub fn of(path: &Path) -> Option<FsIdent> {
        use rustix::fs::{statfs, statvfs, statx, AtFlags, StatxFlags, CWD};
        let fs = statfs(path).ok()?;
        let vfs = statvfs(path).ok()?;
        let unique = StatxFlags::from_bits_retain(STATX_MNT_ID_UNIQUE);
        let mount = match statx(CWD, path, AtFlags::SYMLINK_NOFOLLOW, unique) {
            Ok(st) if st.stx_mask & STATX_MNT_ID_UNIQUE != 0 => st.stx_mnt_id,
            _ => 0,
        };
        Some(FsIdent {
            fsid: vfs.f_fsid,
            kind: fs.f_type as u64,
            mount,
            point: None,
        })
    }
}

/// The sidecar's text for `idents` (by device number, hex fields; the
/// mount point's bytes in hex, `-` for none, so any name fits one line).
pub fn render(idents: &BTreeMap<u64, FsIdent>) -> String {
    let mut out = format!("{HEADER}\n");
    for (dev, id) in idents {
        let point = match &id.point {
            Some(p) => p.as_str().bytes().map(|b| format!("{b:02x}")).collect(),
            None => "-".to_string(),
        };
        out.push_str(&format!(
            "{dev:x} {:x} {:x} {:x} {point}\n",
            id.fsid, id.kind, id.mount
        ));
    }
    out
}

/// A mount point as [`render`] writes it (`None` for `-`; an error for
/// anything but hex of a valid path).
fn parse_point(field: &str) -> Result<Option<WirePath>, ()> {
    if field == "-" {
        return Ok(None);
    }
    if !field.len().is_multiple_of(2) || !field.is_ascii() {
        return Err(());
    }
    let bytes = (0..field.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&field[i..i + 2], 16).map_err(|_| ()))
        .collect::<Result<Vec<u8>, ()>>()?;
    let text = String::from_utf8(bytes).map_err(|_| ())?;
    WirePath::new(&text).map(Some).map_err(|_| ())
}

/// Why a sidecar could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Not this format (or a later version).
    Header,
    /// A record line that is not four hex numbers and a mount point (four
    /// numbers in version 1) (its line number).
    Line(usize),
}

/// Parses [`render`]'s text (or version 1's, without mount points).
///
/// # Errors
/// A wrong first line, or a line that is not four hex numbers and (from
/// version 2) a mount point.
pub fn parse(text: &str) -> Result<BTreeMap<u64, FsIdent>, ParseError> {
    let mut lines = text.lines();
    let with_point = match lines.next() {
        Some(HEADER) => true,
        Some(HEADER_1) => false,
        _ => return Err(ParseError::Header),
    };
    let mut out = BTreeMap::new();
    for (n, line) in lines.enumerate() {
        let fields: Vec<&str> = line.split(' ').collect();
        let (numbers, point) = match (with_point, fields.as_slice()) {
            (true, [a, b, c, d, point]) => (
                [*a, *b, *c, *d],
                parse_point(point).map_err(|()| ParseError::Line(n + 2))?,
            ),
            (false, [a, b, c, d]) => ([*a, *b, *c, *d], None),
            _ => return Err(ParseError::Line(n + 2)),
        };
        let numbers: Vec<Option<u64>> = numbers
            .iter()
            .map(|f| u64::from_str_radix(f, 16).ok())
            .collect();
        match numbers.as_slice() {
            [Some(dev), Some(fsid), Some(kind), Some(mount)] => {
                out.insert(
                    *dev,
                    FsIdent {
                        fsid: *fsid,
                        kind: *kind,
                        mount: *mount,
                        point,
                    },
                );
            }
            _ => return Err(ParseError::Line(n + 2)),
        }
    }
    Ok(out)
}

/// The sidecar of the state folder `state` (empty when there is none yet:
/// an index from before it, whose devices are then judged by number only
/// until the next full comparison records them). A damaged one is said and
/// read as empty, the same.
pub fn load(state: &Path) -> BTreeMap<u64, FsIdent> {
    let file = state.join(MOUNTS_FILE);
    match std::fs::read_to_string(&file) {
        Ok(text) => parse(&text).unwrap_or_else(|e| {
            log::warn!(
                "{}: not readable ({e:?}); file systems inside the folder are told apart by device number only until the next full comparison",
                file.display()
            );
            BTreeMap::new()
        }),
        Err(_) => BTreeMap::new(),
    }
}

/// Writes the sidecar (atomically).
///
/// # Errors
/// Writing or renaming the file.
pub fn save(state: &Path, idents: &BTreeMap<u64, FsIdent>) -> std::io::Result<()> {
    write_atomic(&state.join(MOUNTS_FILE), render(idents).as_bytes())
}
