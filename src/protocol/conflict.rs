//! Conflict-copy names (PROTOCOL.md §7): where the losing side of a concurrent
//! edit is kept, so that both versions survive.

use super::ids::ClientId;
use super::limits::MAX_COMPONENT_BYTES;
use super::path::WirePath;
use chrono::{DateTime, Datelike, Timelike, Utc};
use std::time::{SystemTime, UNIX_EPOCH};

/// The conflict-copy name for `path`, made by client `client` at `when`, with
/// collision counter `attempt` (1 for the first try, then 2, 3, …).
///
/// `report.txt` → `report (conflict 2 2026-11-26 101233).txt`; a second
/// attempt gives `report (conflict 2 2026-11-26 101233 2).txt`. The stem is
/// cut (at a character boundary) so the name stays within 255 bytes.
pub fn conflict_path(
    path: &WirePath,
    client: ClientId,
    when: SystemTime,
    attempt: u32,
) -> WirePath {
    let name = path.file_name();
    let (stem, ext) = match name.rfind('.') {
        Some(dot) if dot > 0 => name.split_at(dot),
        _ => (name, ""),
    };
    let mut tag = format!(" (conflict {client} {}", utc_stamp(when));
    if attempt > 1 {
        tag.push_str(&format!(" {attempt}"));
    }
    tag.push(')');
    let room = MAX_COMPONENT_BYTES.saturating_sub(tag.len() + ext.len());
    let mut cut = stem.len().min(room);
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    let file = format!("{}{}{}", &stem[..cut], tag, ext);
    let full = match path.parent() {
        Some(parent) => format!("{parent}/{file}"),
        None => file,
    };
    // The result keeps the rules: same parent, a non-empty component of at most
    // 255 bytes made of the old name's characters plus ASCII. Only when the
    // whole path would pass 4096 bytes does the copy move to the top level
    // (still distinct per attempt).
    WirePath::new(&full).unwrap_or_else(|_| {
        // `tag` is " (conflict …)"; its inside names the copy on its own.
        let inner = &tag[2..tag.len() - 1];
        let ext = if inner.len() + ext.len() <= MAX_COMPONENT_BYTES {
            ext
        } else {
            ""
        };
        WirePath::new(&format!("{inner}{ext}")).unwrap_or_else(|_| path.clone())
    })
}

/// Most conflict names tried (attempts 1 … 999) before giving up.
pub const MAX_CONFLICT_ATTEMPTS: u32 = 1000;

/// The first conflict name for `path` (attempt 1, 2, … below
/// [`MAX_CONFLICT_ATTEMPTS`], all stamped `when`) that `taken` says is free;
/// `None` when every one is taken. The one search both ends use: the server
/// asks its tree and folder, the client its index and folder.
///
/// # Errors
/// The first error `taken` returns.
pub fn free_conflict_path<E>(
    path: &WirePath,
    client: ClientId,
    when: SystemTime,
    mut taken: impl FnMut(&WirePath) -> Result<bool, E>,
) -> Result<Option<WirePath>, E> {
    for attempt in 1..MAX_CONFLICT_ATTEMPTS {
        let candidate = conflict_path(path, client, when, attempt);
        if !taken(&candidate)? {
            return Ok(Some(candidate));
        }
    }
    Ok(None)
}

/// `YYYY-MM-DD HHMMSS` in UTC (§7.4), the year zero-padded to at least four
/// digits and unsigned. A time before 1970 is written as the epoch's second
/// (as it always was: a clock that wrong names nothing), one past chrono's
/// last year (262143) as its last second; no input panics.
fn utc_stamp(when: SystemTime) -> String {
    let secs = when.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let at = i64::try_from(secs)
        .ok()
        .and_then(|s| DateTime::from_timestamp(s, 0))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    // Fields rather than `%Y`: chrono writes years past 9999 as `+10000`.
    format!(
        "{:04}-{:02}-{:02} {:02}{:02}{:02}",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn names_follow_the_spec() {
        // 2026-11-26 10:12:33 UTC
        let t = at(1_795_687_953);
        let p = WirePath::new("docs/report.txt").unwrap();
        assert_eq!(
            conflict_path(&p, 2, t, 1).as_str(),
            "docs/report (conflict 2 2026-11-26 101233).txt"
        );
        assert_eq!(
            conflict_path(&p, 2, t, 3).as_str(),
            "docs/report (conflict 2 2026-11-26 101233 3).txt"
        );
        let hidden = WirePath::new(".bashrc").unwrap();
        assert_eq!(
            conflict_path(&hidden, 7, t, 1).as_str(),
            ".bashrc (conflict 7 2026-11-26 101233)"
        );
        let long = WirePath::new(&format!("{}.txt", "é".repeat(125))).unwrap();
        let named = conflict_path(&long, 1, t, 1);
        assert!(named.file_name().len() <= MAX_COMPONENT_BYTES);
        assert!(named.as_str().ends_with(").txt"));
    }

    #[test]
    fn a_path_too_long_for_a_copy_beside_it_gets_one_at_the_top() {
        let t = at(1_795_687_953);
        let parent = vec!["p".repeat(202); 20].join("/");
        let long = WirePath::new(&format!("{parent}/name.txt")).unwrap();
        assert!(long.as_str().len() > 4096 - 40);
        let first = conflict_path(&long, 4, t, 1);
        let second = conflict_path(&long, 4, t, 2);
        assert_eq!(first.as_str(), "conflict 4 2026-11-26 101233.txt");
        assert_eq!(second.as_str(), "conflict 4 2026-11-26 101233 2.txt");
    }

    #[test]
    fn stamps_across_leap_days_and_year_lengths() {
        // Expected values from GNU date(1): `date -u -d @SECS '+%Y-%m-%d %H%M%S'`.
        for (secs, stamp) in [
            (0, "1970-01-01 000000"),
            (951_782_400, "2000-02-29 000000"),
            (951_868_799, "2000-02-29 235959"),
            (4_107_542_399, "2100-02-28 235959"),
            (4_107_542_400, "2100-03-01 000000"),
            (253_402_300_799, "9999-12-31 235959"),
            (253_402_300_800, "10000-01-01 000000"),
            (1_795_687_953, "2026-11-26 101233"),
        ] {
            assert_eq!(utc_stamp(at(secs)), stamp, "{secs}");
        }
    }

    #[test]
    fn clocks_out_of_range_give_a_stamp_not_a_panic() {
        let before = UNIX_EPOCH - Duration::from_secs(86_400);
        assert_eq!(utc_stamp(before), "1970-01-01 000000");
        let last = DateTime::<Utc>::MAX_UTC;
        let far = at(u64::MAX / 2);
        assert_eq!(
            utc_stamp(far),
            format!("{}-12-31 235959", last.year()),
            "past chrono's range: its last second"
        );
    }

    proptest::proptest! {
        /// Every stamp reads back, field by field, as the second it was made from.
        #[test]
        fn a_stamp_reads_back_as_its_second(secs in 0u64..=253_402_300_799) {
            let stamp = utc_stamp(at(secs));
            proptest::prop_assert_eq!(stamp.len(), 17);
            let parsed = chrono::NaiveDateTime::parse_from_str(&stamp, "%Y-%m-%d %H%M%S");
            proptest::prop_assert_eq!(parsed.map(|t| t.and_utc().timestamp()), Ok(secs as i64));
        }
    }
}
