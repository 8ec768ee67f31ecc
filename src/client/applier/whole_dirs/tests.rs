//! The rule of R-5.2.20 on small replies: which directories moved whole.

use super::*;
use crate::client::fsutil::Stat;
use crate::client::index::Entry;

fn p(s: &str) -> WirePath {
    WirePath::new(s).expect("path")
}

fn h(s: &str) -> ContentHash {
    ContentHash::of(s.as_bytes())
}

/// An index holding `dirs` and `files` (path, content), all at version 1.
fn index(dirs: &[&str], files: &[(&str, &str)]) -> Index {
    let mut index = Index::new();
    for d in dirs {
        index.insert(
            p(d),
            Entry {
                kind: EntryKind::Dir,
                version: 1,
            },
        );
    }
    for (f, content) in files {
        index.insert(p(f), Entry::synced_file(Stat::default(), h(content), 1));
    }
    index
}

/// A reply deleting `deleted` (at version 9) and listing `dirs` and `files`.
fn reply(deleted: &[&str], dirs: &[&str], files: &[(&str, &str)]) -> Reply {
    let mut listed = BTreeMap::new();
    for d in dirs {
        listed.insert(p(d), EntryState::Dir);
    }
    for (f, content) in files {
        let state = EntryState::File {
            size: content.len() as u64,
            hash: h(content),
        };
        listed.insert(p(f), state);
    }
    Reply {
        listed,
        deleted: deleted.iter().map(|d| (p(d), 9)).collect(),
        refused: BTreeSet::new(),
    }
}

fn moves(index: &Index, reply: &Reply) -> Vec<(String, String)> {
    plan(index, reply)
        .into_iter()
        .map(|m| (m.from.to_string(), m.to.to_string()))
        .collect()
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_owned(), b.to_owned())
}

const PROJ: &[(&str, &str)] = &[("proj/a.c", "a"), ("proj/b.c", "b"), ("proj/src/s.c", "s")];

#[test]
fn a_directory_renamed_exactly_moves_whole_with_its_version() {
    let index = index(&["proj", "proj/src"], PROJ);
    let reply = reply(
        &["proj"],
        &["project", "project/src"],
        &[
            ("project/a.c", "a"),
            ("project/b.c", "b"),
            ("project/src/s.c", "s"),
        ],
    );
    let planned = plan(&index, &reply);
    assert_eq!(planned.len(), 1, "{planned:?}");
    assert_eq!(planned[0].from, p("proj"));
    assert_eq!(planned[0].to, p("project"));
    assert_eq!(planned[0].version, 9);
    assert_eq!(planned[0].matched, 3);
}

#[test]
fn a_rename_with_an_edit_an_addition_and_a_removal_elsewhere_still_moves_whole() {
    let index = index(&["proj", "proj/src"], PROJ);
    // b.c edited, s.c removed, n.c added: 1 of 3 unchanged is not enough...
    let few = reply(
        &["proj"],
        &["project", "project/src"],
        &[
            ("project/a.c", "a"),
            ("project/b.c", "B"),
            ("project/n.c", "n"),
        ],
    );
    assert_eq!(
        moves(&index, &few),
        vec![],
        "1 of 3 files is not clearly it"
    );
    // ... 2 of 3 is, with one edited elsewhere and one added.
    let most = reply(
        &["proj"],
        &["project", "project/src"],
        &[
            ("project/a.c", "a"),
            ("project/b.c", "B"),
            ("project/src/s.c", "s"),
            ("project/n.c", "n"),
        ],
    );
    assert_eq!(moves(&index, &most), vec![pair("proj", "project")]);
}

#[test]
fn a_target_mostly_filled_from_elsewhere_is_not_the_same_directory() {
    let index = index(&["d"], &[("d/x", "x")]);
    let reply = reply(
        &["d"],
        &["e"],
        &[("e/x", "x"), ("e/1", "1"), ("e/2", "2"), ("e/3", "3")],
    );
    assert_eq!(
        moves(&index, &reply),
        vec![],
        "1 of 4 files of e came from d"
    );
    let half = self::reply(&["d"], &["e"], &[("e/x", "x"), ("e/1", "1")]);
    assert_eq!(moves(&index, &half), vec![pair("d", "e")]);
}

#[test]
fn nothing_moves_without_a_deletion_or_into_a_synced_directory() {
    let index = index(&["proj", "proj/src", "project"], PROJ);
    let files = [
        ("project/a.c", "a"),
        ("project/b.c", "b"),
        ("project/src/s.c", "s"),
    ];
    // A copy: proj stays.
    assert_eq!(moves(&index, &reply(&[], &["project/src"], &files)), vec![]);
    // project is synced here and not deleted: it is not free; proj/src,
    // whose file all went to project/src (new), moved there whole.
    assert_eq!(
        moves(
            &index,
            &reply(&["proj"], &["project", "project/src"], &files)
        ),
        vec![pair("proj/src", "project/src")]
    );
}

