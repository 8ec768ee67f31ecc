//! Before a diverged listing is reconciled, the server's kept
//! versions displaced after `common` are read (ListVersions from
//! `common`, §14.2, a page at a time), and those that hold this device's
//! synced state are noted ([`Known`]): the server knew that state and
//! replaced it, so this device follows instead of pushing it again.
//!
//! A server that refuses the listing (no version history) or has dropped
//! the versions (expired, reaped for space) leaves nothing known: the
//! device then pushes its state again, as before version history was
//! looked at. The scan is bounded in pages; past the bound, what was read
//! is used.

use super::reconcile::Known;
use crate::client::connection::Connection;
use crate::client::error::ClientError;
use crate::client::index::Index;
use crate::protocol::{ChangeEntry, History, ListVersions, Message};

/// Most ListVersions pages one reconciliation reads (128 entries each, so
/// about half a million versions displaced after `common`); beyond them the
/// remaining paths are pushed again as if the server had kept nothing.
pub const MAX_SCAN_PAGES: u32 = 4096;

/// A scan in progress: the listing it waits to reconcile, and what is
/// known so far.
#[derive(Debug)]
pub struct KeptScan {
    /// The ListVersions whose VersionList is awaited.
    pub request: u32,
    pages: u32,
    next: ListVersions,
    known: Known,
    /// The diverged reply's History frame and listing, applied once the
    /// scan ends.
    history: History,
    entries: Vec<ChangeEntry>,
}

/// What a scan's frame led to.
#[derive(Debug, PartialEq, Eq)]
pub enum Scanned {
    /// Another page was asked for.
    More,
    /// The scan is over: [`KeptScan::finish`].
    Done,
}

impl KeptScan {
    /// Asks for the first page of the versions displaced after
    /// `history.common`.
    ///
    /// # Errors
    /// When the write fails.
    pub fn start(
        conn: &mut Connection,
        history: History,
        entries: Vec<ChangeEntry>,
    ) -> Result<KeptScan, ClientError> {
        let next = first_page(history.common);
        let request = conn.request(Message::ListVersions(next.clone()))?;
        Ok(KeptScan {
            request,
            pages: 1,
            next,
            known: Known::new(history.common),
            history,
            entries,
        })
    }

    /// Takes the answer to [`KeptScan::request`]: notes what it holds of
    /// `index` and asks for the next page, if any.
    ///
    /// # Errors
    /// When the write fails.
    pub fn on_message(
        &mut self,
        message: Message,
        conn: &mut Connection,
        index: &Index,
    ) -> Result<Scanned, ClientError> {
        let page = match message {
            Message::VersionList(page) => page,
            Message::Error(e) => {
                log::info!(
                    "the server lists no kept versions ({:?}: {}); pushing again what it lacks",
                    e.code,
                    e.message
                );
                return Ok(Scanned::Done);
            }
            other => {
                return Err(ClientError::Protocol(format!(
                    "expected VersionList, got {:?}",
                    other.kind()
                )))
            }
        };
        for kept in &page.entries {
            self.known.note(kept, index);
        }
        match next_page(&self.next, &page) {
            Some(_) if self.pages >= MAX_SCAN_PAGES => {
                log::warn!(
                    "read {} pages of the server's kept versions; the rest is not looked at",
                    self.pages
                );
                Ok(Scanned::Done)
            }
            Some(next) => {
                self.request = conn.request(Message::ListVersions(next.clone()))?;
                self.next = next;
                self.pages += 1;
                Ok(Scanned::More)
            }
            None => Ok(Scanned::Done),
        }
    }

    /// The History frame, the listing and what the scan found.
    pub fn finish(self) -> (History, Vec<ChangeEntry>, Known) {
        (self.history, self.entries, self.known)
    }
}

/// The versions displaced after `common`, over the whole folder (§14.2: the
/// position `(common, none)`; an entry displaced by `common` itself may
/// come too, and [`Known::note`] leaves it out).
fn first_page(common: u64) -> ListVersions {
    ListVersions {
        after_seq: common,
        after: None,
        under: None,
    }
}

/// The request for the page after `page` (asked with `asked`), or `None`
/// when the listing is complete. A page that says "more" but moves the
/// position nowhere ends the scan rather than loop.
fn next_page(asked: &ListVersions, page: &crate::protocol::VersionList) -> Option<ListVersions> {
    let last = page.entries.last()?;
    if !page.more {
        return None;
    }
    let moved = (last.seq, Some(&last.path)) > (asked.after_seq, asked.after.as_ref());
    moved.then(|| ListVersions {
        after_seq: last.seq,
        after: Some(last.path.clone()),
        under: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Cause, KeptKind, KeptVersion, VersionList, WirePath};

    fn kept(seq: u64, path: &str) -> KeptVersion {
        KeptVersion {
            seq,
            since: seq - 1,
            time_ms: 0,
            cause: Cause::Deleted,
            kind: KeptKind::Dir,
            path: WirePath::new(path).unwrap(),
        }
    }

    #[test]
    fn pages_follow_the_last_entry_and_stop_when_complete_or_stuck() {
        let asked = first_page(7);
        assert_eq!((asked.after_seq, asked.after.clone()), (7, None));
        let page = VersionList {
            more: true,
            entries: vec![kept(8, "a"), kept(9, "b")],
        };
        let next = next_page(&asked, &page).unwrap();
        assert_eq!(next.after_seq, 9);
        assert_eq!(next.after, Some(WirePath::new("b").unwrap()));
        // Complete, empty, or a page that does not move: no more asking.
        let done = VersionList {
            more: false,
            ..page.clone()
        };
        assert_eq!(next_page(&asked, &done), None);
        let empty = VersionList {
            more: true,
            entries: vec![],
        };
        assert_eq!(next_page(&asked, &empty), None);
        let stuck = VersionList {
            more: true,
            entries: vec![kept(9, "b")],
        };
        assert_eq!(next_page(&next, &stuck), None);
    }
}
