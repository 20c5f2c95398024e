//! The -ENOSYS stub put in front of libseccomp's program, as runc does
//! (libcontainer/seccomp/patchbpf): a syscall numbered above the highest one the profile
//! names, for the architecture of the call, returns ENOSYS instead of the default action.
//! Profiles lag behind kernels and libcs; with ENOSYS glibc falls back from `clone3` to
//! `clone`, from `faccessat2` to `faccessat`, ..., where EPERM or a kill would break the
//! program.
//!
//! The stub only ever answers ENOSYS or hands the call on to libseccomp's program: every
//! syscall the profile names is at or below that highest number and keeps its rules'
//! actions, so the stub can never let through a call the profile denies. A call of another
//! architecture goes to the program unchanged (which applies its bad-architecture action).
//! x86-64 and x32 share one audit architecture: the x32 bit of the number tells them apart,
//! and each gets its own bound (or none, when the profile does not list it).

use libc::sock_filter;
use libseccomp::{ScmpArch, ScmpSyscall};

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JA: u16 = 0x05;
const BPF_JMP_JEQ_K: u16 = 0x15;
const BPF_JMP_JGT_K: u16 = 0x25;
const BPF_JMP_JSET_K: u16 = 0x45;
const BPF_RET_K: u16 = 0x06;
/// Offsets in `struct seccomp_data`.
const NR: u32 = 0;
const ARCH: u32 = 4;
const RET_ERRNO_ENOSYS: u32 = 0x0005_0000 | libc::ENOSYS as u32;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const AUDIT_64BIT: u32 = 0x8000_0000;
const AUDIT_LE: u32 = 0x4000_0000;
const AUDIT_MIPS64_N32: u32 = 0x2000_0000;

/// The kernel's AUDIT_ARCH_* for a libseccomp architecture (what `seccomp_data.arch` holds);
/// x32 shares x86-64's.
fn audit_arch(a: ScmpArch) -> Option<u32> {
    const EM_386: u32 = 3;
    const EM_68K: u32 = 4;
    const EM_MIPS: u32 = 8;
    const EM_PARISC: u32 = 15;
    const EM_PPC: u32 = 20;
    const EM_PPC64: u32 = 21;
    const EM_S390: u32 = 22;
    const EM_ARM: u32 = 40;
    const EM_SH: u32 = 42;
    const EM_X86_64: u32 = 62;
    const EM_AARCH64: u32 = 183;
    const EM_RISCV: u32 = 243;
    const EM_LOONGARCH: u32 = 258;
    Some(match a {
        ScmpArch::X86 => EM_386 | AUDIT_LE,
        ScmpArch::X8664 | ScmpArch::X32 => EM_X86_64 | AUDIT_64BIT | AUDIT_LE,
        ScmpArch::Arm => EM_ARM | AUDIT_LE,
        ScmpArch::Aarch64 => EM_AARCH64 | AUDIT_64BIT | AUDIT_LE,
        ScmpArch::Mips => EM_MIPS,
        ScmpArch::Mipsel => EM_MIPS | AUDIT_LE,
        ScmpArch::Mips64 => EM_MIPS | AUDIT_64BIT,
        ScmpArch::Mipsel64 => EM_MIPS | AUDIT_64BIT | AUDIT_LE,
        ScmpArch::Mips64N32 => EM_MIPS | AUDIT_64BIT | AUDIT_MIPS64_N32,
        ScmpArch::Mipsel64N32 => EM_MIPS | AUDIT_64BIT | AUDIT_LE | AUDIT_MIPS64_N32,
        ScmpArch::Ppc => EM_PPC,
        ScmpArch::Ppc64 => EM_PPC64 | AUDIT_64BIT,
        ScmpArch::Ppc64Le => EM_PPC64 | AUDIT_64BIT | AUDIT_LE,
        ScmpArch::S390 => EM_S390,
        ScmpArch::S390X => EM_S390 | AUDIT_64BIT,
        ScmpArch::Parisc => EM_PARISC,
        ScmpArch::Parisc64 => EM_PARISC | AUDIT_64BIT,
        ScmpArch::Riscv64 => EM_RISCV | AUDIT_64BIT | AUDIT_LE,
        ScmpArch::Loongarch64 => EM_LOONGARCH | AUDIT_64BIT | AUDIT_LE,
        ScmpArch::M68k => EM_68K,
        ScmpArch::Sh => EM_SH | AUDIT_LE,
        ScmpArch::Sheb => EM_SH,
        _ => return None,
    })
}

/// One audit architecture's bounds: the highest syscall the profile names for it, in the
/// plain numbering and (x86-64 only) for x32 calls.
#[derive(Debug, Default, Clone, PartialEq)]
struct Bounds {
    audit: u32,
    plain: Option<u32>,
    x32: Option<u32>,
    /// s390: an unknown number arrives as syscall 0, the multiplexer (runc's rule).
    nr0_unknown: bool,
}

