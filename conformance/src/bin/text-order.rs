//! Lays out berth's text for `create` (runtime/text-order.txt) and checks that layout.
//!
//! `create`'s peak RSS is mostly the binary's text: the kernel maps up to 64 KiB around
//! each text page a process faults in (fault-around), so what counts is how many 64 KiB
//! windows the code that runs is spread over, not how much of it runs. This tool runs
//! `create`, `start` and `delete` of a busybox bundle under ptrace, one instruction at a
//! time (the commands themselves, not the container's init), and names each function
//! they ran from the link map of that very binary (`-Wl,-Map`, which runtime/build.rs
//! adds when `BERTH_LINK_MAP` is set). lld places the functions a `--symbol-ordering-file`
//! names first, in its order: create's, then those start and delete add, then the few
//! the created init runs while it waits ([`INIT_WAIT`], named here since the init is not
//! traced).
//!
//! Usage (as root; scripts/text-order.sh builds the binary and the map first):
//!   text-order write <berth> <link map> <order file>
//!   text-order check <berth> <link map>
//! `check` fails when create's code, as linked, spans more 64 KiB windows than a fresh
//! layout would need (plus a margin): the checked-in order has drifted from the code.

use conformance::Bundle;
use std::collections::{BTreeSet, HashSet};
use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const WINDOW: u64 = 64 * 1024;
/// Windows `check` tolerates beyond a fresh layout: the first and last of the ordered
/// block are shared with other code, and the C library's objects are placed whole.
const MARGIN: usize = 4;

/// What the created init runs from the moment it drops its text mappings (berth_sys::mem)
/// until it blocks for `start`: faulted back in while it waits, so kept in as few windows
/// as can be. The tracer follows the commands, not the init, so these are named here: C
/// functions by the first symbol of their object's section, Rust ones by the path in their
/// legacy mangled name (its hash changes with the build). Left unordered, lld's placement
/// decided it: a reorder elsewhere moved glibc's madvise into a window of its own, one
/// more 64 KiB in every created init.
const INIT_WAIT: &[&str] = &[
    "_ZN5berth4init3run17h",
    "_ZN5berth4init13wait_and_exec",
    "_ZN9berth_sys3mem18release_dead_stack17h",
    "_ZN9berth_sys3mem7release17h",
    "_ZN5berth7process5start6accept17h",
    "__madvise",
    "accept4",
];

/// Whether a section's first symbol is one of [`INIT_WAIT`]'s.
fn in_init_wait(symbol: &str) -> bool {
    INIT_WAIT.iter().any(|w| if w.starts_with("_ZN") { symbol.starts_with(w) } else { symbol == *w })
}

/// One input section of the output .text, from the link map: where, how big, and the
/// first symbol defined in it (the name the ordering file uses).
struct Section {
    start: u64,
    size: u64,
    symbol: Option<String>,
}

/// Reads lld's map (`VMA LMA Size Align Out In Symbol`, the columns told apart by their
/// indentation) and keeps the input sections of `.text`.
fn text_sections(map: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    let mut in_text = false;
    for line in map.lines() {
        let mut cols = line.split_whitespace();
        let (Some(vma), Some(_lma), Some(size), Some(_align)) = (cols.next(), cols.next(), cols.next(), cols.next())
        else {
            continue;
        };
        let (Ok(vma), Ok(size)) = (u64::from_str_radix(vma, 16), u64::from_str_radix(size, 16)) else { continue };
        // What follows the Align column (the end of the fourth word: a size and an
        // alignment can be the same digits); its indentation says which column it is.
        let rest = after_words(line, 4);
        let name = rest.trim_start();
        match rest.len() - name.len() {
            0..=2 => in_text = name == ".text",
            3..=10 if in_text => out.push(Section { start: vma, size, symbol: None }),
            _ if in_text => {
                if let Some(s) = out.last_mut().filter(|s| s.symbol.is_none()) {
                    s.symbol = Some(name.to_string());
                }
            }
            _ => {}
        }
    }
    out.sort_by_key(|s| s.start);
    out
}

/// What follows the first `n` whitespace-separated words of `line`, its spaces kept.
fn after_words(line: &str, n: usize) -> &str {
    let mut rest = line;
    for _ in 0..n {
        rest = rest.trim_start();
        rest = &rest[rest.find(char::is_whitespace).unwrap_or(rest.len())..];
    }
    rest
}

/// Index of the section holding `addr`.
fn section_of(sections: &[Section], addr: u64) -> Option<usize> {
    let i = sections.partition_point(|s| s.start <= addr).checked_sub(1)?;
    (addr < sections[i].start + sections[i].size.max(1)).then_some(i)
}

/// Where the kernel loaded `pid`'s executable: its first mapping, for a position
/// independent binary (linked at 0); nothing for one linked at its address.
fn load_bias(pid: i32, exe: &Path) -> u64 {
    let is_pie = std::fs::read(exe).is_ok_and(|elf| elf.get(16) == Some(&3));
    if !is_pie {
        return 0;
    }
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    maps.lines().next().and_then(|l| l.split('-').next()).and_then(|a| u64::from_str_radix(a, 16).ok()).unwrap_or(0)
}

