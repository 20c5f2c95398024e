//! The cgroup v2 device filter: an eBPF program of type
//! BPF_PROG_TYPE_CGROUP_DEVICE generated from the rules, loaded and attached
//! to the container's cgroup with BPF_F_ALLOW_MULTI.
//!
//! The program decides each requested access bit (mknod, read, write) on its
//! own: for a bit, rules are tried from the last to the first and the first
//! one that matches decides; no match means deny. That is the OCI meaning of
//! an ordered list on top of "deny all", including partial denies that take
//! only some bits away from an earlier allow.

use std::os::fd::{AsFd, OwnedFd};

use crate::sys::bpf;
use std::path::Path;

use super::devices::{DevKind, DeviceRule, ACC_ALL};
use super::CgroupError;

pub(crate) use crate::sys::bpf::Insn;

pub(crate) const LDX_MEM_W: u8 = 0x61;
pub(crate) const LD_IMM64: u8 = 0x18;
pub(crate) const ALU32_AND_K: u8 = 0x54;
pub(crate) const ALU32_RSH_K: u8 = 0x74;
pub(crate) const ALU64_MOV_K: u8 = 0xb7;
pub(crate) const ALU64_MOV_X: u8 = 0xbf;
pub(crate) const ALU64_LSH_K: u8 = 0x67;
pub(crate) const ALU64_OR_X: u8 = 0x4f;
pub(crate) const ALU64_XOR_X: u8 = 0xaf;
pub(crate) const JMP_JEQ_K: u8 = 0x15;
pub(crate) const JMP_JEQ_X: u8 = 0x1d;
pub(crate) const JMP_JNE_K: u8 = 0x55;
pub(crate) const JMP_JSET_K: u8 = 0x45;
pub(crate) const JMP_EXIT: u8 = 0x95;

/// bpf_cgroup_dev_ctx.access_type low half.
const BPF_DEVCG_DEV_BLOCK: u64 = 1;
const BPF_DEVCG_DEV_CHAR: u64 = 2;

/// Scratch: a rule's constant, and the return value at the end.
const R0: u8 = 0;
const R1: u8 = 1;
/// The requested access bits no rule has decided yet.
const R_PENDING: u8 = 2;

/// The fields a rule compares, and the register that holds exactly those fields of the
/// request as one number (a key), so that a rule is one comparison. Keys put a field 20
/// bits above the next: the kernel's minor numbers have 20 bits and its majors 12, and
/// devices.rs keeps a rule's numbers within 20 bits, so no two requests or rules share a
/// key unless their fields are equal.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Key {
    Type,
    Major,
    Minor,
    TypeMajor,
    TypeMinor,
    MajorMinor,
    All3,
}

impl Key {
    fn of(r: &DeviceRule) -> Option<Key> {
        let t = r.kind != DevKind::All;
        Some(match (t, r.major.is_some(), r.minor.is_some()) {
            (false, false, false) => return None,
            (true, false, false) => Key::Type,
            (false, true, false) => Key::Major,
            (false, false, true) => Key::Minor,
            (true, true, false) => Key::TypeMajor,
            (true, false, true) => Key::TypeMinor,
            (false, true, true) => Key::MajorMinor,
            (true, true, true) => Key::All3,
        })
    }
    fn reg(self) -> u8 {
        3 + self as u8
    }
    /// The rule's value of the key.
    fn value(self, r: &DeviceRule) -> u64 {
        let t = match r.kind {
            DevKind::Block => BPF_DEVCG_DEV_BLOCK,
            DevKind::Char => BPF_DEVCG_DEV_CHAR,
            DevKind::All => 0,
        };
        let (ma, mi) = (u64::from(r.major.unwrap_or(0)), u64::from(r.minor.unwrap_or(0)));
        match self {
            Key::Type => t,
            Key::Major => ma,
            Key::Minor => mi,
            Key::TypeMajor => t << 20 | ma,
            Key::TypeMinor => t << 20 | mi,
            Key::MajorMinor => ma << 20 | mi,
            Key::All3 => t << 40 | ma << 20 | mi,
        }
    }
    /// The two keys this one packs, the higher field first; None for a field of the request.
    fn parts(self) -> Option<(Key, Key)> {
        match self {
            Key::Type | Key::Major | Key::Minor => None,
            Key::TypeMajor => Some((Key::Type, Key::Major)),
            Key::TypeMinor => Some((Key::Type, Key::Minor)),
            Key::MajorMinor => Some((Key::Major, Key::Minor)),
            Key::All3 => Some((Key::TypeMajor, Key::Minor)),
        }
    }
    /// Emits the computation of this key from the request (ctx in r1) unless `computed`
    /// has it, after the keys it is built from.
    fn emit(self, a: &mut Asm, computed: &mut Vec<Key>) {
        if computed.contains(&self) {
            return;
        }
        match self.parts() {
            None => {
                let offset = match self {
                    Key::Type => 0,
                    Key::Major => 4,
                    _ => 8,
                };
                a.insn(LDX_MEM_W, self.reg(), R1, offset, 0);
                if self == Key::Type {
                    a.insn(ALU32_AND_K, self.reg(), 0, 0, 0xffff);
                }
            }
            Some((hi, lo)) => {
                hi.emit(a, computed);
                lo.emit(a, computed);
                a.insn(ALU64_MOV_X, self.reg(), hi.reg(), 0, 0);
                a.insn(ALU64_LSH_K, self.reg(), 0, 0, 20);
                a.insn(ALU64_OR_X, self.reg(), lo.reg(), 0, 0);
            }
        }
        computed.push(self);
    }
}

