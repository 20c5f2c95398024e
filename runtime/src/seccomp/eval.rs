//! What a compiled filter answers for one system call, worked out in user space by running
//! its classic BPF program on the `seccomp_data` the kernel would build. The init asks it
//! before a call it makes after loading the container's filter only to save memory
//! (giving back its text pages while it waits for `start`): the call is made only if the
//! filter certainly allows it. An instruction this evaluator does not know counts as "not
//! allowed", never as a guess.

/// The seccomp_data of one call: `nr`, `arch`, `instruction_pointer`, `args[6]`.
pub(crate) struct Call {
    pub nr: u32,
    pub arch: u32,
    pub args: [u64; 6],
}

impl Call {
    /// The 32-bit word at byte offset `k` of seccomp_data, in native byte order as the
    /// kernel's BPF_LD|BPF_W|BPF_ABS reads it.
    fn word(&self, k: u32) -> Option<u32> {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&self.nr.to_ne_bytes());
        data[4..8].copy_from_slice(&self.arch.to_ne_bytes());
        // instruction_pointer (8..16) stays 0: no profile berth builds looks at it.
        for (i, a) in self.args.iter().enumerate() {
            data[16 + i * 8..24 + i * 8].copy_from_slice(&a.to_ne_bytes());
        }
        let k = usize::try_from(k).ok()?;
        if k % 4 != 0 {
            return None;
        }
        let bytes: [u8; 4] = data.get(k..k + 4)?.try_into().ok()?;
        Some(u32::from_ne_bytes(bytes))
    }
}

const SECCOMP_RET_ACTION_FULL: u32 = 0xffff_0000;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;

/// The filter's return value for `call`, or `None` where the program does something this
/// evaluator does not model (or runs off its end, which the kernel would not have loaded).
pub(crate) fn run(program: &[libc::sock_filter], call: &Call) -> Option<u32> {
    let (mut a, mut x) = (0u32, 0u32);
    let mut mem = [0u32; 16];
    let mut pc = 0usize;
    // Classic BPF only jumps forward, so a program ends within its length in steps.
    for _ in 0..=program.len() {
        let ins = program.get(pc)?;
        let k = ins.k;
        pc += 1;
        match ins.code {
            // BPF_LD | BPF_W | BPF_ABS / BPF_IMM / BPF_MEM
            0x20 => a = call.word(k)?,
            0x00 => a = k,
            0x60 => a = *mem.get(usize::try_from(k).ok()?)?,
            // BPF_LDX | BPF_W | BPF_IMM / BPF_MEM
            0x01 => x = k,
            0x61 => x = *mem.get(usize::try_from(k).ok()?)?,
            // BPF_ST / BPF_STX
            0x02 => *mem.get_mut(usize::try_from(k).ok()?)? = a,
            0x03 => *mem.get_mut(usize::try_from(k).ok()?)? = x,
            // BPF_ALU with K or X
            0x04 | 0x0c => a = a.wrapping_add(if ins.code & 0x08 != 0 { x } else { k }),
            0x14 | 0x1c => a = a.wrapping_sub(if ins.code & 0x08 != 0 { x } else { k }),
            0x44 | 0x4c => a |= if ins.code & 0x08 != 0 { x } else { k },
            0x54 | 0x5c => a &= if ins.code & 0x08 != 0 { x } else { k },
            0x64 | 0x6c => a = a.checked_shl(if ins.code & 0x08 != 0 { x } else { k }).unwrap_or(0),
            0x74 | 0x7c => a = a.checked_shr(if ins.code & 0x08 != 0 { x } else { k }).unwrap_or(0),
            0xa4 | 0xac => a ^= if ins.code & 0x08 != 0 { x } else { k },
            0x84 => a = a.wrapping_neg(),
            // BPF_JMP: JA, then JEQ / JGT / JGE / JSET with K or X.
            0x05 => pc = pc.checked_add(usize::try_from(k).ok()?)?,
            0x15 | 0x1d | 0x25 | 0x2d | 0x35 | 0x3d | 0x45 | 0x4d => {
                let v = if ins.code & 0x08 != 0 { x } else { k };
                let taken = match ins.code & 0xf0 {
                    0x10 => a == v,
                    0x20 => a > v,
                    0x30 => a >= v,
                    _ => a & v != 0,
                };
                pc += usize::from(if taken { ins.jt } else { ins.jf });
            }
            // BPF_RET | BPF_K / BPF_A
            0x06 => return Some(k),
            0x16 => return Some(a),
            // BPF_MISC: TAX, TXA
            0x07 => x = a,
            0x87 => a = x,
            _ => return None,
        }
    }
    None
}

/// Whether the filter certainly lets `call` through to the kernel.
pub(crate) fn allows(program: &[libc::sock_filter], call: &Call) -> bool {
    run(program, call).is_some_and(|r| r & SECCOMP_RET_ACTION_FULL == SECCOMP_RET_ALLOW)
}