/// Runs `exe args` under ptrace, one instruction at a time, and returns the link-time
/// addresses of the instructions it ran in its own executable, over every image it
/// execs (berth re-executes itself from a sealed view before `create`). Its children
/// are not traced.
fn trace(exe: &Path, args: &[&OsStr]) -> HashSet<u64> {
    let argv: Vec<CString> = std::iter::once(exe.as_os_str())
        .chain(args.iter().copied())
        .map(|a| CString::new(a.as_bytes()).expect("no NUL in arguments"))
        .collect();
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    // SAFETY: the child only calls async-signal-safe functions (ptrace, raise, execv,
    // _exit) on memory prepared before the fork.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: see above; argv outlives the exec.
        unsafe {
            libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0);
            libc::raise(libc::SIGSTOP);
            libc::execv(ptrs[0], ptrs.as_ptr());
            libc::_exit(127);
        }
    }
    let mut ran = HashSet::new();
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    // SAFETY: the child is stopped and traced by us.
    unsafe {
        libc::ptrace(libc::PTRACE_SETOPTIONS, pid, 0, libc::PTRACE_O_TRACEEXEC | libc::PTRACE_O_EXITKILL);
        libc::ptrace(libc::PTRACE_CONT, pid, 0, 0);
    }
    // The text range of the current image, once the first exec has happened.
    let mut text: Option<(u64, u64, u64)> = None;
    loop {
        // SAFETY: waiting for our own child.
        if unsafe { libc::waitpid(pid, &mut status, libc::__WALL) } < 0 {
            break;
        }
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            break;
        }
        let mut sig = libc::WSTOPSIG(status);
        if status >> 8 == (libc::SIGTRAP | (libc::PTRACE_EVENT_EXEC << 8)) {
            let bias = load_bias(pid, exe);
            let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
            // The executable's mappings come first; the text is the one that may run.
            let x = maps.lines().find(|l| l.split_whitespace().nth(1).is_some_and(|p| p.contains('x')));
            let range = x.and_then(|l| l.split_whitespace().next()).and_then(|r| {
                let (a, b) = r.split_once('-')?;
                Some((u64::from_str_radix(a, 16).ok()?, u64::from_str_radix(b, 16).ok()?))
            });
            text = range.map(|(a, b)| (a, b, bias));
            sig = 0;
        } else if sig == libc::SIGTRAP {
            sig = 0;
        }
        match text {
            Some((lo, hi, bias)) => {
                // SAFETY: an all-zero register set is valid; GETREGS fills it.
                let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
                // SAFETY: the child is stopped and traced by us.
                unsafe { libc::ptrace(libc::PTRACE_GETREGS, pid, 0, &mut regs) };
                if (lo..hi).contains(&regs.rip) {
                    ran.insert(regs.rip - bias);
                }
                // SAFETY: as above.
                unsafe { libc::ptrace(libc::PTRACE_SINGLESTEP, pid, 0, sig) };
            }
            // SAFETY: as above.
            None => unsafe {
                libc::ptrace(libc::PTRACE_CONT, pid, 0, sig);
            },
        }
    }
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{} {args:?} failed: {status:#x}",
        exe.display()
    );
    ran
}

