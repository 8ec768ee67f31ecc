//! The world of the planner property test: a base tree, user actions on
//! each device's folder, a schedule, and the properties checked at the end.

pub mod device;
pub mod server;

use cloudservice::client::fsutil::Stat;
use cloudservice::protocol::WirePath;
use device::{Device, Disk};
use server::{Content, Node, Server};
use std::collections::{BTreeMap, BTreeSet};

/// Names everything is built from: few, so that the devices' changes meet.
const NAMES: [&str; 4] = ["a", "b", "c", "a.txt"];

/// A user action on one device's folder; numbers pick among what exists
/// when it runs (modulo), so any list of actions is valid and shrinks well.
#[derive(Debug, Clone)]
pub enum Action {
    /// Write a new content to an existing file or a new one in a directory.
    Write { at: u16, name: u8 },
    /// `rm` a file or `rm -r` a directory.
    Remove { at: u16 },
    /// `mkdir` in a directory.
    MakeDir { at: u16, name: u8 },
    /// `mv` an entry into a directory under a name (over a file too).
    Move { at: u16, to: u16, name: u8 },
    /// A file becomes a directory of the same name or the reverse.
    TypeChange { at: u16 },
    /// `mv f t; mkdir f; mv t f/f`.
    IntoOwnDir { at: u16 },
    /// `rm -r to; mv at to`: an entry renamed onto the path of another,
    /// a directory onto a file's path or the reverse (breaker18 F7).
    Onto { at: u16, to: u16 },
    /// `mv a t; mv b a; mv t b`: two entries swapped, directories,
    /// files or one of each, at any depths (breaker14 F2).
    Swap { at: u16, to: u16 },
}

/// A whole case: a base tree, actions per device, and the schedule.
#[derive(Debug, Clone)]
pub struct Case {
    /// (parent pick, name, is_dir) for each base entry.
    pub base: Vec<(u16, u8, bool)>,
    /// (device, action).
    pub actions: Vec<(u8, Action)>,
    /// Which of the enabled steps to take, in turn.
    pub schedule: Vec<u16>,
    pub devices: u8,
}

fn join(dir: Option<&WirePath>, name: &str) -> WirePath {
    let text = match dir {
        Some(d) => format!("{d}/{name}"),
        None => name.to_owned(),
    };
    WirePath::new(&text).expect("model names are valid")
}

/// The directories of a tree, with the root as `None`.
fn dirs_of<T>(tree: &BTreeMap<WirePath, T>, is_dir: impl Fn(&T) -> bool) -> Vec<Option<WirePath>> {
    std::iter::once(None)
        .chain(
            tree.iter()
                .filter(|(_, n)| is_dir(n))
                .map(|(p, _)| Some(p.clone())),
        )
        .collect()
}

/// Where the test's content numbers come from.
#[derive(Default)]
pub struct Contents {
    next: Content,
}

impl Contents {
    fn fresh(&mut self) -> Content {
        self.next += 1;
        self.next
    }
}

/// Builds the base tree (at most three levels).
pub fn base_tree(case: &Case, contents: &mut Contents) -> BTreeMap<WirePath, Node> {
    let mut tree = BTreeMap::new();
    for (pick, name, is_dir) in &case.base {
        let dirs = dirs_of(&tree, |n| *n == Node::Dir);
        let dir = &dirs[*pick as usize % dirs.len()];
        if dir.as_ref().is_some_and(|d| d.depth() >= 3) {
            continue;
        }
        let path = join(dir.as_ref(), NAMES[*name as usize % NAMES.len()]);
        if tree.contains_key(&path) {
            continue;
        }
        let node = if *is_dir {
            Node::Dir
        } else {
            Node::File(contents.fresh())
        };
        tree.insert(path, node);
    }
    tree
}

/// What one device did: the paths it touched and the contents it wrote.
#[derive(Debug, Default)]
pub struct Did {
    pub touched: Vec<WirePath>,
    pub wrote: BTreeSet<Content>,
}

fn pick<T: Clone>(items: &[T], at: u16) -> Option<T> {
    (!items.is_empty()).then(|| items[at as usize % items.len()].clone())
}

