//! Donors: a deleted file leaves the folder at its step whatever
//! happens; its synced content is kept in the temporary area only when the
//! reply's delta downloads may use it, within the budget; an edit is never
//! a donor; a crash leaves the folder clean and the next start's
//! `clear_tmp` removes the donors.

use super::super::test_folder::{deleted, p, Folder};
use super::super::*;
use crate::chunk::test_bytes;
use crate::client::delta_fetch::wants_delta;
use crate::client::fsutil::hash_file;
use crate::client::state::clear_tmp;

/// A reply entry: a file of `size` bytes whose content nobody here holds.
fn new_file(path: &str, version: u64, size: usize, seed: u64) -> ChangeEntry {
    let data = test_bytes(size, seed ^ 0x5eed);
    ChangeEntry {
        path: p(path),
        version,
        state: EntryState::File {
            size: data.len() as u64,
            hash: ContentHash::of(&data),
        },
        executable: false,
    }
}

impl Folder {
    fn write_bytes(&self, path: &str, data: &[u8]) {
        let full = self.root.join(path);
        fs::create_dir_all(full.parent().expect("parent")).expect("dirs");
        fs::write(full, data).expect("write");
    }

    fn apply_keeping(&mut self, entries: &[ChangeEntry]) -> Applied {
        Applier::new(&self.root, &self.tmp, &mut self.index, 2)
            .handing_over_obtained()
            .keeping_donors()
            .apply(entries, false)
            .expect("apply")
    }