/// The highest number among `names` for each of `arches` (the native architecture is
/// always included, as the filter always has it), grouped by audit architecture.
fn bounds(arches: &[ScmpArch], names: &[&str]) -> Vec<Bounds> {
    let mut all: Vec<ScmpArch> =
        arches.iter().map(|a| if *a == ScmpArch::Native { ScmpArch::native() } else { *a }).collect();
    all.push(ScmpArch::native());
    let mut out: Vec<Bounds> = Vec::new();
    for arch in all {
        let Some(audit) = audit_arch(arch) else { continue };
        // Negative numbers are libseccomp's pseudo-syscalls (multiplexed on this arch).
        let max = names
            .iter()
            .filter_map(|n| ScmpSyscall::from_name_by_arch(n, arch).ok())
            .map(i32::from)
            .filter(|n| *n >= 0)
            .max();
        let Some(max) = max else { continue };
        let i = match out.iter().position(|b| b.audit == audit) {
            Some(i) => i,
            None => {
                out.push(Bounds { audit, ..Default::default() });
                out.len() - 1
            }
        };
        let b = &mut out[i];
        b.nr0_unknown = matches!(arch, ScmpArch::S390 | ScmpArch::S390X);
        if arch == ScmpArch::X32 {
            b.x32 = Some(max as u32);
        } else {
            b.plain = Some(max as u32);
        }
    }
    out
}

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter { code, jt: 0, jf: 0, k }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// Where a `ja` goes; resolved once the stub's length is known.
enum To {
    Section(usize),
    Filter,
}

enum Insn {
    Raw(sock_filter),
    Ja(To),
}

/// `if nr > max { return ENOSYS }`, then on to the filter.
fn bound_check(max: u32) -> [Insn; 3] {
    [Insn::Raw(jump(BPF_JMP_JGT_K, max, 0, 1)), Insn::Raw(stmt(BPF_RET_K, RET_ERRNO_ENOSYS)), Insn::Ja(To::Filter)]
}

fn section(b: &Bounds) -> Vec<Insn> {
    let mut s = vec![Insn::Raw(stmt(BPF_LD_W_ABS, NR))];
    if b.nr0_unknown {
        s.push(Insn::Raw(jump(BPF_JMP_JEQ_K, 0, 0, 1)));
        s.push(Insn::Raw(stmt(BPF_RET_K, RET_ERRNO_ENOSYS)));
    }
    let x86_64 = audit_arch(ScmpArch::X8664) == Some(b.audit);
    match (b.plain, b.x32, x86_64) {
        (Some(p), None, false) => s.extend(bound_check(p)),
        // x32 calls (number with the x32 bit) skip the x86-64 bound.
        (Some(p), None, true) => {
            s.push(Insn::Raw(jump(BPF_JMP_JSET_K, X32_SYSCALL_BIT, 2, 0)));
            s.extend(bound_check(p));
        }
        (None, Some(x), _) => {
            s.push(Insn::Raw(jump(BPF_JMP_JSET_K, X32_SYSCALL_BIT, 0, 2)));
            s.extend(bound_check(x));
        }
        (Some(p), Some(x), _) => {
            s.push(Insn::Raw(jump(BPF_JMP_JSET_K, X32_SYSCALL_BIT, 3, 0)));
            s.extend(bound_check(p));
            s.extend(bound_check(x));
        }
        (None, None, _) => s.push(Insn::Ja(To::Filter)),
    }
    s
}

