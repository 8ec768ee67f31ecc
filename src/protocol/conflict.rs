//! Conflict-copy names (PROTOCOL.md §7): where the losing side of a concurrent
//! edit is kept, so that both versions survive.

use super::ids::ClientId;
use super::limits::MAX_COMPONENT_BYTES;
use super::path::WirePath;
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

/// `YYYY-MM-DD HHMMSS` in UTC.
fn utc_stamp(when: SystemTime) -> String {
    let secs = when
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}{:02}{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
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
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_783), (2026, 11, 26));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
