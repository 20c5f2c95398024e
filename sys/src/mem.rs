//! Memory a long-waiting process gives back: a created container's init sits between
//! `create` and `start` for as long as its client likes, and what it touched while setting
//! the container up is no use to it there.

use std::io;

/// The read-only file mappings of this process that hold no private copies (the binary's
/// text and read-only data): private, not writable, file-backed, and outside every loaded
/// object's RELRO segment, the one read-only part the loader writes (relocation) before
/// it protects it. Dropping a RELRO page would lose that copy. Read from /proc/self/maps
/// (which, unlike smaps, does not walk the page tables) and the program headers; what it
/// lists does not change while the binary runs, so it can be read early and released
/// later.
pub fn clean_file_mappings() -> io::Result<Vec<Mapping>> {
    Ok(parse_clean_file_mappings(&std::fs::read_to_string("/proc/self/maps")?, &relro_segments()))
}

/// What a process about to wait long can give back, read from one /proc/self/maps: the
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
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    Ok(Idle { clean: parse_clean_file_mappings(&maps, &relro_segments()), stack: parse_mapping_holding(&maps, sp) })
}

/// The address ranges of the PT_GNU_RELRO segments of every object loaded in this process
/// (the static binary alone, or the executable and its shared libraries).
fn relro_segments() -> Vec<(usize, usize)> {
    unsafe extern "C" fn each(info: *mut libc::dl_phdr_info, _size: libc::size_t, data: *mut libc::c_void) -> i32 {
        // SAFETY: dl_iterate_phdr passes a valid dl_phdr_info for the duration of the call,
        // whose dlpi_phdr points at dlpi_phnum program headers of a loaded object, and
        // `data` is the &mut Vec handed to dl_iterate_phdr below, alive for the whole call
        // and borrowed nowhere else meanwhile.
        let (info, out) = unsafe { (&*info, &mut *(data as *mut Vec<(usize, usize)>)) };
        if info.dlpi_phdr.is_null() {
            return 0;
        }
        // SAFETY: as above, dlpi_phdr holds dlpi_phnum headers.
        let headers = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) };
        for h in headers.iter().filter(|h| h.p_type == libc::PT_GNU_RELRO) {
            let start = (info.dlpi_addr as usize).wrapping_add(h.p_vaddr as usize);
            out.push((start, start.saturating_add(h.p_memsz as usize)));
        }
        0
    }
    let mut out: Vec<(usize, usize)> = Vec::new();
    // SAFETY: the callback above only reads what the loader passes it and writes to `out`,
    // which outlives the call; it returns 0 to go on to the next object.
    unsafe { libc::dl_iterate_phdr(Some(each), &mut out as *mut Vec<(usize, usize)> as *mut libc::c_void) };
    out
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
/// the few the process runs next fault back in from there. Returns the mapping's length.
pub fn release(m: &Mapping) -> io::Result<usize> {
    // SAFETY: `m` is a whole mapping of this process that is file-backed, not writable and
    // holds no anonymous page (clean_file_mappings): MADV_DONTNEED only unmaps page-table
    // entries, and every later access reads the same bytes back from the file.
    let r = unsafe { libc::madvise(m.start as *mut libc::c_void, m.len, libc::MADV_DONTNEED) };
    if r == 0 {
        Ok(m.len)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Gives the allocator's free memory back to the kernel (glibc's malloc_trim).
pub fn trim_heap() {
    // SAFETY: malloc_trim only releases free memory of the allocator; no pointer is involved.
    unsafe { libc::malloc_trim(0) };
}

/// One mapping of this process: its address range.
#[derive(Debug, PartialEq, Eq)]
pub struct Mapping {
    pub start: usize,
    pub len: usize,
}

/// One line of /proc/self/maps: the range, the permissions and the inode.
fn parse_maps_line(line: &str) -> Option<(usize, usize, &str, &str)> {
    let mut words = line.split_whitespace();
    let (a, b) = words.next()?.split_once('-')?;
    let (start, end) = (usize::from_str_radix(a, 16).ok()?, usize::from_str_radix(b, 16).ok()?);
    let perms = words.next()?;
    let _offset = words.next()?;
    let _dev = words.next()?;
    Some((start, end, perms, words.next()?))
}

/// The private, readable and writable mapping of a maps text that holds `addr`.
fn parse_mapping_holding(maps: &str, addr: usize) -> Option<Mapping> {
    maps.lines()
        .filter_map(parse_maps_line)
        .find(|&(start, end, perms, _)| (start..end).contains(&addr) && perms == "rw-p")
        .map(|(start, end, _, _)| Mapping { start, len: end - start })
}

/// The mappings of a maps text that are file-backed (an inode), readable, not writable,
/// private, and overlap none of the `relro` ranges.
fn parse_clean_file_mappings(maps: &str, relro: &[(usize, usize)]) -> Vec<Mapping> {
    maps.lines()
        .filter_map(parse_maps_line)
        .filter(|&(start, end, perms, inode)| {
            inode != "0"
                && perms.starts_with('r')
                && perms.as_bytes().get(1) == Some(&b'-')
                && perms.ends_with('p')
                && !relro.iter().any(|&(rs, re)| rs < end && start < re)
        })
        .map(|(start, end, _, _)| Mapping { start, len: end.saturating_sub(start) })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
555560117000-555560159000 rw-p 00000000 00:00 0                          [heap]
7f46ad900000-7f46ada59000 r--p 00000000 fe:00 5308800                    /
7f46ada59000-7f46adabb000 r-xp 00158000 fe:00 5308800                    /
7f46adabb000-7f46adaf1000 r--p 006b9000 fe:00 5308800                    /
7f46adaf1000-7f46adaf5000 rw-p 006ee000 fe:00 5308800                    /
7f46adb96000-7f46adb98000 r-xp 00000000 00:00 0                          [vdso]
7ffc5256f000-7ffc52590000 rw-p 00000000 00:00 0                          [stack]
";

    #[test]
    fn only_clean_read_only_file_mappings_are_released() {
        // The RELRO segment ends inside the data mapping that follows it, as linkers pad it.
        let relro = [(0x7f46adabb000, 0x7f46adaf2000)];
        assert_eq!(
            parse_clean_file_mappings(MAPS, &relro),
            vec![Mapping { start: 0x7f46ad900000, len: 0x159000 }, Mapping { start: 0x7f46ada59000, len: 0x62000 }],
            "text and rodata only: not RELRO (relocated copies), data, heap or the vdso"
        );
    }

    #[test]
    fn the_mapping_holding_an_address_is_found() {
        assert_eq!(parse_mapping_holding(MAPS, 0x7ffc5258f123), Some(Mapping { start: 0x7ffc5256f000, len: 0x21000 }));
        assert_eq!(parse_mapping_holding(MAPS, 0x7f46ada59010), None, "text is not writable");
        assert_eq!(parse_mapping_holding(MAPS, 0x1000), None);
    }

    /// A field of the smaps entry of the mapping that starts at `start`, in KiB.
    fn smaps_kib(start: usize, field: &str) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
        let head = format!("{start:x}-");
        let entry = smaps.split_inclusive('\n').skip_while(|l| !l.starts_with(&head)).skip(1);
        for line in entry {
            let mut words = line.split_whitespace();
            match words.next() {
                Some(f) if f == field => return words.next().and_then(|v| v.parse().ok()).expect("number"),
                Some(f) if !f.ends_with(':') => break,
                _ => {}
            }
        }
        panic!("no {field} for the mapping at {start:x}")
    }

    #[test]
    fn what_is_found_clean_holds_no_private_copy_and_relro_is_left_out() {
        // Touch the loader's relocated data, then check the choice against smaps.
        assert_eq!(format!("{}", 6 * 7), "42");
        let relro = relro_segments();
        assert!(!relro.is_empty(), "the test binary has a RELRO segment");
        let clean = clean_file_mappings().expect("maps");
        assert!(!clean.is_empty(), "the test binary's text is found");
        for m in &clean {
            assert_eq!(smaps_kib(m.start, "Anonymous:"), 0, "{m:?} holds private copies");
            assert!(relro.iter().all(|&(s, e)| e <= m.start || m.start + m.len <= s), "{m:?} overlaps RELRO");
        }
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
        smaps_kib(m.start, "Rss:")
    }

    #[test]
    fn the_dead_stack_goes_back_and_the_live_one_stays_intact() {
        let first = deep(512);
        let live = std::hint::black_box([7u64; 64]);
        let stack = idle().expect("maps").stack.expect("the test thread's stack is found");
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
            || -> usize { clean_file_mappings().expect("maps").iter().map(|m| release(m).expect("madvise")).sum() };
        assert!(release_all() > 0, "the test binary's text was resident, so some was released");
        release_all();
        trim_heap();
        assert_eq!(format!("{}", 6 * 7), "42", "code and read-only data read back intact");
    }
}