    fn tmp_names(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.tmp)
            .expect("tmp")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

#[test]
fn a_deleted_file_leaves_the_folder_and_its_content_stays_until_removed() {
    let mut f = Folder::new();
    let x = test_bytes(200_000, 1);
    f.write_bytes("X.bin", &x);
    f.sync_all(1);
    let out = f.apply_keeping(&[deleted("X.bin", 2), new_file("Y.bin", 3, 200_000, 2)]);
    assert!(!f.root.join("X.bin").exists(), "X left the folder");
    assert!(f.index.get(&p("X.bin")).is_none(), "and the index");
    assert_eq!(out.fetches.len(), 1, "Y is downloaded");
    assert_eq!(out.donors.len(), 1);
    let donor = &out.donors[0];
    assert_eq!(donor.path, p("X.bin"));
    assert_eq!(donor.hash, ContentHash::of(&x));
    assert_eq!(fs::read(&donor.at).expect("donor"), x);
    assert_eq!(f.tmp_names(), vec![format!("donor-{}", donor.hash)]);
    let mut donors = out.donors;
    remove_donors(&mut donors);
    assert!(f.tmp_names().is_empty(), "removed when the pull is done");
}

#[test]
fn a_crash_leaves_the_folder_clean_and_the_next_start_removes_the_donors() {
    let mut f = Folder::new();
    f.write_bytes("D/a.bin", &test_bytes(100_000, 3));
    f.write_bytes("D/b.bin", &test_bytes(90_000, 4));
    f.write_bytes("keep.txt", b"kept");
    f.sync_all(1);
    let out = f.apply_keeping(&[deleted("D", 2), new_file("E/a.bin", 3, 300_000, 5)]);
    assert_eq!(out.donors.len(), 2);
    // The process dies here: the donors are never removed by the pull.
    drop(out);
    assert_eq!(
        super::super::test_folder::snapshot(&f.root),
        vec![("keep.txt".to_owned(), Some(b"kept".to_vec()))],
        "nothing deleted is left in the folder"
    );
    clear_tmp(&f.tmp).expect("start-up cleaning");
    assert!(
        f.tmp_names().is_empty(),
        "the next start removes the donors"
    );
}

#[test]
fn no_donor_without_a_delta_sized_download_or_without_the_option() {
    let mut f = Folder::new();
    let x = test_bytes(200_000, 6);
    f.write_bytes("X.bin", &x);
    f.write_bytes("Z.bin", &x[..100_000]);
    f.sync_all(1);
    // The reply's only file is too small for a delta download.
    let out = f.apply_keeping(&[deleted("X.bin", 2), new_file("small", 3, 1000, 7)]);
    assert!(out.donors.is_empty());
    assert!(!f.root.join("X.bin").exists());
    assert!(f.tmp_names().is_empty(), "deleted at once, as before");
    // An applier not asked to keep donors deletes as before.
    let out = Applier::new(&f.root, &f.tmp, &mut f.index, 2)
        .handing_over_obtained()
        .apply(
            &[deleted("Z.bin", 4), new_file("Y.bin", 5, 200_000, 8)],
            false,
        )
        .expect("apply");
    assert!(out.donors.is_empty());
    assert!(!f.root.join("Z.bin").exists());
    assert!(f.tmp_names().is_empty());
}

/// Random folders and replies: whatever the sizes, edits and budget, every
/// deleted synced file leaves the folder, an edit stays, a donor holds
/// exactly the synced content of its path, donors are delta-sized, distinct
/// by content, within the budget, and nothing else is left in `tmp/`.
#[test]
fn donors_hold_exactly_what_the_reply_deleted_within_the_budget() {
    for seed in 0..40u64 {
        let mut f = Folder::new();
        let mut rng = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut next = |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let sizes = [0usize, 100, 16_384, 16_385, 40_000, 120_000];
        let mut originals = HashMap::new();
        let count = 1 + next(8) as usize;
        for i in 0..count {
            let size = sizes[next(sizes.len() as u64) as usize];
            // Some files share their content (a copy).
            let data = test_bytes(size, next(3) + 100 * (i as u64 % 2));
            let path = format!("d{}/f{i}", next(2));
            f.write_bytes(&path, &data);
            originals.insert(p(&path), data);
        }
        f.sync_all(1);
        let mut edited = HashSet::new();
        for path in originals.keys() {
            if next(4) == 0 {
                f.write_bytes(path.as_str(), b"edited here, not pushed");
                edited.insert(path.clone());
            }
        }
        let mut entries: Vec<ChangeEntry> = Vec::new();
        for d in ["d0", "d1"] {
            if next(2) == 0 {
                entries.push(deleted(d, 2));
            }
        }
        let downloads = next(3) as usize;
        for i in 0..downloads {
            let size = sizes[next(sizes.len() as u64) as usize];
            entries.push(new_file(&format!("new{i}"), 3, size, seed * 10 + i as u64));
        }
        let budget: u64 = entries
            .iter()
            .filter_map(|e| match e.state {
                EntryState::File { size, .. } if wants_delta(size) => Some(size),
                _ => None,
            })
            .sum();
        let out = f.apply_keeping(&entries);
        let gone: Vec<&WirePath> = originals
            .keys()
            .filter(|path| {
                entries
                    .iter()
                    .any(|e| e.state == EntryState::Deleted && path.is_within(&e.path))
            })
            .collect();
        for path in &gone {
            let here = f.root.join(path.as_str());
            assert_eq!(
                here.exists(),
                edited.contains(*path),
                "seed {seed}: {path}: only an edit stays"
            );
        }
        let mut kept = 0u64;
        let mut hashes = HashSet::new();
        for donor in &out.donors {
            assert!(gone.contains(&&donor.path), "seed {seed}: {}", donor.path);
            assert!(!edited.contains(&donor.path), "seed {seed}: an edit");
            let data = &originals[&donor.path];
            assert!(wants_delta(data.len() as u64), "seed {seed}: size");
            assert_eq!(ContentHash::of(data), donor.hash, "seed {seed}");
            let (hash, len) = hash_file(&donor.at).expect("donor");
            assert_eq!((hash, len), (donor.hash, data.len() as u64), "seed {seed}");
            assert!(hashes.insert(donor.hash), "seed {seed}: one per content");
            kept += len;
        }
        assert!(kept <= budget, "seed {seed}: {kept} > {budget}");
        let mut donors = out.donors;
        remove_donors(&mut donors);
        // What handing over left (files made from local content) aside,
        // tmp/ holds nothing.
        let made: HashSet<String> = out
            .obtained
            .iter()
            .map(|o| {
                o.tmp
                    .file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        let left: Vec<String> = f
            .tmp_names()
            .into_iter()
            .filter(|n| !made.contains(n))
            .collect();
        assert!(left.is_empty(), "seed {seed}: left in tmp/: {left:?}");
    }
}