enum Op {
    Insn(Insn),
    Jump { code: u8, regs: u8, imm: i32, label: usize },
    Label(usize),
}

/// A tiny assembler: jumps name labels, resolved to offsets at the end.
struct Asm {
    ops: Vec<Op>,
    labels: usize,
}

impl Asm {
    fn new() -> Self {
        Asm { ops: Vec::new(), labels: 0 }
    }
    fn label(&mut self) -> usize {
        self.labels += 1;
        self.labels - 1
    }
    fn place(&mut self, l: usize) {
        self.ops.push(Op::Label(l));
    }
    fn insn(&mut self, code: u8, dst: u8, src: u8, off: i16, imm: i32) {
        self.ops.push(Op::Insn(Insn { code, regs: dst | (src << 4), off, imm }));
    }
    fn jump(&mut self, code: u8, dst: u8, imm: i32, label: usize) {
        self.ops.push(Op::Jump { code, regs: dst, imm, label });
    }
    /// A jump on comparing register `dst` with register `src`.
    fn jump_x(&mut self, code: u8, dst: u8, src: u8, label: usize) {
        self.ops.push(Op::Jump { code, regs: dst | (src << 4), imm: 0, label });
    }
    /// r = v, in one instruction when v fits an immediate, else in the two of LD_IMM64.
    fn load_const(&mut self, r: u8, v: u64) {
        match i32::try_from(v) {
            Ok(imm) => self.insn(ALU64_MOV_K, r, 0, 0, imm),
            Err(_) => {
                self.insn(LD_IMM64, r, 0, 0, v as u32 as i32);
                self.insn(0, 0, 0, 0, (v >> 32) as u32 as i32);
            }
        }
    }
    fn ret(&mut self, v: i32) {
        self.insn(ALU64_MOV_K, R0, 0, 0, v);
        self.insn(JMP_EXIT, 0, 0, 0, 0);
    }
    fn finish(self) -> Result<Vec<Insn>, CgroupError> {
        let mut pos = vec![0usize; self.labels];
        let mut n = 0usize;
        for op in &self.ops {
            match op {
                Op::Label(l) => pos[*l] = n,
                _ => n += 1,
            }
        }
        let mut out = Vec::with_capacity(n);
        for op in &self.ops {
            match op {
                Op::Label(_) => {}
                Op::Insn(i) => out.push(*i),
                Op::Jump { code, regs, imm, label } => {
                    let off = pos[*label] as i64 - (out.len() as i64 + 1);
                    let off = i16::try_from(off).map_err(|_| {
                        CgroupError::invalid("linux.resources.devices", "too many rules for one eBPF program")
                    })?;
                    out.push(Insn { code: *code, regs: *regs, off, imm: *imm });
                }
            }
        }
        Ok(out)
    }
}