/// Performs `action` on `dev`'s folder.
pub fn perform(dev: &mut Device, action: &Action, contents: &mut Contents, did: &mut Did) {
    let entries: Vec<WirePath> = dev.disk.keys().cloned().collect();
    let files: Vec<WirePath> = dev
        .disk
        .iter()
        .filter(|(_, d)| matches!(d, Disk::File(..)))
        .map(|(p, _)| p.clone())
        .collect();
    let dirs = dirs_of(&dev.disk, |d| *d == Disk::Dir);
    let name = |n: u8| NAMES[n as usize % NAMES.len()];
    let mut write = |dev: &mut Device, path: &WirePath, did: &mut Did| {
        let c = contents.fresh();
        let mut stat = dev.stat_for(c);
        // Written in place (`echo >> f`): the file keeps its inode.
        if let Some(Disk::File(_, was)) = dev.disk.get(path) {
            stat.ino = was.ino;
        }
        dev.disk.insert(path.clone(), Disk::File(c, stat));
        did.wrote.insert(c);
        did.touched.push(path.clone());
    };
    match *action {
        Action::Write { at, name: n } => {
            let mut slots: Vec<WirePath> = files.clone();
            for d in &dirs {
                if d.as_ref().is_none_or(|d| d.depth() < 3) {
                    slots.push(join(d.as_ref(), name(n)));
                }
            }
            if let Some(path) = pick(&slots, at) {
                if !matches!(dev.disk.get(&path), Some(Disk::Dir)) {
                    write(dev, &path, did);
                }
            }
        }
        Action::Remove { at } => {
            if let Some(path) = pick(&entries, at) {
                dev.disk.retain(|p, _| !p.is_within(&path));
                did.touched.push(path);
            }
        }
        Action::MakeDir { at, name: n } => {
            if let Some(dir) = pick(&dirs, at) {
                let path = join(dir.as_ref(), name(n));
                if !dev.disk.contains_key(&path) && dir.as_ref().is_none_or(|d| d.depth() < 3) {
                    dev.disk.insert(path.clone(), Disk::Dir);
                    did.touched.push(path);
                }
            }
        }
        Action::Move { at, to, name: n } => {
            let (Some(from), Some(dir)) = (pick(&entries, at), pick(&dirs, to)) else {
                return;
            };
            let dest = join(dir.as_ref(), name(n));
            if dest.is_within(&from) || dest.depth() > 4 {
                return;
            }
            if dev.move_local(&from, &dest) {
                did.touched.extend([from, dest]);
            }
        }
        Action::TypeChange { at } => {
            let Some(path) = pick(&entries, at) else {
                return;
            };
            let was_dir = dev.disk.get(&path) == Some(&Disk::Dir);
            dev.disk.retain(|p, _| !p.is_within(&path));
            if was_dir {
                write(dev, &path, did);
            } else {
                dev.disk.insert(path.clone(), Disk::Dir);
                did.touched.push(path);
            }
        }
        Action::IntoOwnDir { at } => {
            let Some(file) = pick(&files, at) else {
                return;
            };
            if file.depth() >= 3 {
                return;
            }
            let tmp = join(file.parent().as_ref(), "moving");
            if dev.disk.contains_key(&tmp) || !dev.move_local(&file, &tmp) {
                return;
            }
            dev.disk.insert(file.clone(), Disk::Dir);
            let inner = join(Some(&file), file.file_name());
            dev.move_local(&tmp, &inner);
            did.touched.extend([file, tmp, inner]);
        }
        Action::Onto { at, to } => {
            let (Some(from), Some(dest)) = (pick(&entries, at), pick(&entries, to)) else {
                return;
            };
            if dest.is_within(&from) || from.is_within(&dest) {
                return;
            }
            dev.disk.retain(|p, _| !p.is_within(&dest));
            dev.move_local(&from, &dest);
            did.touched.extend([from, dest]);
        }
        Action::Swap { at, to } => {
            let (Some(one), Some(two)) = (pick(&entries, at), pick(&entries, to)) else {
                return;
            };
            if one.is_within(&two) || two.is_within(&one) {
                return;
            }
            let tmp = join(one.parent().as_ref(), "moving");
            if dev.disk.contains_key(&tmp) || !dev.move_local(&one, &tmp) {
                return;
            }
            dev.move_local(&two, &one);
            dev.move_local(&tmp, &two);
            did.touched.extend([one, two, tmp]);
        }
    }
}

/// A stat record to copy (whatever fields the platform's record has).
pub fn template() -> Stat {
    Stat::of(&std::fs::metadata(".").expect("the working directory"))
}

/// A conflict copy's name, as the server and the applier make them.
pub fn is_conflict_copy(path: &WirePath) -> bool {
    path.components()
        .any(|c| c.contains(" (conflict ") || c.starts_with("conflict "))
}

/// The tree a device shows, by content.
pub fn shown(dev: &Device) -> BTreeMap<WirePath, Node> {
    dev.disk
        .iter()
        .map(|(p, d)| {
            let node = match d {
                Disk::Dir => Node::Dir,
                Disk::File(c, _) => Node::File(*c),
            };
            (p.clone(), node)
        })
        .collect()
}

/// The server's tree, by content.
pub fn served(server: &Server) -> BTreeMap<WirePath, Node> {
    server
        .tree
        .iter()
        .map(|(p, (n, _))| (p.clone(), *n))
        .collect()
}
