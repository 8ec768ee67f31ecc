//! Tests of the ignore rules: gitignore semantics table, the built-in
//! defaults and their `!` overrides, bad lines, and property tests.

use super::*;
use proptest::prelude::*;

fn rules(text: &str) -> IgnoreRules {
    let (rules, errors) = IgnoreRules::from_text(text);
    assert!(errors.is_empty(), "{errors:?}");
    rules
}

#[test]
fn defaults_compile_and_catch_the_usual_temporary_files() {
    let (r, errors) = IgnoreRules::from_text("");
    assert!(errors.is_empty());
    for path in [
        ".notes.txt.swp",
        "src/.main.rs.swo",
        "a/b/.x.swx",
        "4913",
        "deep/dir/4913",
        "report.docx~",
        "sub/.#draft.org",
        "#draft.org#",
        ".~lock.budget.ods#",
        "docs/.~lock.letter.odt#",
        "~$budget.xlsx",
        "film.mkv.part",
        "dl/setup.exe.crdownload",
        "x/y/z.tmp",
    ] {
        assert_eq!(r.decide(path, false), Decision::Ignored, "{path}");
    }
    for path in [
        "notes.txt",
        "swp",
        "a.swpx",
        "49130",
        "x~y",
        "lock.ods#",
        "$budget.xlsx",
        "part",
        "a.parts",
        "tmp/file",
        "dir.tmpl",
        IGNORE_FILE,
        "NAME.cs-move-0011223344556677-1",
        "a (conflict 2 2026-12-01 031500).txt",
    ] {
        assert_eq!(r.decide(path, false), Decision::Synced, "{path}");
    }
}

#[test]
fn gitignore_semantics_table() {
    let r = rules(
        "# comment\n\
         \n\
         /build\n\
         node_modules/\n\
         *.log\n\
         !keep.log\n\
         docs/**/draft-*\n\
         \\#literal\n\
         !*.tmp\n",
    );
    let table: &[(&str, bool, Decision)] = &[
        // anchored: only at the root
        ("build", true, Decision::Ignored),
        ("build/out.o", false, Decision::Ignored),
        ("src/build", true, Decision::Synced),
        // directory-only
        ("node_modules", true, Decision::Ignored),
        ("web/node_modules/x/y.js", false, Decision::Ignored),
        ("node_modules", false, Decision::Synced),
        // any depth, and re-included by a later `!`
        ("a.log", false, Decision::Ignored),
        ("x/y/b.log", false, Decision::Ignored),
        ("keep.log", false, Decision::Synced),
        ("sub/keep.log", false, Decision::Synced),
        // `**`
        ("docs/draft-1.md", false, Decision::Ignored),
        ("docs/a/b/draft-2.md", false, Decision::Ignored),
        ("other/draft-3.md", false, Decision::Synced),
        // escaped `#`
        ("#literal", false, Decision::Ignored),
        // a default re-included
        ("x.tmp", false, Decision::Synced),
        ("x.swp", false, Decision::Ignored),
        // the rules file itself
        (IGNORE_FILE, false, Decision::Synced),
    ];
    for &(path, is_dir, want) in table {
        assert_eq!(r.decide(path, is_dir), want, "{path} dir={is_dir}");
    }
}

#[test]
fn cloudignore_cannot_ignore_itself_nor_is_a_nested_one_special() {
    let r = rules(".cloudignore\n*\n");
    assert_eq!(r.decide(IGNORE_FILE, false), Decision::Synced);
    assert_eq!(r.decide("sub/.cloudignore", false), Decision::Ignored);
    assert_eq!(r.decide("anything", false), Decision::Ignored);
}

#[test]
fn a_negation_below_an_ignored_directory_does_not_reinclude() {
    // As in git: an excluded directory is never entered.
    let r = rules("cache/\n!cache/keep.txt\n");
    assert_eq!(r.decide("cache/keep.txt", false), Decision::Ignored);
    // Excluding the contents instead of the directory lets `!` work.
    let r = rules("cache/*\n!cache/keep.txt\n");
    assert_eq!(r.decide("cache/keep.txt", false), Decision::Synced);
    assert_eq!(r.decide("cache/other", false), Decision::Ignored);
}