/// The stub for a profile naming `names` (every rule's, whatever its action) on `arches`;
/// it falls through to the program that follows it. Empty when no bound is known.
pub fn stub(arches: &[ScmpArch], names: &[&str]) -> Vec<sock_filter> {
    let bounds = bounds(arches, names);
    if bounds.is_empty() {
        return Vec::new();
    }
    // Dispatch on the architecture: jeq arch → ja section; anything else → the filter.
    let mut prog = vec![Insn::Raw(stmt(BPF_LD_W_ABS, ARCH))];
    for (i, b) in bounds.iter().enumerate() {
        prog.push(Insn::Raw(jump(BPF_JMP_JEQ_K, b.audit, 0, 1)));
        prog.push(Insn::Ja(To::Section(i)));
    }
    prog.push(Insn::Ja(To::Filter));
    let mut starts = Vec::new();
    for b in &bounds {
        starts.push(prog.len());
        prog.extend(section(b));
    }
    let end = prog.len();
    prog.iter()
        .enumerate()
        .map(|(pc, insn)| match insn {
            Insn::Raw(f) => *f,
            Insn::Ja(to) => {
                let target = match to {
                    To::Section(i) => starts[*i],
                    To::Filter => end,
                };
                stmt(BPF_JMP_JA, (target - pc - 1) as u32)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A classic-BPF interpreter for the instructions the stub uses, with the program that
    /// follows it reduced to one `ret FILTER`.
    const FILTER: u32 = 0xf11e;
    fn run(prog: &[sock_filter], arch: u32, nr: u32) -> u32 {
        let mut pc = 0usize;
        let mut a = 0u32;
        loop {
            let Some(i) = prog.get(pc) else { return FILTER };
            pc += 1;
            match i.code {
                BPF_LD_W_ABS => a = if i.k == ARCH { arch } else { nr },
                BPF_RET_K => return i.k,
                BPF_JMP_JA => pc += i.k as usize,
                BPF_JMP_JEQ_K => pc += if a == i.k { i.jt } else { i.jf } as usize,
                BPF_JMP_JGT_K => pc += if a > i.k { i.jt } else { i.jf } as usize,
                BPF_JMP_JSET_K => pc += if a & i.k != 0 { i.jt } else { i.jf } as usize,
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    fn nr(name: &str, arch: ScmpArch) -> u32 {
        i32::from(ScmpSyscall::from_name_by_arch(name, arch).unwrap()) as u32
    }

    const X86_64: u32 = 0xc000_003e;
    const I386: u32 = 0x4000_0003;

    #[test]
    fn numbers_above_the_highest_named_get_enosys_on_x86_64() {
        let prog = stub(&[ScmpArch::X8664], &["read", "openat", "mkdir"]);
        let max = nr("openat", ScmpArch::X8664);
        assert_eq!(run(&prog, X86_64, max), FILTER);
        assert_eq!(run(&prog, X86_64, 0), FILTER);
        assert_eq!(run(&prog, X86_64, max + 1), RET_ERRNO_ENOSYS);
        assert_eq!(run(&prog, X86_64, 1000), RET_ERRNO_ENOSYS);
        // x32 calls are not bounded when the profile does not list x32: the filter decides.
        assert_eq!(run(&prog, X86_64, X32_SYSCALL_BIT | 1000), FILTER);
        // Another architecture goes to the filter (its bad-arch action).
        assert_eq!(run(&prog, I386, 1000), FILTER);
    }

    #[test]
    fn x86_64_x32_and_i386_each_get_their_own_bound() {
        let names = ["read", "clone3", "mkdir"];
        let prog = stub(&[ScmpArch::X8664, ScmpArch::X32, ScmpArch::X86], &names);
        let x64 = nr("clone3", ScmpArch::X8664);
        let x32 = nr("clone3", ScmpArch::X32);
        let i386 = nr("clone3", ScmpArch::X86);
        assert!(x32 & X32_SYSCALL_BIT != 0, "libseccomp numbers x32 calls with the x32 bit: {x32:#x}");
        assert_eq!(run(&prog, X86_64, x64), FILTER);
        assert_eq!(run(&prog, X86_64, x64 + 1), RET_ERRNO_ENOSYS);
        assert_eq!(run(&prog, X86_64, x32), FILTER);
        assert_eq!(run(&prog, X86_64, x32 + 1), RET_ERRNO_ENOSYS);
        assert_eq!(run(&prog, I386, i386), FILTER);
        assert_eq!(run(&prog, I386, i386 + 1), RET_ERRNO_ENOSYS);
        // Only x32 listed (plus the native x86-64, always present).
        let prog = stub(&[ScmpArch::X32], &["read"]);
        assert_eq!(run(&prog, X86_64, X32_SYSCALL_BIT | 1), RET_ERRNO_ENOSYS);
        assert_eq!(run(&prog, X86_64, X32_SYSCALL_BIT), FILTER);
        assert_eq!(run(&prog, X86_64, 0), FILTER);
        assert_eq!(run(&prog, X86_64, 1), RET_ERRNO_ENOSYS);
    }

    #[test]
    fn named_syscalls_always_reach_the_filter() {
        let names = ["read", "write", "close_range", "openat2", "faccessat2", "clone3", "io_uring_setup"];
        let arches = [ScmpArch::X8664, ScmpArch::X32, ScmpArch::X86, ScmpArch::Aarch64, ScmpArch::S390X];
        let prog = stub(&arches, &names);
        for arch in arches {
            let audit = audit_arch(arch).unwrap();
            for n in names {
                if let Ok(s) = ScmpSyscall::from_name_by_arch(n, arch) {
                    let s = i32::from(s);
                    if s >= 0 {
                        assert_eq!(run(&prog, audit, s as u32), FILTER, "{n} on {arch:?}");
                    }
                }
            }
        }
        // s390x: syscall 0 stands for an unknown one.
        assert_eq!(run(&prog, audit_arch(ScmpArch::S390X).unwrap(), 0), RET_ERRNO_ENOSYS);
    }

    #[test]
    fn no_known_name_means_no_stub() {
        assert!(stub(&[ScmpArch::X8664], &["no_such_syscall"]).is_empty());
        assert!(stub(&[], &[]).is_empty());
    }
}
