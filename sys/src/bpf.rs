//! bpf(2) for the cgroup v2 device filter: load a BPF_PROG_TYPE_CGROUP_DEVICE program,
//! query, attach and detach the programs of a cgroup. nix has no bpf wrapper.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// One eBPF instruction as the kernel lays it out (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst in the low nibble, src in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

// The parts of union bpf_attr we use; the kernel accepts a shorter struct
// as long as what it does not know about is absent.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Default)]
struct GetFdByIdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

fn bpf<T: BpfAttr>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: attr is a live, properly sized repr(C) prefix of union bpf_attr
    // for this command; pointers inside it point to buffers that outlive the call.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T as *mut libc::c_void, std::mem::size_of::<T>()) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// The repr(C) prefixes of union bpf_attr above; only they may be passed to `bpf`.
trait BpfAttr {}
impl BpfAttr for ProgLoadAttr {}
impl BpfAttr for AttachAttr {}
impl BpfAttr for QueryAttr {}
impl BpfAttr for GetFdByIdAttr {}

fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: the commands that return an fd return a new one that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

/// BPF_PROG_LOAD of a cgroup device program; with `log`, the verifier writes its log there.
pub fn prog_load_cgroup_device(insns: &[Insn], license: &CStr, log: Option<&mut [u8]>) -> io::Result<OwnedFd> {
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..Default::default()
    };
    if let Some(log) = log {
        attr.log_level = 1;
        attr.log_size = log.len() as u32;
        attr.log_buf = log.as_mut_ptr() as u64;
    }
    bpf(BPF_PROG_LOAD, &mut attr).map(owned)
}

/// BPF_PROG_QUERY: fills `ids` with the ids of the device programs attached to `cg` and
/// returns how many there are.
pub fn prog_query_cgroup_device(cg: BorrowedFd<'_>, ids: &mut [u32]) -> io::Result<usize> {
    let mut q = QueryAttr {
        target_fd: cg.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    bpf(BPF_PROG_QUERY, &mut q)?;
    Ok(q.prog_cnt as usize)
}

/// BPF_PROG_GET_FD_BY_ID.
pub fn prog_get_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut g = GetFdByIdAttr { prog_id: id, ..Default::default() };
    bpf(BPF_PROG_GET_FD_BY_ID, &mut g).map(owned)
}

/// BPF_PROG_ATTACH of a device program to `cg`, with BPF_F_ALLOW_MULTI.
pub fn prog_attach_cgroup_device(cg: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> io::Result<()> {
    let mut at = AttachAttr {
        target_fd: cg.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    bpf(BPF_PROG_ATTACH, &mut at).map(drop)
}

/// BPF_PROG_DETACH of a device program from `cg`.
pub fn prog_detach_cgroup_device(cg: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> io::Result<()> {
    let mut d = AttachAttr {
        target_fd: cg.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    bpf(BPF_PROG_DETACH, &mut d).map(drop)
}