#[test]
fn a_target_below_a_deleted_directory_or_inside_the_source_is_refused() {
    let index = index(&["proj", "proj/src", "top"], PROJ);
    let files = [
        ("top/p/a.c", "a"),
        ("top/p/b.c", "b"),
        ("top/p/src/s.c", "s"),
    ];
    // top deleted (not at top/p itself): its removal would take the move.
    let r = reply(&["proj", "top"], &["top", "top/p", "top/p/src"], &files);
    assert_eq!(moves(&index, &r), vec![]);
    let inside = [
        ("proj/x/a.c", "a"),
        ("proj/x/b.c", "b"),
        ("proj/x/src/s.c", "s"),
    ];
    let r = reply(&["proj"], &["proj", "proj/x", "proj/x/src"], &inside);
    assert_eq!(moves(&index, &r), vec![], "into its own subdirectory");
}

#[test]
fn a_deeper_target_a_swap_and_a_chain_are_each_found() {
    let index1 = index(&["proj", "proj/src"], PROJ);
    let deeper = reply(
        &["proj"],
        &["z", "z/proj", "z/proj/src"],
        &[
            ("z/proj/a.c", "a"),
            ("z/proj/b.c", "b"),
            ("z/proj/src/s.c", "s"),
        ],
    );
    assert_eq!(moves(&index1, &deeper), vec![pair("proj", "z/proj")]);
    let two = index(&["a", "b"], &[("a/1", "A1"), ("a/2", "A2"), ("b/1", "B1")]);
    let swap = reply(
        &["a", "b"],
        &["a", "b"],
        &[("a/1", "B1"), ("b/1", "A1"), ("b/2", "A2")],
    );
    assert_eq!(moves(&two, &swap), vec![pair("a", "b"), pair("b", "a")]);
    let chain = reply(
        &["a", "b"],
        &["b", "c"],
        &[("c/1", "B1"), ("b/1", "A1"), ("b/2", "A2")],
    );
    assert_eq!(moves(&two, &chain), vec![pair("a", "b"), pair("b", "c")]);
}

#[test]
fn a_source_inside_a_moving_source_travels_with_it_unless_that_one_is_refused() {
    let index = index(&["p", "p/q"], &[("p/q/1", "1"), ("p/q/2", "2")]);
    let r = reply(&["p"], &["n", "n/q"], &[("n/q/1", "1"), ("n/q/2", "2")]);
    assert_eq!(moves(&index, &r), vec![pair("p", "n")], "p/q goes along");
    let mut refused = r;
    refused.refused.insert(p("p"));
    assert_eq!(moves(&index, &refused), vec![pair("p/q", "n/q")]);
}

#[test]
fn two_sources_never_share_a_target_and_the_best_match_wins() {
    let index = index(
        &["a", "b"],
        &[("a/1", "1"), ("a/2", "2"), ("b/1", "1"), ("b/3", "3")],
    );
    // A copy of a and of b both fit c; a matches more.
    let r = reply(&["a", "b"], &["c"], &[("c/1", "1"), ("c/2", "2")]);
    assert_eq!(moves(&index, &r), vec![pair("a", "c")]);
}

#[test]
fn a_directory_of_only_directories_moves_by_its_subdirectories() {
    let index = index(&["s", "s/x", "s/y"], &[]);
    let r = reply(&["s"], &["t", "t/x", "t/y"], &[]);
    assert_eq!(moves(&index, &r), vec![pair("s", "t")]);
    let empty = self::index(&["e"], &[]);
    assert_eq!(moves(&empty, &self::reply(&["e"], &["f"], &[])), vec![]);
}

