//! Memory a long-waiting process gives back: a created container's init sits between
//! `create` and `start` for as long as its client likes, and what it touched while setting
//! the container up is no use to it there.

use std::io;

/// The read-only file mappings of this process that hold no private copies (the binary's
/// text and read-only data, untouched by relocation). A mapping with any anonymous page
/// (RELRO after relocation, anything written) is not among them: dropping it would lose
/// that copy. Read from /proc/self/smaps; what it lists does not change while the binary
/// runs, so it can be read early and released later.
pub fn clean_file_mappings() -> io::Result<Vec<Mapping>> {
    Ok(parse_clean_file_mappings(&std::fs::read_to_string("/proc/self/smaps")?))
}

/// Drops this process's page-table entries for `m`: its pages stay in the page cache, and
/// the few the process runs next fault back in from there. Returns the bytes that were
/// resident when the mappings were read.
pub fn release(m: &Mapping) -> io::Result<u64> {
    // SAFETY: `m` is a whole mapping of this process that is file-backed, not writable and
    // holds no anonymous page (clean_file_mappings): MADV_DONTNEED only unmaps page-table
    // entries, and every later access reads the same bytes back from the file.
    let r = unsafe { libc::madvise(m.start as *mut libc::c_void, m.len, libc::MADV_DONTNEED) };
    if r == 0 {
        Ok(m.rss_kib * 1024)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Gives the allocator's free memory back to the kernel (glibc's malloc_trim).
pub fn trim_heap() {
    // SAFETY: malloc_trim only releases free memory of the allocator; no pointer is involved.
    unsafe { libc::malloc_trim(0) };
}

/// One mapping of this process: its address range and resident size when it was read.
#[derive(Debug, PartialEq, Eq)]
pub struct Mapping {
    pub start: usize,
    pub len: usize,
    pub rss_kib: u64,
}

/// The mappings of an smaps text that are file-backed (an inode), readable, not writable,
/// private, and have `Anonymous: 0 kB`.
fn parse_clean_file_mappings(smaps: &str) -> Vec<Mapping> {
    let mut out = Vec::new();
    let mut current: Option<(Mapping, bool)> = None;
    let finish = |c: Option<(Mapping, bool)>, out: &mut Vec<Mapping>| {
        if let Some((m, true)) = c {
            out.push(m);
        }
    };
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-').filter(|_| !first.ends_with(':')) {
            finish(current.take(), &mut out);
            let (Ok(start), Ok(end)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) else {
                continue;
            };
            let perms = words.next().unwrap_or("");
            let _offset = words.next();
            let _dev = words.next();
            let inode = words.next().unwrap_or("0");
            let candidate = inode != "0"
                && perms.starts_with('r')
                && perms.as_bytes().get(1) == Some(&b'-')
                && perms.ends_with('p');
            current = Some((Mapping { start, len: end.saturating_sub(start), rss_kib: 0 }, candidate));
        } else if let Some((m, ok)) = current.as_mut() {
            let value = words.next().and_then(|v| v.parse::<u64>().ok());
            match first {
                "Rss:" => m.rss_kib = value.unwrap_or(0),
                "Anonymous:" if value != Some(0) => *ok = false,
                "Locked:" if value != Some(0) => *ok = false,
                _ => {}
            }
        }
    }
    finish(current.take(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
555560117000-555560159000 rw-p 00000000 00:00 0                          [heap]
Rss:                 252 kB
Anonymous:           252 kB
7f46ad900000-7f46ada59000 r--p 00000000 fe:00 5308800                    /
Rss:                 320 kB
Anonymous:             0 kB
Locked:                0 kB
7f46ada59000-7f46adabb000 r-xp 00158000 fe:00 5308800                    /
Rss:                2120 kB
Anonymous:             0 kB
Locked:                0 kB
7f46adabb000-7f46adaf1000 r--p 006b9000 fe:00 5308800                    /
Rss:                 216 kB
Anonymous:           216 kB
7f46adaf1000-7f46adaf5000 rw-p 006ee000 fe:00 5308800                    /
Rss:                  16 kB
Anonymous:            16 kB
7f46adb96000-7f46adb98000 r-xp 00000000 00:00 0                          [vdso]
Rss:                   8 kB
Anonymous:             0 kB
";

    #[test]
    fn only_clean_read_only_file_mappings_are_released() {
        let got = parse_clean_file_mappings(SMAPS);
        assert_eq!(
            got,
            vec![
                Mapping { start: 0x7f46ad900000, len: 0x159000, rss_kib: 320 },
                Mapping { start: 0x7f46ada59000, len: 0x62000, rss_kib: 2120 },
            ],
            "text and rodata only: not RELRO (relocated copies), data, heap or the vdso"
        );
    }

    #[test]
    fn releasing_keeps_the_process_running_the_same_code() {
        // Twice: the code that runs after the first call faulted back in from the file.
        let release_all =
            || -> u64 { clean_file_mappings().expect("smaps").iter().map(|m| release(m).expect("madvise")).sum() };
        assert!(release_all() > 0, "the test binary's text was resident, so some was released");
        release_all();
        trim_heap();
        assert_eq!(format!("{}", 6 * 7), "42", "code and read-only data read back intact");
    }
}
