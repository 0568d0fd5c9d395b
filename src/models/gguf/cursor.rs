//! The bounded reader under the GGUF parser: every read and skip is checked against the file's
//! size first, so a length field from a hostile file can never cause a huge allocation.

use std::io::{Read, Seek};
use std::path::Path;

use super::{GgufError, MAX_KEPT_STRING};

pub(super) struct Cursor<'p, R> {
    pub(super) inner: R,
    pub(super) pos: u64,
    pub(super) size: u64,
    pub(super) path: &'p Path,
}

impl<R: Read + Seek> Cursor<'_, R> {
    /// A length-prefixed string; `None` when it was longer than `MAX_KEPT_STRING` and skipped.
    pub(super) fn string(&mut self, what: &str) -> Result<Option<String>, GgufError> {
        let n = self.u64(what)?;
        if n > self.remaining() {
            return Err(self.truncated(what));
        }
        if n > MAX_KEPT_STRING {
            self.skip(n, what)?;
            return Ok(None);
        }
        let mut buf = vec![0u8; n as usize];
        self.exact(&mut buf, what)?;
        Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
    }

    pub(super) fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub(super) fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    pub(super) fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GgufError> {
        let mut b = [0u8; N];
        self.exact(&mut b, what)?;
        Ok(b)
    }

    pub(super) fn exact(&mut self, buf: &mut [u8], what: &str) -> Result<(), GgufError> {
        if buf.len() as u64 > self.remaining() {
            return Err(self.truncated(what));
        }
        self.inner
            .read_exact(buf)
            .map_err(|e| self.io_or_truncated(e, what))?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    pub(super) fn skip(&mut self, n: u64, what: &str) -> Result<(), GgufError> {
        if n > self.remaining() {
            return Err(self.truncated(what));
        }
        // n <= file size, which fits in i64 for any real file.
        let step = i64::try_from(n).map_err(|_| self.truncated(what))?;
        self.inner
            .seek_relative(step)
            .map_err(|e| self.io_or_truncated(e, what))?;
        self.pos += n;
        Ok(())
    }

    pub(super) fn read_up_to(&mut self, buf: &mut [u8]) -> Result<usize, GgufError> {
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(GgufError::Io {
                        path: self.path.to_path_buf(),
                        err: e,
                    });
                }
            }
        }
        self.pos += got as u64;
        Ok(got)
    }

    pub(super) fn remaining(&self) -> u64 {
        self.size.saturating_sub(self.pos)
    }

    pub(super) fn truncated(&self, what: &str) -> GgufError {
        GgufError::Truncated {
            path: self.path.to_path_buf(),
            what: what.to_string(),
            at: self.pos,
            size: self.size,
        }
    }

    pub(super) fn corrupt(&self, what: String) -> GgufError {
        GgufError::Corrupt {
            path: self.path.to_path_buf(),
            what,
        }
    }

    pub(super) fn io_or_truncated(&self, e: std::io::Error, what: &str) -> GgufError {
        // The file can shrink under us (another process rewriting it): that is truncation too.
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            self.truncated(what)
        } else {
            GgufError::Io {
                path: self.path.to_path_buf(),
                err: e,
            }
        }
    }
}