#[test]
fn bad_lines_are_reported_and_the_rest_applies() {
    let (r, errors) = IgnoreRules::from_text("*.log\n[z-a]\n*.bak\n");
    assert_eq!(errors.len(), 1, "{errors:?}");
    match &errors[0] {
        RuleError::BadPattern { line, pattern, .. } => {
            assert_eq!((*line, pattern.as_str()), (2, "[z-a]"));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(errors[0].to_string().contains("line 2"));
    assert!(r.ignores("a.log", false));
    assert!(r.ignores("a.bak", false));
    assert!(!r.ignores("a.txt", false));
}

#[test]
fn ignores_either_covers_directory_only_rules() {
    let r = rules("out/\n");
    assert!(!r.ignores("out", false));
    assert!(r.ignores("out", true));
    assert!(r.ignores_either("out"));
    assert!(!r.ignores_either("in"));
}

fn name() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,6}(\\.(txt|md|rs|jpg))?".prop_filter("a default's name", |n| n != "4913")
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(name(), 1..5).prop_map(|parts| parts.join("/"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Whatever lies below an ignored directory is ignored, at any depth.
    #[test]
    fn below_an_ignored_directory_everything_is_ignored(dir in path(), rest in path(), is_dir: bool) {
        let last = dir.rsplit('/').next().unwrap_or(&dir).to_owned();
        let r = rules(&format!("{last}/\n"));
        prop_assert!(r.ignores(&dir, true));
        let below = format!("{dir}/{rest}");
        prop_assert!(r.ignores(&below, is_dir));
    }

    /// Plain names (no temporary-file shape) are synced under the defaults,
    /// and a rule naming one ignores exactly the paths with that name.
    #[test]
    fn a_name_rule_ignores_that_name_at_any_depth(p in path(), other in name()) {
        let defaults = IgnoreRules::default();
        prop_assert_eq!(defaults.decide(&p, false), Decision::Synced);
        let last = p.rsplit('/').next().unwrap_or(&p).to_owned();
        let r = rules(&last);
        prop_assert!(r.ignores(&p, false));
        let components: Vec<&str> = p.split('/').collect();
        let other_path = format!("{}/{other}", components[..components.len() - 1].join("/"));
        let other_path = other_path.trim_start_matches('/');
        let want = if other == last { Decision::Ignored } else { Decision::Synced };
        // A sibling is ignored only if its name is the ignored one (or an
        // ancestor's name is).
        let ancestor_named = components[..components.len() - 1].contains(&last.as_str());
        if !ancestor_named {
            prop_assert_eq!(r.decide(other_path, false), want);
        }
    }

    /// A later `!name` undoes an earlier `name` (and any default).
    #[test]
    fn negation_reincludes(p in path(), ext in "(swp|tmp|part)") {
        let file = format!("{p}.{ext}");
        prop_assert!(IgnoreRules::default().ignores(&file, false));
        let last = file.rsplit('/').next().unwrap_or(&file).to_owned();
        let r = rules(&format!("!{last}\n"));
        prop_assert_eq!(r.decide(&file, false), Decision::Synced);
    }
}

/// The outside tester's lost conflict copy: `!foo.tmp` re-included a name
/// the defaults ignore, a conflict on it made `foo (conflict 2 …).tmp`, and
/// that name still matched `*.tmp`, so the copy was hidden (and deleted on
/// the device it came from). A copy is decided as its original.
#[test]
fn a_conflict_copy_is_decided_as_the_path_it_copies() {
    let r = rules("!foo.tmp\n*.log\n!app.log\nbuild/\n");
    for (path, is_dir, want) in [
        (
            "foo (conflict 2 2026-12-01 171547).tmp",
            false,
            Decision::Synced,
        ),
        (
            "d/foo (conflict 12 2026-12-01 171547 3).tmp",
            false,
            Decision::Synced,
        ),
        (
            "bar (conflict 2 2026-12-01 171547).tmp",
            false,
            Decision::Ignored,
        ),
        (
            "app (conflict 2 2026-12-01 171547).log",
            false,
            Decision::Synced,
        ),
        (
            "x (conflict 2 2026-12-01 171547).log",
            false,
            Decision::Ignored,
        ),
        // A conflict directory (§7.4.1) of a synced file, and what is below it.
        (
            "notes (conflict 2 2026-12-01 171547)/foo.tmp",
            false,
            Decision::Synced,
        ),
        (
            "notes (conflict 2 2026-12-01 171547)/a.log",
            false,
            Decision::Ignored,
        ),
        (
            "build (conflict 2 2026-12-01 171547)",
            true,
            Decision::Ignored,
        ),
        (
            "build (conflict 2 2026-12-01 171547)/x.c",
            false,
            Decision::Ignored,
        ),
        // Not a conflict tag: decided as written.
        ("foo (conflict x).tmp", false, Decision::Ignored),
        ("foo (conflict 2 2026-12-01).tmp", false, Decision::Ignored),
    ] {
        assert_eq!(r.decide(path, is_dir), want, "{path}");
    }
}

/// A synced folder nested inside another keeps its `.cloudservice` (device
/// key, index) out of the outer one, at every depth, whatever the rules say.
#[test]
fn a_nested_state_folder_is_never_synced() {
    let r = rules("!.cloudservice\n!.cloudservice/**\n");
    for (path, is_dir) in [
        ("inner/.cloudservice", true),
        ("inner/.cloudservice/identity", false),
        ("a/b/c/.cloudservice/tmp/x", false),
    ] {
        assert_eq!(r.decide(path, is_dir), Decision::Ignored, "{path}");
    }
    for path in [
        "inner/.cloudservice-notes",
        "inner/x.cloudservice",
        "inner/file",
    ] {
        assert_eq!(r.decide(path, false), Decision::Synced, "{path}");
    }
}

/// A regular file named `.cloudservice` below the top level is the user's
/// and synced (breaker13's L2: it never synced and nothing listed it); the
/// same name as a directory, or anything below such a directory, is a
/// nested folder's state and never synced, whatever the rules.
#[test]
fn a_file_named_like_the_state_folder_below_the_top_is_synced() {
    for text in ["", "!.cloudservice\n", "*.txt\n"] {
        let r = rules(text);
        for path in ["sub/.cloudservice", "a/b/c/.cloudservice"] {
            assert_eq!(r.decide(path, false), Decision::Synced, "{path} {text:?}");
            assert_eq!(r.decide(path, true), Decision::Ignored, "{path} {text:?}");
            let below = format!("{path}/x");
            assert_eq!(r.decide(&below, false), Decision::Ignored, "{below}");
        }
        assert!(r.ignores_either("sub/.cloudservice"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Under any rules, a conflict copy of a path (as the server names it,
    /// PROTOCOL.md §7.4) gets the decision of that path.
    #[test]
    fn conflict_copies_share_their_originals_decision(
        p in path(),
        ext in "(swp|tmp|part|txt|log)",
        client in 1u64..100_000,
        attempt in 1u32..4,
        rule in "(\\*\\.tmp|\\*\\.log|!\\*\\.tmp|[a-z]{1,3}/|![a-z]{1,3}\\.log)",
    ) {
        let file = format!("{p}.{ext}");
        let wire = crate::protocol::WirePath::new(&file).expect("a legal path");
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_764_605_747);
        let copy = crate::protocol::conflict::conflict_path(&wire, client, when, attempt);
        let r = rules(&format!("{rule}\n"));
        prop_assert_eq!(r.decide(copy.as_str(), false), r.decide(&file, false), "{}", copy);
    }
}