/// Generates the filter program for `rules` (returns 1 = allow, 0 = deny).
///
/// One pass over the rules, last to first, carrying the requested bits that no rule has
/// decided yet: an allow that matches the device takes its bits out (all gone: allow), a
/// deny that matches one of them denies. What is left at the end is denied.
///
/// The verifier walks every path, and its work is most of what a cgroup v2 `create` pays
/// for the program (docs/performance.md). So that it walks each rule about once, a rule is
/// one comparison of a key computed up front (`Key`), and no path leaves a rule knowing
/// more about the request than it did: an allow of every bit jumps to `allow` when its key
/// matches; any other rule compares a scratch copy (the key xor the rule's value, zero
/// when they match), so what the comparison teaches the verifier dies with the copy.
pub(crate) fn device_filter(rules: &[DeviceRule]) -> Result<Vec<Insn>, CgroupError> {
    let mut used: Vec<&DeviceRule> = Vec::new();
    for r in rules.iter().rev().filter(|r| r.access & ACC_ALL != 0) {
        used.push(r);
        if r.is_everything() {
            // Every bit is decided here: anything earlier is unreachable.
            break;
        }
    }
    let mut a = Asm::new();
    let (allow, deny) = (a.label(), a.label());
    // struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
    // access_type = (access << 16) | type.
    a.insn(LDX_MEM_W, R_PENDING, R1, 0, 0);
    a.insn(ALU32_RSH_K, R_PENDING, 0, 0, 16);
    // The kernel's BPF_DEVCG_ACC_* bits are the same as ours (mknod 1, read 2, write 4);
    // no other bit is decided by a rule.
    a.insn(ALU32_AND_K, R_PENDING, 0, 0, i32::from(ACC_ALL));
    a.jump(JMP_JEQ_K, R_PENDING, 0, allow);
    let mut computed: Vec<Key> = Vec::new();
    for k in used.iter().filter_map(|r| Key::of(r)) {
        k.emit(&mut a, &mut computed);
    }
    for r in used {
        let access = i32::from(r.access & ACC_ALL);
        let next = a.label();
        match Key::of(r) {
            // Every device: the rule applies as it stands.
            None => {}
            Some(k) if r.allow && access == i32::from(ACC_ALL) => {
                let v = k.value(r);
                match i32::try_from(v) {
                    Ok(imm) => a.jump(JMP_JEQ_K, k.reg(), imm, allow),
                    Err(_) => {
                        a.load_const(R0, v);
                        a.jump_x(JMP_JEQ_X, k.reg(), R0, allow);
                    }
                }
                continue;
            }
            Some(k) => {
                a.load_const(R0, k.value(r));
                a.insn(ALU64_XOR_X, R0, k.reg(), 0, 0);
                a.jump(JMP_JNE_K, R0, 0, next);
            }
        }
        if r.allow {
            // Also for an allow of everything, which ends the program: the conditional
            // jump leaves `deny` reachable, as the kernel wants every instruction to be.
            a.insn(ALU32_AND_K, R_PENDING, 0, 0, !access);
            a.jump(JMP_JEQ_K, R_PENDING, 0, allow);
        } else {
            a.jump(JMP_JSET_K, R_PENDING, access, deny);
        }
        a.place(next);
    }
    a.place(deny);
    a.ret(0);
    a.place(allow);
    a.ret(1);
    a.finish()
}

fn bpf_err(op: &str, dir: &Path, e: std::io::Error) -> CgroupError {
    CgroupError::Bpf { op: format!("{op} ({})", dir.display()), source: e }
}

fn load(insns: &[Insn], dir: &Path) -> Result<OwnedFd, CgroupError> {
    let license = c"Apache";
    let mut log = vec![0u8; 0];
    for attempt in 0..2 {
        if attempt == 1 {
            // Only on failure: the verifier log costs time.
            log = vec![0u8; 1 << 16];
        }
        let verifier_log = if attempt == 1 { Some(&mut log[..]) } else { None };
        match bpf::prog_load_cgroup_device(insns, license, verifier_log) {
            Ok(fd) => return Ok(fd),
            Err(e) if attempt == 1 => {
                let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                let text = String::from_utf8_lossy(&log[..end]);
                let last = text.lines().rev().take(3).collect::<Vec<_>>().join(" | ");
                return Err(bpf_err(&format!("BPF_PROG_LOAD: verifier: {last}"), dir, e));
            }
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                return Err(bpf_err("BPF_PROG_LOAD", dir, e));
            }
            Err(_) => {}
        }
    }
    Err(bpf_err("BPF_PROG_LOAD", dir, std::io::Error::from_raw_os_error(libc::EINVAL)))
}

