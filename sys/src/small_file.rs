//! Reading the small files berth reads by the hundred (`list` reads a /proc stat and a
//! freezer state per container): open, read into a buffer sized for them, close. std's
//! `read_to_string` first asks the file for its size (statx and lseek, useless for /proc
//! and cgroupfs, which report 0) and then grows its buffer from 32 bytes, a read each time.

use std::io::{self, Read};
use std::path::Path;

/// Fits /proc/<pid>/stat and any cgroup state file in one read.
const INITIAL: usize = 1024;

/// The whole file at `path` as text (lossy on invalid UTF-8 is not needed: these files are
/// ASCII; invalid UTF-8 is an InvalidData error, as with `read_to_string`).
pub fn read_to_string(path: &Path) -> io::Result<String> {
    let f = std::fs::File::open(path)?;
    let mut buf = Vec::with_capacity(INITIAL);
    // Through `take`, so that std's size probe for File is not used.
    f.take(u64::MAX).read_to_end(&mut buf)?;
    String::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// A file the kernel generates in one piece on the first read (a single-record seq file:
/// /proc/<pid>/stat, a cgroup's freezer.state): one read of up to 1 KiB, with no second
/// read for the end of file when the first came back short. Larger ones are read whole.
pub fn read_record(path: &Path) -> io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; INITIAL];
    let n = loop {
        match f.read(&mut buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => break r?,
        }
    };
    buf.truncate(n);
    if n == INITIAL {
        f.take(u64::MAX).read_to_end(&mut buf)?;
    }
    String::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_files_and_larger_ones_whole() {
        let stat = read_to_string(Path::new("/proc/self/stat")).expect("own stat");
        assert!(stat.starts_with(&format!("{} (", std::process::id())), "{stat}");
        // Larger than the first buffer: read whole all the same.
        let maps = read_to_string(Path::new("/proc/self/maps")).expect("own maps");
        assert!(maps.len() > INITIAL && maps.ends_with('\n'), "{} bytes", maps.len());
        assert!(read_to_string(Path::new("/proc/self/no-such-file")).is_err());
    }

    #[test]
    fn a_record_is_read_whole_and_so_is_a_file_larger_than_the_buffer() {
        let stat = read_record(Path::new("/proc/self/stat")).expect("own stat");
        assert!(stat.starts_with(&format!("{} (", std::process::id())) && stat.ends_with('\n'), "{stat}");
        let maps = read_record(Path::new("/proc/self/maps")).expect("own maps");
        assert!(maps.len() > INITIAL && maps.ends_with('\n'), "{} bytes", maps.len());
        assert!(read_record(Path::new("/proc/self/no-such-file")).is_err());
    }
}
