//! BLAKE3 of a file's content, the hash the wire identifies contents by.
//! One implementation for server and client, on blake3's own reader helper
//! (`Hasher::update_reader`: a 64 KiB buffer, `EINTR` retried).

use crate::protocol::ContentHash;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// Hash and length of everything `reader` yields.
///
/// # Errors
/// The first read error.
pub fn hash_reader(reader: impl Read) -> io::Result<(ContentHash, u64)> {
    let mut counted = Counted {
        inner: reader,
        n: 0,
    };
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(&mut counted)?;
    Ok((ContentHash(*hasher.finalize().as_bytes()), counted.n))
}

/// Hash and length of the file at `path`. The path is opened as given (a
/// local path the caller has already checked, e.g. with [`super::stat`]);
/// for a path inside a folder that may hold planted symlinks, open it with
/// [`super::open_file`] and use [`hash_reader`].
///
/// # Errors
/// Opening or reading the file.
pub fn hash_file(path: &Path) -> io::Result<(ContentHash, u64)> {
    hash_reader(File::open(path)?)
}

/// A reader that counts the bytes it yields.
struct Counted<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}
