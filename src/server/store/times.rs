//! When each change was made (PROTOCOL.md §14.3, R-14.3.5): a restore "as
//! it was at a moment" starts from the first change made after it.
//!
//! ```text
//! .cloudservice-server/<user>/versions/times   seq u64 | time_ms u64 (big-endian), one per change
//! ```
//! Records are appended in change order and their times never go back (a
//! clock set back repeats the last time), so "the first change after T" is
//! the first record whose time is later than T. A torn tail (a crash
//! mid-append) is cut at open. The file is advisory: a change whose time
//! could not be written counts as made at the next change that has one.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Bytes per record.
const RECORD: u64 = 16;

/// The change-time log of one user. It holds no open file between
/// changes: an actor's descriptors are budgeted (`--max-connections`).
/// Records are kept in memory and appended together by
/// [`ChangeTimes::write_out`] (once per actor cycle, with the journal), not
/// one open/write/close per change.
#[derive(Debug)]
pub struct ChangeTimes {
    path: PathBuf,
    /// Records noted and not yet appended.
    buffered: Vec<u8>,
    /// Records appended since the last [`ChangeTimes::sync`].
    unsynced: bool,
    /// The last change written and its time.
    last: Option<(u64, u64)>,
    /// The change being made and the time it was given (by the version
    /// keeping that precedes it, so both agree to the millisecond).
    pending: Option<(u64, u64)>,
}

impl ChangeTimes {
    /// Opens (or creates) the log in the versions folder `dir`, cutting a
    /// torn tail.
    ///
    /// # Errors
    /// The file cannot be opened, read or cut.
    pub fn open(dir: &Path) -> io::Result<ChangeTimes> {
        let path = dir.join("times");
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .append(true)
            .open(&path)?;
        // Opened with the store (and closed again): only a crash mid-append
        // leaves a torn tail, and a restart opens the store again.
        let len = file.metadata()?.len();
        let whole = len - len % RECORD;
        if whole != len {
            file.set_len(whole)?;
        }
        let mut last = None;
        if whole >= RECORD {
            let mut record = [0u8; RECORD as usize];
            file.seek(SeekFrom::Start(whole - RECORD))?;
            file.read_exact(&mut record)?;
            last = Some(split(&record));
        }
        Ok(ChangeTimes {
            path,
            buffered: Vec::new(),
            unsynced: false,
            last,
            pending: None,
        })
    }

    /// The time of change `seq` (ms since the epoch): the one it was given
    /// already, else now, but never before the last change's.
    pub fn time_of(&mut self, seq: u64, now_ms: u64) -> u64 {
        if let Some((pending, ms)) = self.pending {
            if pending == seq {
                return ms;
            }
        }
        let floor = self
            .last
            .into_iter()
            .chain(self.pending)
            .map(|(_, ms)| ms)
            .max()
            .unwrap_or(0);
        let ms = now_ms.max(floor);
        self.pending = Some((seq, ms));
        ms
    }

    /// Notes the time of change `seq` once (the first record of a change;
    /// a change of several records is noted once), to be appended by
    /// [`ChangeTimes::write_out`].
    ///
    /// # Errors
    /// None now (kept for callers that log a failure: the log is advisory).
    pub fn note(&mut self, seq: u64, now_ms: u64) -> io::Result<()> {
        if self.last.is_some_and(|(last, _)| last >= seq) {
            return Ok(());
        }
        let ms = self.time_of(seq, now_ms);
        self.buffered.extend_from_slice(&seq.to_be_bytes());
        self.buffered.extend_from_slice(&ms.to_be_bytes());
        self.last = Some((seq, ms));
        self.pending = None;
        Ok(())
    }

    /// Appends the noted records in one write.
    ///
    /// # Errors
    /// The append failed; those records are dropped (their changes count as
    /// made at the next change whose time is written).
    pub fn write_out(&mut self) -> io::Result<()> {
        if self.buffered.is_empty() {
            return Ok(());
        }
        let records = std::mem::take(&mut self.buffered);
        OpenOptions::new()
            .append(true)
            .open(&self.path)?
            .write_all(&records)?;
        self.unsynced = true;
        Ok(())
    }

    /// Appends the noted records and makes them durable (with `--fsync`).
    ///
    /// # Errors
    /// The append or the fsync failed.
    pub fn sync(&mut self) -> io::Result<()> {
        self.write_out()?;
        if self.unsynced {
            File::open(&self.path)?.sync_data()?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// The first change made after `time_ms`, if the log (or the records
    /// not yet appended) has one; read one record at a time.
    ///
    /// # Errors
    /// The log cannot be read.
    pub fn first_after(&self, time_ms: u64) -> io::Result<Option<u64>> {
        let mut input = BufReader::new(File::open(&self.path)?).chain(&self.buffered[..]);
        let mut record = [0u8; RECORD as usize];
        loop {
            match input.read_exact(&mut record) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(e) => return Err(e),
            }
            let (seq, ms) = split(&record);
            if ms > time_ms {
                return Ok(Some(seq));
            }
        }
    }
}

fn split(record: &[u8; RECORD as usize]) -> (u64, u64) {
    let mut seq = [0u8; 8];
    let mut ms = [0u8; 8];
    seq.copy_from_slice(&record[..8]);
    ms.copy_from_slice(&record[8..]);
    (u64::from_be_bytes(seq), u64::from_be_bytes(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Times never go back, a change is written once, a torn tail is cut,
    /// and the first change after a moment is found (exactly at a
    /// change's time: the next one).
    #[test]
    fn times_are_monotone_written_once_and_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut times = ChangeTimes::open(dir.path()).expect("open");
        assert_eq!(times.time_of(1, 1000), 1000);
        times.note(1, 5000).expect("note");
        times.note(1, 6000).expect("again");
        times.note(2, 900).expect("clock went back");
        times.note(4, 3000).expect("note");
        assert_eq!(times.first_after(0).expect("read"), Some(1));
        assert_eq!(times.first_after(999).expect("read"), Some(1));
        assert_eq!(times.first_after(1000).expect("read"), Some(4));
        assert_eq!(times.first_after(2999).expect("read"), Some(4));
        assert_eq!(times.first_after(3000).expect("read"), None);
        let path = dir.path().join("times");
        assert_eq!(
            std::fs::metadata(&path).expect("meta").len(),
            0,
            "noted, not yet written"
        );
        times.write_out().expect("write out");
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), 3 * RECORD);
        assert_eq!(times.first_after(1000).expect("read"), Some(4));
        drop(times);
        let mut f = OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(&[1, 2, 3]).expect("tear");
        let mut times = ChangeTimes::open(dir.path()).expect("reopen");
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), 3 * RECORD);
        times.note(4, 9000).expect("already written");
        times.note(5, 7000).expect("note");
        assert_eq!(times.first_after(3000).expect("read"), Some(5));
        times.sync().expect("sync writes out");
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), 4 * RECORD);
    }
}