/// Programs already attached to the cgroup, so that an update can replace
/// them (with ALLOW_MULTI every attached program must allow an access).
fn attached(cg: &OwnedFd, dir: &Path) -> Result<Vec<OwnedFd>, CgroupError> {
    let mut ids = vec![0u32; 64];
    let count = bpf::prog_query_cgroup_device(cg.as_fd(), &mut ids).map_err(|e| bpf_err("BPF_PROG_QUERY", dir, e))?;
    let mut out = Vec::new();
    for &id in ids.iter().take(count) {
        match bpf::prog_get_fd_by_id(id) {
            Ok(fd) => out.push(fd),
            // Detached and freed meanwhile: nothing to replace.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(bpf_err("BPF_PROG_GET_FD_BY_ID", dir, e)),
        }
    }
    Ok(out)
}

/// Loads the filter for `rules` and makes it the only device program on the
/// cgroup `dir` (attach new first, then detach old, so there is no window
/// without a filter).
pub(crate) fn apply_device_filter(dir: &Path, rules: &[DeviceRule]) -> Result<(), CgroupError> {
    let insns = device_filter(rules)?;
    let cg = nix::fcntl::open(
        dir,
        nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| CgroupError::Io { path: dir.to_path_buf(), op: "open", source: e.into() })?;
    let old = attached(&cg, dir)?;
    let prog = load(&insns, dir)?;
    bpf::prog_attach_cgroup_device(cg.as_fd(), prog.as_fd()).map_err(|e| bpf_err("BPF_PROG_ATTACH", dir, e))?;
    for o in old {
        bpf::prog_detach_cgroup_device(cg.as_fd(), o.as_fd()).map_err(|e| bpf_err("BPF_PROG_DETACH", dir, e))?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::devices::{evaluate, ACC_READ};
    use super::*;

    /// Runs the subset of eBPF the generator emits.
    pub(crate) fn run(prog: &[Insn], ctx: [u32; 3]) -> u64 {
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        let mut steps = 0;
        loop {
            steps += 1;
            assert!(steps < 100_000, "loop");
            let i = prog[pc];
            let dst = (i.regs & 0xf) as usize;
            let src = (i.regs >> 4) as usize;
            let mut next = pc + 1;
            match i.code {
                LDX_MEM_W => {
                    assert_eq!(src, usize::from(R1));
                    r[dst] = u64::from(ctx[(i.off / 4) as usize]);
                }
                LD_IMM64 => {
                    r[dst] = u64::from(i.imm as u32) | u64::from(prog[pc + 1].imm as u32) << 32;
                    next = pc + 2;
                }
                ALU32_AND_K => r[dst] = (r[dst] as u32 & i.imm as u32) as u64,
                ALU64_MOV_X => r[dst] = r[src],
                ALU64_LSH_K => r[dst] <<= i.imm,
                ALU64_OR_X => r[dst] |= r[src],
                ALU64_XOR_X => r[dst] ^= r[src],
                JMP_JEQ_X => {
                    if r[dst] == r[src] {
                        next = (pc as i64 + 1 + i64::from(i.off)) as usize;
                    }
                }
                ALU32_RSH_K => r[dst] = ((r[dst] as u32) >> i.imm) as u64,
                ALU64_MOV_K => r[dst] = i.imm as i64 as u64,
                JMP_JEQ_K | JMP_JNE_K => {
                    let eq = r[dst] == i.imm as i64 as u64;
                    if eq == (i.code == JMP_JEQ_K) {
                        next = (pc as i64 + 1 + i64::from(i.off)) as usize;
                    }
                }
                JMP_JSET_K => {
                    if r[dst] & (i.imm as i64 as u64) != 0 {
                        next = (pc as i64 + 1 + i64::from(i.off)) as usize;
                    }
                }
                JMP_EXIT => return r[0],
                c => panic!("unexpected opcode {c:#x}"),
            }
            pc = next;
        }
    }

    fn ask(prog: &[Insn], kind: DevKind, major: u32, minor: u32, acc: u8) -> bool {
        let t = match kind {
            DevKind::Block => 1,
            DevKind::Char => 2,
            DevKind::All => unreachable!(),
        };
        run(prog, [(u32::from(acc) << 16) | t, major, minor]) == 1
    }

    /// A small deterministic generator, so the test needs no crate.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self, n: u64) -> u64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }
    }

    /// Device numbers the tests use: small ones, and the largest the kernel gives (a major
    /// has 12 bits, a minor 20) and a rule may name (20 bits), where a key's fields meet.
    const NUMBERS: [u32; 5] = [0, 1, 2, 0xfff, 0xfffff];
    const MAJORS: [u32; 4] = [0, 1, 2, 0xfff];

    /// 300 rule lists of up to 7 rules over `NUMBERS`, every kind and access.
    fn random_rule_lists() -> Vec<Vec<DeviceRule>> {
        let mut g = Lcg(42);
        (0..300)
            .map(|_| {
                let n = g.next(8) as usize;
                (0..n)
                    .map(|_| DeviceRule {
                        allow: g.next(3) != 0,
                        kind: [DevKind::All, DevKind::Block, DevKind::Char][g.next(3) as usize],
                        major: if g.next(3) == 0 { None } else { Some(NUMBERS[g.next(5) as usize]) },
                        minor: if g.next(3) == 0 { None } else { Some(NUMBERS[g.next(5) as usize]) },
                        access: (g.next(7) + 1) as u8,
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn program_matches_reference_semantics() {
        for rules in random_rule_lists() {
            let prog = device_filter(&rules).unwrap();
            for kind in [DevKind::Block, DevKind::Char] {
                for major in MAJORS {
                    for minor in NUMBERS {
                        for acc in 1..=ACC_ALL {
                            assert_eq!(
                                ask(&prog, kind, major, minor, acc),
                                evaluate(&rules, kind, major, minor, acc),
                                "rules {rules:?} {kind:?} {major}:{minor} {acc}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// The kernel's verifier takes every program the generator makes (the semantics test
    /// above runs them in a model, not in the kernel).
    #[test]
    #[ignore = "needs root: BPF_PROG_LOAD of a cgroup device program"]
    fn root_kernel_verifier_accepts_every_generated_program() {
        for rules in random_rule_lists() {
            let prog = device_filter(&rules).unwrap();
            if let Err(e) = bpf::prog_load_cgroup_device(&prog, c"Apache", None) {
                panic!("rules {rules:?}: BPF_PROG_LOAD: {e}");
            }
        }
    }

    /// The rules of `berth spec` with runc's defaults appended, as every container gets
    /// them: the verifier walks each instruction about once (it walked 239 for a program
    /// of 63 when a path carried what one rule had learnt into the next).
    #[test]
    #[ignore = "needs root: BPF_PROG_LOAD of a cgroup device program"]
    fn root_verifier_walks_the_default_program_about_once() {
        let spec: oci_spec::runtime::Spec = serde_json::from_value(crate::spec_template::default_spec(false)).unwrap();
        let res = crate::spec::cgroup_resources(&spec);
        let rules = super::super::devices::parse_rules(res.devices().as_ref().unwrap()).unwrap();
        let prog = device_filter(&rules).unwrap();
        let mut log = vec![0u8; 1 << 16];
        bpf::prog_load_cgroup_device(&prog, c"Apache", Some(&mut log[..])).unwrap();
        let text = String::from_utf8_lossy(&log[..log.iter().position(|&b| b == 0).unwrap()]).into_owned();
        let processed: usize = text
            .split("processed ")
            .nth(1)
            .and_then(|t| t.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no instruction count in the verifier's log: {text}"));
        assert!(processed <= 2 * prog.len(), "{processed} instructions walked for {}: {text}", prog.len());
    }

    #[test]
    fn empty_rules_deny_everything_and_allow_all_allows() {
        let prog = device_filter(&[]).unwrap();
        assert!(!ask(&prog, DevKind::Char, 1, 3, ACC_READ));
        let all = DeviceRule { allow: true, kind: DevKind::All, major: None, minor: None, access: ACC_ALL };
        let prog = device_filter(&[all]).unwrap();
        assert!(ask(&prog, DevKind::Block, 8, 0, ACC_ALL));
    }
}