/// The sections each command ran, in command order: create, start, delete, run.
fn traced_sections(berth: &Path, sections: &[Section]) -> Vec<(&'static str, BTreeSet<usize>)> {
    let work = std::env::temp_dir().join(format!("berth-text-order-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let mut bundle = Bundle::new(&work.join("bundle"));
    bundle.set_args(&["/bin/true"]);
    bundle.write();
    let root = work.join("root");
    let r: OsString = root.into();
    let b: OsString = bundle.dir.clone().into();
    let s = |x: &'static str| OsStr::new(x);
    let log: OsString = work.join("log.json").into();
    let pid: OsString = work.join("pid").into();
    // create as `make bench` runs it, then as containerd's runc shim does (a JSON log and a
    // pid file), each followed by what ends it; start and delete add theirs after, and `run`
    // (create, start, the wait and delete in one process, as Docker's and podman's
    // foreground runs and the bench's `run` rows use it) what it adds to them.
    let commands: [(&'static str, Vec<&OsStr>); 6] = [
        ("create", vec![s("--root"), &r, s("create"), s("--bundle"), &b, s("t")]),
        ("delete", vec![s("--root"), &r, s("delete"), s("--force"), s("t")]),
        (
            "create",
            vec![
                s("--root"),
                &r,
                s("--log"),
                &log,
                s("--log-format"),
                s("json"),
                s("create"),
                s("--bundle"),
                &b,
                s("--pid-file"),
                &pid,
                s("u"),
            ],
        ),
        ("start", vec![s("--root"), &r, s("start"), s("u")]),
        ("delete", vec![s("--root"), &r, s("--log"), &log, s("--log-format"), s("json"), s("delete"), s("u")]),
        ("run", vec![s("--root"), &r, s("run"), s("--bundle"), &b, s("v")]),
    ];
    let mut by_name: Vec<(&'static str, BTreeSet<usize>)> =
        ["create", "start", "delete", "run"].into_iter().map(|n| (n, BTreeSet::new())).collect();
    for (name, args) in commands {
        let ran = trace(berth, &args);
        if let Some((_, set)) = by_name.iter_mut().find(|(n, _)| *n == name) {
            set.extend(ran.into_iter().filter_map(|a| section_of(sections, a)));
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    by_name
}

fn windows(sections: &[Section], set: &BTreeSet<usize>) -> usize {
    let mut w = BTreeSet::new();
    for &i in set {
        let s = &sections[i];
        w.extend(s.start / WINDOW..=(s.start + s.size.max(1) - 1) / WINDOW);
    }
    w.len()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: text-order write <berth> <link map> <order file> | check <berth> <link map>";
    let (mode, berth, map) = match args.as_slice() {
        [_, mode, berth, map, ..] => (mode.as_str(), Path::new(berth), map),
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let map = std::fs::read_to_string(map).expect("read the link map");
    let sections = text_sections(&map);
    assert!(!sections.is_empty(), "no .text input sections in the link map");
    let traced = traced_sections(berth, &sections);
    let create = &traced[0].1;
    let bytes: u64 = create.iter().map(|&i| sections[i].size).sum();
    let best = bytes.div_ceil(WINDOW) as usize;
    let spans = windows(&sections, create);
    println!(
        "create ran {} functions ({} KiB): {} windows of 64 KiB as linked, {} at best",
        create.len(),
        bytes / 1024,
        spans,
        best
    );
    match mode {
        "write" => {
            let Some(out) = args.get(4) else {
                eprintln!("{usage}");
                std::process::exit(2);
            };
            let mut text = String::from(
                "# Written by scripts/text-order.sh (conformance/src/bin/text-order.rs) from a trace\n\
                 # of create, start, delete and run: lld places these functions first, in this order.\n",
            );
            let mut placed: BTreeSet<usize> = BTreeSet::new();
            for (name, set) in &traced {
                text.push_str(&format!("# {name}\n"));
                // Each command's functions in their present order: stable from run to run.
                for &i in set {
                    if placed.insert(i) {
                        if let Some(sym) = &sections[i].symbol {
                            text.push_str(sym);
                            text.push('\n');
                        }
                    }
                }
            }
            text.push_str("# the created init's wait (named in text-order.rs, not traced)\n");
            for (i, sec) in sections.iter().enumerate() {
                if let Some(sym) = sec.symbol.as_deref().filter(|s| in_init_wait(s)) {
                    if placed.insert(i) {
                        text.push_str(sym);
                        text.push('\n');
                    }
                }
            }
            std::fs::write(out, text).expect("write the order file");
            println!("wrote {out}: {} functions", placed.len());
        }
        "check" => {
            if spans > best + MARGIN {
                eprintln!(
                    "runtime/text-order.txt has drifted from the code: create spans {spans} windows, \
                     {best} at best; run scripts/text-order.sh write"
                );
                std::process::exit(1);
            }
        }
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_text_input_sections_and_their_first_symbols_from_an_lld_map() {
        // Sizes equal to alignments (1 and 1) must not be taken for the column they share digits with.
        let map = "             VMA              LMA     Size Align Out     In      Symbol
          161600           161600   4a8168    64 .text
          2192c0           2192c0       f2    16         libc.a(dl-debug.o):(.text)
          2192c0           2192c0        1     1                 _dl_debug_state
          2192d0           2192d0       48     1                 _dl_debug_update
          2193c0           2193c0       89     1         berth.o:(.text._RNvNtCs1_5alloc3fmt6format)
          2193c0           2193c0       89     1                 _RNvNtCs1_5alloc3fmt6format
          609768           609768       17     4 .init
          609768           609768       12     4         crti.o:(.init)
          609768           609768        0     1                 _init
";
        let s = text_sections(map);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].start, s[0].size, s[0].symbol.as_deref()), (0x2192c0, 0xf2, Some("_dl_debug_state")));
        assert_eq!(s[1].symbol.as_deref(), Some("_RNvNtCs1_5alloc3fmt6format"));
        assert_eq!(section_of(&s, 0x2192d5), Some(0));
        assert_eq!(section_of(&s, 0x219400), Some(1));
        assert_eq!(section_of(&s, 0x219500), None);
    }

    #[test]
    fn the_init_wait_names_match_by_mangled_path_or_exact_c_name() {
        assert!(in_init_wait("_ZN5berth7process5start6accept17hc3087701aee7f7d9E"));
        assert!(in_init_wait("_ZN5berth4init13wait_and_exec28_$u7b$$u7b$closure$u7d$$u7d$17h69daaa5a6f84755bE"));
        assert!(in_init_wait("_ZN9berth_sys3mem7release17h0123456789abcdefE"));
        assert!(!in_init_wait("_ZN9berth_sys3mem7release_all17h0123456789abcdefE"), "another function's prefix");
        assert!(in_init_wait("accept4"));
        assert!(!in_init_wait("accept"));
    }
}