#[test]
fn random_renames_of_a_tree_are_found_exactly() {
    // Seeded: a tree of up to 6 directories with up to 5 files each, one
    // directory renamed to a fresh name (maybe deeper), with a few files
    // edited elsewhere; the move found is that one (or none when fewer
    // than half its files stayed the same, or it had none).
    let seed: u64 = std::env::var("WHOLE_DIRS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| crate::client::fsutil::now_ns().unsigned_abs());
    let rounds: u64 = std::env::var("WHOLE_DIRS_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    println!("WHOLE_DIRS_SEED={seed}");
    let mut state = seed | 1;
    let mut next = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n.max(1)
    };
    for round in 0..rounds {
        let ndirs = 1 + next(6) as usize;
        let mut dirs: Vec<String> = vec!["r".to_owned()];
        for i in 1..ndirs {
            let parent = dirs[next(dirs.len() as u64) as usize].clone();
            dirs.push(format!("{parent}/d{i}"));
        }
        let mut files: Vec<(String, String)> = Vec::new();
        for (i, d) in dirs.iter().enumerate() {
            for j in 0..next(6) {
                files.push((format!("{d}/f{j}"), format!("{round}-{i}-{j}")));
            }
        }
        let moved = dirs[next(dirs.len() as u64) as usize].clone();
        let to = match next(3) {
            0 => "new".to_owned(),
            1 => "deep/er/new".to_owned(),
            _ => format!("{}x", moved.replace('/', "_")),
        };
        let mut edited = 0usize;
        let mut own = 0usize;
        let mut listed_files: Vec<(String, String)> = Vec::new();
        for (f, c) in &files {
            if let Some(rest) = f.strip_prefix(&format!("{moved}/")) {
                own += 1;
                let content = match next(4) {
                    0 => {
                        edited += 1;
                        format!("{c}-edited")
                    }
                    _ => c.clone(),
                };
                listed_files.push((format!("{to}/{rest}"), content));
            }
        }
        let mut listed_dirs: Vec<String> = dirs
            .iter()
            .filter_map(|d| {
                (d == &moved).then(|| to.clone()).or_else(|| {
                    d.strip_prefix(&format!("{moved}/"))
                        .map(|r| format!("{to}/{r}"))
                })
            })
            .collect();
        if to.starts_with("deep/") {
            listed_dirs.extend(["deep".to_owned(), "deep/er".to_owned()]);
        }
        let dir_refs: Vec<&str> = dirs.iter().map(String::as_str).collect();
        let file_refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let idx = index(&dir_refs, &file_refs);
        let ld: Vec<&str> = listed_dirs.iter().map(String::as_str).collect();
        let lf: Vec<(&str, &str)> = listed_files
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let r = reply(&[moved.as_str()], &ld, &lf);
        let got = moves(&idx, &r);
        let same = own - edited;
        let subdirs = dirs
            .iter()
            .filter(|d| d.starts_with(&format!("{moved}/")))
            .count();
        let want = if own > 0 { 2 * same > own } else { subdirs > 0 };
        let what = format!(
            "seed {seed} round {round}: {moved} -> {to}, {own} files, {edited} edited, dirs {dirs:?}"
        );
        if want {
            assert_eq!(got, vec![pair(&moved, &to)], "{what}");
        } else {
            // A subdirectory whose own files mostly stayed may still move
            // whole, to its place below the new name.
            for (from, into) in &got {
                let rel = from.strip_prefix(&format!("{moved}/"));
                assert!(rel.is_some(), "{what}: {from} -> {into}");
                assert_eq!(
                    Some(into.as_str()),
                    rel.map(|r| format!("{to}/{r}")).as_deref(),
                    "{what}"
                );
            }
        }
    }
}

/// An index of `dirs` directories below `old`, each with `per` empty
/// files (`old/f*` when `dirs` is 0), and a reply renaming `old` to `new`.
fn empty_files_renamed(dirs: usize, per: usize) -> (Index, Reply) {
    let empty = ContentHash::of(b"");
    let mut index = Index::new();
    let mut listed = BTreeMap::new();
    let dir = Entry {
        kind: EntryKind::Dir,
        version: 1,
    };
    let mut add_dir = |index: &mut Index, rel: &str| {
        index.insert(p(&format!("old{rel}")), dir);
        listed.insert(p(&format!("new{rel}")), EntryState::Dir);
    };
    add_dir(&mut index, "");
    let subdirs: Vec<String> = match dirs {
        0 => vec![String::new()],
        n => (0..n).map(|j| format!("/d{j}")).collect(),
    };
    for sub in &subdirs {
        if !sub.is_empty() {
            add_dir(&mut index, sub);
        }
    }
    for sub in &subdirs {
        for k in 0..per {
            let rel = format!("{sub}/f{k}");
            index.insert(
                p(&format!("old{rel}")),
                Entry::synced_file(Stat::default(), empty, 1),
            );
            listed.insert(
                p(&format!("new{rel}")),
                EntryState::File {
                    size: 0,
                    hash: empty,
                },
            );
        }
    }
    let reply = Reply {
        listed,
        deleted: [(p("old"), 9)].into_iter().collect(),
        refused: BTreeSet::new(),
    };
    (index, reply)
}

/// A directory of 100,000 identical (empty) files renamed is found in a
/// fraction of a second, flat or as 1,000 directories of 100 files with
/// the same names: matching by content alone paired every file with every
/// other (10^10 steps). Asserts the move, prints the time (no timing
/// assert: `cargo test --release --lib plan_of_100000 -- --nocapture`;
/// `WHOLE_DIRS_EMPTY=N` for another count).
#[test]
fn plan_of_100000_empty_files_renamed() {
    let n: usize = std::env::var("WHOLE_DIRS_EMPTY")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    for (dirs, per) in [(0, n), (n / 100, 100)] {
        let (index, reply) = empty_files_renamed(dirs, per);
        let start = std::time::Instant::now();
        let planned = plan(&index, &reply);
        let took = start.elapsed();
        println!("{dirs} directories x {per} empty files renamed: plan took {took:?}");
        assert_eq!(
            planned.first().map(|m| (m.from.as_str(), m.to.as_str())),
            Some(("old", "new"))
        );
        assert_eq!(planned.len(), 1, "{:?}", &planned[..planned.len().min(3)]);
        assert_eq!(planned[0].matched, dirs.max(1) * per);
    }
}
