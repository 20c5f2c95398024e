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

/// What a process about to wait long can give back, read from one /proc/self/smaps: the
/// clean file mappings ([`clean_file_mappings`]) and the stack it runs on.
#[derive(Debug, Default)]
pub struct Idle {
    pub clean: Vec<Mapping>,
    /// The private writable mapping holding the calling thread's stack, if found.
    pub stack: Option<Mapping>,
}

/// Reads [`Idle`] for the calling thread. The stack's bounds do not change while it runs
/// no deeper than now, so this can be read early and used by [`release_dead_stack`] later.
pub fn idle() -> io::Result<Idle> {
    let here = 0u8;
    let sp = std::hint::black_box(&here) as *const u8 as usize;
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    Ok(Idle { clean: parse_clean_file_mappings(&smaps), stack: parse_mapping_holding(&smaps, sp) })
}

/// Bytes kept below the caller's stack pointer: the frames of this function, of the check
/// the caller passes and of libc's madvise live there during the call.
const LIVE_STACK_MARGIN: usize = 16 * 1024;
const PAGE: usize = 4096;

/// Drops the pages of `stack` below the calling frame (minus a margin): stack that no live
/// frame uses, dirtied by the deeper calls that ran before (a created init's set-up). They
/// come back as zero-filled pages if the stack grows there again, as fresh stack does.
/// `allowed` sees madvise's arguments first (a loaded seccomp filter may deny the call).
/// Returns the bytes of the range released, 0 when `stack` is not the caller's stack.
#[inline(never)]
pub fn release_dead_stack(stack: &Mapping, allowed: impl FnOnce([u64; 6]) -> bool) -> io::Result<usize> {
    let here = 0u8;
    let sp = std::hint::black_box(&here) as *const u8 as usize;
    let end = (sp & !(PAGE - 1)).saturating_sub(LIVE_STACK_MARGIN);
    if sp < stack.start || sp >= stack.start + stack.len || end <= stack.start {
        return Ok(0);
    }
    let len = end - stack.start;
    if !allowed([stack.start as u64, len as u64, libc::MADV_DONTNEED as u64, 0, 0, 0]) {
        return Ok(0);
    }
    // SAFETY: [stack.start, end) is part of this thread's private anonymous stack mapping
    // and lies at least LIVE_STACK_MARGIN below the frame of this function, which is
    // deeper than every frame still in use but the ones this call makes (far smaller than
    // the margin); nothing holds a pointer below the stack pointer, so the pages hold no
    // live data, and MADV_DONTNEED leaves the mapping in place (later use faults in zeroes).
    let r = unsafe { libc::madvise(stack.start as *mut libc::c_void, len, libc::MADV_DONTNEED) };
    if r == 0 {
        Ok(len)
    } else {
        Err(io::Error::last_os_error())
    }
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

/// The private, readable and writable mapping of an smaps text that holds `addr`.
fn parse_mapping_holding(smaps: &str, addr: usize) -> Option<Mapping> {
    let mut found: Option<Mapping> = None;
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-').filter(|_| !first.ends_with(':')) {
            if found.is_some() {
                break;
            }
            let (Ok(start), Ok(end)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) else {
                continue;
            };
            if (start..end).contains(&addr) && words.next() == Some("rw-p") {
                found = Some(Mapping { start, len: end - start, rss_kib: 0 });
            }
        } else if let Some(m) = found.as_mut() {
            if first == "Rss:" {
                m.rss_kib = words.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            }
        }
    }
    found
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
    fn the_mapping_holding_an_address_is_found_with_its_rss() {
        let smaps = format!("{SMAPS}7ffc5256f000-7ffc52590000 rw-p 00000000 00:00 0      [stack]\nRss:  116 kB\n");
        assert_eq!(
            parse_mapping_holding(&smaps, 0x7ffc5258f123),
            Some(Mapping { start: 0x7ffc5256f000, len: 0x21000, rss_kib: 116 })
        );
        assert_eq!(parse_mapping_holding(&smaps, 0x7f46ada59010), None, "text is not writable");
        assert_eq!(parse_mapping_holding(&smaps, 0x1000), None);
    }

    /// Dirties `depth` KiB of stack below the caller and returns a value computed from it.
    #[inline(never)]
    fn deep(depth: usize) -> u64 {
        let mut frame = [0u8; 1024];
        for (i, b) in frame.iter_mut().enumerate() {
            *b = (i ^ depth) as u8;
        }
        let below = if depth > 1 { deep(depth - 1) } else { 0 };
        std::hint::black_box(&frame).iter().map(|&b| u64::from(b)).sum::<u64>() + below
    }

    fn resident_kib(m: &Mapping) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
        parse_mapping_holding(&smaps, m.start).expect("the stack is still mapped").rss_kib
    }

    #[test]
    fn the_dead_stack_goes_back_and_the_live_one_stays_intact() {
        let first = deep(512);
        let live = std::hint::black_box([7u64; 64]);
        let stack = idle().expect("smaps").stack.expect("the test thread's stack is found");
        let dirty = resident_kib(&stack);
        assert!(dirty >= 512, "512 KiB of stack were dirtied, {dirty} KiB resident");
        let mut seen = None;
        let released = release_dead_stack(&stack, |args| {
            seen = Some(args);
            true
        })
        .expect("madvise");
        assert!(released >= 480 * 1024, "released {released} bytes");
        let args = seen.expect("the check saw madvise's arguments");
        assert_eq!((args[0], args[1], args[2]), (stack.start as u64, released as u64, libc::MADV_DONTNEED as u64));
        let after = resident_kib(&stack);
        assert!(after + 400 <= dirty, "resident {dirty} KiB -> {after} KiB");
        assert_eq!(live, [7u64; 64], "the caller's frame kept its data");
        assert_eq!(deep(512), first, "the stack works as before below the caller");
        assert_eq!(release_dead_stack(&stack, |_| false).expect("refused"), 0, "a refused call releases nothing");
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
