//! The container's syscall filter (runtime-spec config-linux.md "Seccomp"), built with
//! libseccomp as runc, crun and youki do.
//!
//! `Filter::build` compiles the profile in `berth create` (and `berth exec`) before anything
//! exists, so every mistake in it fails naming the field and leaves nothing behind: libseccomp
//! generates the BPF program, berth puts the -ENOSYS stub in front of it (`enosys`, as runc
//! does) and keeps the program and its load flags. The compiled filter reaches the child
//! with the rest of the parent's memory (clone3 copies it), and the child calls
//! `Filter::load` (one seccomp(2) call, no libseccomp) at runc's point
//! (`init::process_setup::apply`). A
//! filter with SCMP_ACT_NOTIFY rules yields the listener fd, which the child passes to the
//! parent and the parent hands to the agent at `listenerPath` (`send_to_listener`) with the
//! container process state (`process_state`).
//!
//! What follows runc (libcontainer/seccomp): KILL is KILL_THREAD; ERRNO and TRACE return
//! EPERM unless `errnoRet` says otherwise; a rule whose action is the default action is
//! dropped (libseccomp refuses it); an unknown syscall name is skipped with a debug log
//! (SECURITY.md B22); several conditions on the same argument make one rule each (so they
//! OR), otherwise a rule's conditions AND; SECCOMP_FILTER_FLAG_TSYNC is accepted and has
//! nothing to do (the init and exec'd processes are single-threaded); without `flags`,
//! SPEC_ALLOW is set when the kernel supports it (runc 1.2); no_new_privs is left to
//! `process.noNewPrivileges`.

mod enosys;
mod eval;

use std::io::{self, IoSlice, Read, Seek};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixStream};
use std::path::{Path, PathBuf};

use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction as Action, LinuxSeccompFilterFlag as Flag, LinuxSeccompOperator as Op,
};
use serde_json::{json, Value};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SeccompError {
    #[error("{field}: {msg}")]
    Invalid { field: String, msg: String },
    #[error("linux.seccomp: {what}: {source}")]
    Libseccomp { what: String, source: libseccomp::error::SeccompError },
    #[error("linux.seccomp.listenerPath {path:?}: {what}: {source}")]
    Listener { path: PathBuf, what: &'static str, source: io::Error },
    #[error("encoding the container process state: {0}")]
    ProcessState(serde_json::Error),
}

fn invalid(field: impl Into<String>, msg: impl Into<String>) -> SeccompError {
    SeccompError::Invalid { field: field.into(), msg: msg.into() }
}

fn lib(what: impl Into<String>) -> impl FnOnce(libseccomp::error::SeccompError) -> SeccompError {
    let what = what.into();
    move |source| SeccompError::Libseccomp { what, source }
}

/// The names runtime-spec 1.3 defines, which `features` reports as known.
pub const ACTIONS: [&str; 9] = [
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_TRAP",
];
pub const OPERATORS: [&str; 7] =
    ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"];
const ARCHES: [&str; 23] = [
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_SH",
    "SCMP_ARCH_SHEB",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
];
pub const FLAGS: [&str; 4] = [
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
];

/// The most arguments a syscall has.
const MAX_ARGS: usize = 6;
/// The kernel keeps 16 bits of a filter's return data.
const MAX_ERRNO_RET: u32 = 0xffff;
/// The init sends the listener fd to `berth create` with sendmsg after loading the filter:
/// were sendmsg notified, it would wait for an agent that has not got the fd yet.
const INIT_SENDS_WITH: &str = "sendmsg";

/// Checks the names in `linux.seccomp` of the raw config before typed decoding, so an
/// unknown action, operator, architecture or flag is one error naming its field rather
/// than serde's list of variants.
pub fn check_names(seccomp: &Value) -> Result<(), SeccompError> {
    let check = |field: String, v: Option<&Value>, known: &[&str], what: &str| match v.and_then(Value::as_str) {
        Some(s) if !known.contains(&s) => Err(invalid(field, format!("unknown {what} {s:?}"))),
        _ => Ok(()),
    };
    let list = |key: &str| seccomp.get(key).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
    check("linux.seccomp.defaultAction".into(), seccomp.get("defaultAction"), &ACTIONS, "action")?;
    for (i, a) in list("architectures").iter().enumerate() {
        check(format!("linux.seccomp.architectures[{i}]"), Some(a), &ARCHES, "architecture")?;
    }
    for (i, f) in list("flags").iter().enumerate() {
        check(format!("linux.seccomp.flags[{i}]"), Some(f), &FLAGS, "flag")?;
    }
    for (i, s) in list("syscalls").iter().enumerate() {
        check(format!("linux.seccomp.syscalls[{i}].action"), s.get("action"), &ACTIONS, "action")?;
        let args = s.get("args").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
        for (j, a) in args.iter().enumerate() {
            check(format!("linux.seccomp.syscalls[{i}].args[{j}].op"), a.get("op"), &OPERATORS, "operator")?;
        }
    }
    Ok(())
}

/// The most instructions the kernel takes in one filter (BPF_MAXINSNS).
const MAX_INSNS: usize = 4096;

/// A compiled filter, not yet loaded: the BPF program and the seccomp(2) flags to load it with.
pub struct Filter {
    program: Vec<libc::sock_filter>,
    flags: u32,
    notify: bool,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter")
            .field("instructions", &self.program.len())
            .field("flags", &self.flags)
            .field("notify", &self.notify)
            .finish()
    }
}

fn action(a: Action, errno_ret: Option<u32>, field: &str) -> Result<ScmpAction, SeccompError> {
    let ret = match (a, errno_ret) {
        (Action::ScmpActErrno | Action::ScmpActTrace, Some(r)) if r > MAX_ERRNO_RET => {
            return Err(invalid(field, format!("errno {r} is above {MAX_ERRNO_RET}")))
        }
        (Action::ScmpActErrno | Action::ScmpActTrace, r) => r.unwrap_or(libc::EPERM as u32),
        (_, Some(_)) => return Err(invalid(field, format!("{a} does not take an errno"))),
        (_, None) => 0,
    };
    Ok(match a {
        Action::ScmpActKill | Action::ScmpActKillThread => ScmpAction::KillThread,
        Action::ScmpActKillProcess => ScmpAction::KillProcess,
        Action::ScmpActTrap => ScmpAction::Trap,
        Action::ScmpActErrno => ScmpAction::Errno(ret as i32),
        Action::ScmpActTrace => ScmpAction::Trace(ret as u16),
        Action::ScmpActAllow => ScmpAction::Allow,
        Action::ScmpActLog => ScmpAction::Log,
        Action::ScmpActNotify => ScmpAction::Notify,
    })
}

fn arch(a: Arch) -> ScmpArch {
    match a {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}

/// Whether this build of libseccomp knows `arch` (2.5 lacks the newest ones).
fn arch_known(a: ScmpArch) -> bool {
    ScmpSyscall::from_name_by_arch("read", a).is_ok()
}

/// Sets `flag` on `ctx`; an error means this libseccomp or kernel cannot.
fn set_flag(ctx: &mut ScmpFilterContext, flag: Flag) -> Result<(), libseccomp::error::SeccompError> {
    match flag {
        // One thread: nothing to synchronise. (Asking the kernel for TSYNC together with a
        // notify listener would also need TSYNC_ESRCH.)
        Flag::SeccompFilterFlagTsync => Ok(()),
        Flag::SeccompFilterFlagLog => ctx.set_ctl_log(true).map(drop),
        Flag::SeccompFilterFlagSpecAllow => ctx.set_ctl_ssb(true).map(drop),
        Flag::SeccompFilterFlagWaitKillableRecv => ctx.set_ctl_waitkill(true).map(drop),
    }
}

fn flag_of(name: &str) -> Option<Flag> {
    name.parse().ok()
}

/// The flags this build of libseccomp and this kernel can set (`features`' supportedFlags).
pub fn supported_flags() -> Vec<&'static str> {
    let Ok(mut ctx) = ScmpFilterContext::new(ScmpAction::Allow) else { return Vec::new() };
    FLAGS.iter().copied().filter(|f| flag_of(f).is_some_and(|f| set_flag(&mut ctx, f).is_ok())).collect()
}

/// The architectures this build of libseccomp knows (`features`' archs).
pub fn supported_arches() -> Vec<&'static str> {
    ARCHES.iter().copied().filter(|a| a.parse::<Arch>().is_ok_and(|a| arch_known(arch(a)))).collect()
}

impl Filter {
    /// Compiles `cfg`. Errors name the field at fault.
    pub fn build(cfg: &LinuxSeccomp) -> Result<Filter, SeccompError> {
        let default = cfg.default_action();
        if default == Action::ScmpActNotify {
            return Err(invalid("linux.seccomp.defaultAction", "SCMP_ACT_NOTIFY cannot be the default action"));
        }
        let default = action(default, cfg.default_errno_ret(), "linux.seccomp.defaultErrnoRet")?;
        if cfg.listener_metadata().as_ref().is_some_and(|m| !m.is_empty())
            && cfg.listener_path().as_ref().is_none_or(|p| p.as_os_str().is_empty())
        {
            return Err(invalid("linux.seccomp.listenerMetadata", "must not be set without listenerPath"));
        }
        let default_action = default;
        let mut ctx = ScmpFilterContext::new(default).map_err(lib("creating the filter"))?;
        // no_new_privs is process.noNewPrivileges' business, not the filter's (libseccomp
        // would set it on load otherwise).
        ctx.set_ctl_nnp(false).map_err(lib("clearing the no_new_privs attribute"))?;
        for (i, a) in cfg.architectures().as_deref().unwrap_or(&[]).iter().enumerate() {
            let field = format!("linux.seccomp.architectures[{i}]");
            let scmp = arch(*a);
            if let Err(e) = ctx.add_arch(scmp) {
                if !ctx.is_arch_present(scmp).unwrap_or(false) {
                    let why = if arch_known(scmp) {
                        e.to_string()
                    } else {
                        format!("unknown to libseccomp {}", lib_version())
                    };
                    return Err(invalid(field, format!("{a}: {why}")));
                }
            }
        }
        match cfg.flags() {
            Some(flags) => {
                for (i, f) in flags.iter().enumerate() {
                    set_flag(&mut ctx, *f)
                        .map_err(|e| invalid(format!("linux.seccomp.flags[{i}]"), format!("{f}: {e}")))?;
                }
            }
            None => {
                let _ = set_flag(&mut ctx, Flag::SeccompFilterFlagSpecAllow);
            }
        }
        let syscalls = cfg.syscalls().as_deref().unwrap_or(&[]);
        if syscalls.len() > 32 {
            // A binary tree of syscalls: faster for long profiles such as Docker's (runc
            // does the same; libseccomp 2.5 mishandles it for very short ones).
            let _ = ctx.set_ctl_optimize(2);
        }
        let mut notify = false;
        for (i, rule) in syscalls.iter().enumerate() {
            let field = format!("linux.seccomp.syscalls[{i}]");
            if rule.names().is_empty() {
                return Err(invalid(format!("{field}.names"), "must name at least one syscall"));
            }
            let act = action(rule.action(), rule.errno_ret(), &format!("{field}.errnoRet"))?;
            if act == ScmpAction::Notify {
                if cfg.listener_path().as_ref().is_none_or(|p| p.as_os_str().is_empty()) {
                    return Err(invalid(format!("{field}.action"), "SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath"));
                }
                if rule.names().iter().any(|n| n == INIT_SENDS_WITH) {
                    return Err(invalid(
                        format!("{field}.names"),
                        format!("SCMP_ACT_NOTIFY cannot be used for {INIT_SENDS_WITH}: berth's init sends the listener fd with it"),
                    ));
                }
                // runc refuses it (its init reports through a pipe after the filter is
                // loaded), so a profile that runc rejects is rejected here too.
                if rule.names().iter().any(|n| n == "write") {
                    return Err(invalid(
                        format!("{field}.names"),
                        "SCMP_ACT_NOTIFY cannot be used for the write syscall",
                    ));
                }
            }
            let args = rule.args().as_deref().unwrap_or(&[]);
            let conds = conditions(args, &field)?;
            // runc's rule: conditions on distinct arguments AND in one rule; if any argument
            // has several, each condition becomes a rule of its own, so they OR.
            let separate = args.iter().enumerate().any(|(j, a)| args[..j].iter().any(|b| b.index() == a.index()));
            if act == default {
                continue;
            }
            for name in rule.names() {
                let Ok(nr) = ScmpSyscall::from_name(name) else {
                    crate::log::debug(&format!("{field}: unknown seccomp syscall {name:?} ignored"));
                    continue;
                };
                notify |= act == ScmpAction::Notify;
                let added = if conds.is_empty() {
                    ctx.add_rule(act, nr).map(drop)
                } else if separate {
                    conds.iter().try_for_each(|c| ctx.add_rule_conditional(act, nr, &[*c]).map(drop))
                } else {
                    ctx.add_rule_conditional(act, nr, &conds).map(drop)
                };
                added.map_err(|e| invalid(&field, format!("syscall {name:?}: {e}")))?;
            }
        }
        let mut program = export(&ctx)?;
        // runc's rule: no stub when unknown syscalls are allowed anyway (ALLOW, LOG, TRACE:
        // a tracer handles new syscalls itself) or already get ENOSYS.
        let permissive = matches!(default_action, ScmpAction::Allow | ScmpAction::Log | ScmpAction::Trace(_));
        if !permissive && default_action != ScmpAction::Errno(libc::ENOSYS) {
            let arches: Vec<ScmpArch> =
                cfg.architectures().as_deref().unwrap_or(&[]).iter().map(|a| arch(*a)).collect();
            let names: Vec<&str> = syscalls.iter().flat_map(|r| r.names().iter().map(String::as_str)).collect();
            let mut full = enosys::stub(&arches, &names);
            full.append(&mut program);
            program = full;
        }
        if program.len() > MAX_INSNS {
            return Err(invalid(
                "linux.seccomp",
                format!(
                    "the filter compiles to {} BPF instructions, above the kernel's limit of {MAX_INSNS}",
                    program.len()
                ),
            ));
        }
        let flags = load_flags(&ctx, notify);
        // runc's debug line, by which its tests check the flags a config gives.
        crate::log::debug(&format!("seccomp filter flags: {flags}"));
        Ok(Filter { program, flags, notify })
    }

    /// Whether this filter, once loaded, certainly lets the native-arch system call `nr`
    /// with `args` through (SECCOMP_RET_ALLOW). Worked out in user space; anything the
    /// evaluator cannot follow is a no.
    pub fn allows(&self, nr: libc::c_long, args: [u64; 6]) -> bool {
        #[cfg(target_arch = "x86_64")]
        const AUDIT_ARCH: u32 = 0xc000_003e;
        #[cfg(target_arch = "aarch64")]
        const AUDIT_ARCH: u32 = 0xc000_00b7;
        let Ok(nr) = u32::try_from(nr) else { return false };
        eval::allows(&self.program, &eval::Call { nr, arch: AUDIT_ARCH, args })
    }

    /// Whether a rule notifies, so that `load` returns a listener fd.
    pub fn notifies(&self) -> bool {
        self.notify
    }

    /// Loads the filter into the calling process: one seccomp(2) call, nothing else, so
    /// that no syscall of berth's own follows it but the caller's. Without no_new_privs
    /// this needs CAP_SYS_ADMIN. Returns the notify listener when a rule uses
    /// SCMP_ACT_NOTIFY.
    pub fn load(&self) -> Result<Option<OwnedFd>, SeccompError> {
        crate::sys::seccomp_set_filter(self.flags, &self.program)
            .map_err(|e| invalid("linux.seccomp", format!("loading the filter: {e}")))
    }
}

/// The seccomp(2) flags libseccomp would load `ctx` with (its sys_filter_load): TSYNC is
/// never needed (see the module doc).
fn load_flags(ctx: &ScmpFilterContext, notify: bool) -> u32 {
    use crate::sys::{
        SECCOMP_FILTER_FLAG_LOG, SECCOMP_FILTER_FLAG_NEW_LISTENER, SECCOMP_FILTER_FLAG_SPEC_ALLOW,
        SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
    };
    let mut flags = 0;
    if ctx.get_ctl_log().unwrap_or(false) {
        flags |= SECCOMP_FILTER_FLAG_LOG;
    }
    if ctx.get_ctl_ssb().unwrap_or(false) {
        flags |= SECCOMP_FILTER_FLAG_SPEC_ALLOW;
    }
    if notify {
        flags |= SECCOMP_FILTER_FLAG_NEW_LISTENER;
        // The kernel takes it only with a listener.
        if ctx.get_ctl_waitkill().unwrap_or(false) {
            flags |= SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
        }
    }
    flags
}

/// libseccomp's BPF program for `ctx`, in the kernel's `struct sock_filter` layout.
fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>, SeccompError> {
    let io_err = |what: &str, e: io::Error| invalid("linux.seccomp", format!("{what}: {e}"));
    // A memfd, not a pipe: a large program would fill a pipe with nobody reading it.
    let fd = nix::sys::memfd::memfd_create(c"berth-seccomp-bpf", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
        .map_err(|e| io_err("memfd_create", e.into()))?;
    ctx.export_bpf(&fd).map_err(lib("exporting the BPF program"))?;
    let mut f = std::fs::File::from(fd);
    let mut bytes = Vec::new();
    f.rewind().and_then(|_| f.read_to_end(&mut bytes)).map_err(|e| io_err("reading the BPF program", e))?;
    const INSN: usize = std::mem::size_of::<libc::sock_filter>();
    if bytes.len() % INSN != 0 {
        return Err(invalid(
            "linux.seccomp",
            format!("libseccomp exported {} bytes, not whole instructions", bytes.len()),
        ));
    }
    // libseccomp writes the program in host byte order, as the kernel takes it.
    Ok(bytes
        .chunks_exact(INSN)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

fn conditions(args: &[oci_spec::runtime::LinuxSeccompArg], field: &str) -> Result<Vec<ScmpArgCompare>, SeccompError> {
    args.iter()
        .enumerate()
        .map(|(j, a)| {
            if a.index() >= MAX_ARGS {
                return Err(invalid(
                    format!("{field}.args[{j}].index"),
                    format!("{} is not below {MAX_ARGS}", a.index()),
                ));
            }
            let op = match a.op() {
                Op::ScmpCmpNe => ScmpCompareOp::NotEqual,
                Op::ScmpCmpLt => ScmpCompareOp::Less,
                Op::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
                Op::ScmpCmpEq => ScmpCompareOp::Equal,
                Op::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
                Op::ScmpCmpGt => ScmpCompareOp::Greater,
                // `value` is the mask, `valueTwo` what the masked argument must equal.
                Op::ScmpCmpMaskedEq => {
                    return Ok(ScmpArgCompare::new(
                        a.index() as u32,
                        ScmpCompareOp::MaskedEqual(a.value()),
                        a.value_two().unwrap_or(0),
                    ))
                }
            };
            Ok(ScmpArgCompare::new(a.index() as u32, op, a.value()))
        })
        .collect()
}

fn lib_version() -> String {
    libseccomp::ScmpVersion::current().map(|v| v.to_string()).unwrap_or_else(|_| "?".into())
}

/// The container process state (runtime-spec config-linux.md) sent with the listener fd.
/// `state` is the container's state JSON (as hooks get it); `pid` the process's host pid.
pub fn process_state(pid: i32, metadata: Option<&str>, state: Value) -> String {
    let mut s = json!({
        "ociVersion": crate::state::OCI_VERSION,
        "fds": ["seccompFd"],
        "pid": pid,
        "state": state,
    });
    if let Some(m) = metadata.filter(|m| !m.is_empty()) {
        s["metadata"] = json!(m);
    }
    s.to_string()
}

/// Connects to the agent at `path` (a leading `@` names an abstract socket, as in Go),
/// sends `process_state` with `fd` over SCM_RIGHTS in one sendmsg, and closes the
/// connection: one state per connection, as the spec requires.
pub fn send_to_listener(path: &Path, fd: BorrowedFd<'_>, process_state: &str) -> Result<(), SeccompError> {
    let err = |what, source| SeccompError::Listener { path: path.to_path_buf(), what, source };
    let bytes = path.as_os_str().as_encoded_bytes();
    let stream = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name).and_then(|a| UnixStream::connect_addr(&a)),
        None => UnixStream::connect(path),
    }
    // runc's phrase, which scripts written for runc look for.
    .map_err(|e| err("failed to connect with seccomp agent", e))?;
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(process_state.as_bytes())];
    let sent = sendmsg::<()>(stream.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None)
        .map_err(|e| err("sending the listener fd", e.into()))?;
    if sent < process_state.len() {
        // The fd went with the first part; the rest follows without it (the spec allows it).
        use std::io::Write;
        (&stream).write_all(&process_state.as_bytes()[sent..]).map_err(|e| err("sending the process state", e))?;
    }
    Ok(())
}

/// Hands a child's notify listener to the agent at `linux.seccomp.listenerPath`, with the
/// container process state: `state` is the container's (as hooks get it), `pid` the
/// process's host pid.
pub(crate) fn send_listener(
    seccomp: Option<&LinuxSeccomp>,
    listener: BorrowedFd<'_>,
    pid: i32,
    state: &str,
) -> Result<(), SeccompError> {
    let path = seccomp
        .and_then(|s| s.listener_path().as_ref())
        .ok_or_else(|| invalid("linux.seccomp.listenerPath", "must be set for SCMP_ACT_NOTIFY"))?;
    let state: Value = serde_json::from_str(state).map_err(SeccompError::ProcessState)?;
    let metadata = seccomp.and_then(|s| s.listener_metadata().as_deref());
    let process_state = process_state(pid, metadata, state);
    crate::log::debug(&format!("sending the seccomp listener to {}", path.display()));
    send_to_listener(path, listener, &process_state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> LinuxSeccomp {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn unknown_names_are_errors_naming_the_field() {
        let e = check_names(&json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["getpid"], "action": "SCMP_ACT_FOO"}]}))
        .unwrap_err();
        assert_eq!(e.to_string(), "linux.seccomp.syscalls[1].action: unknown action \"SCMP_ACT_FOO\"");
        let e = check_names(
            &json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86", "SCMP_ARCH_Z80"]}),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "linux.seccomp.architectures[1]: unknown architecture \"SCMP_ARCH_Z80\"");
        let e = check_names(&json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_NOPE"]}))
            .unwrap_err();
        assert_eq!(e.to_string(), "linux.seccomp.flags[0]: unknown flag \"SECCOMP_FILTER_FLAG_NOPE\"");
        let e = check_names(&json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_XX"}]}]}))
        .unwrap_err();
        assert_eq!(e.to_string(), "linux.seccomp.syscalls[0].args[0].op: unknown operator \"SCMP_CMP_XX\"");
        let e = check_names(&json!({"defaultAction": "KILL"})).unwrap_err();
        assert_eq!(e.to_string(), "linux.seccomp.defaultAction: unknown action \"KILL\"");
    }

    #[test]
    fn the_user_space_evaluation_answers_as_the_profile_says() {
        let madvise = |advice: u64| (libc::SYS_madvise, [0x7f00_0000_0000, 4096, advice, 0, 0, 0]);
        let cases = [
            // (profile, call, allowed)
            (json!({"defaultAction": "SCMP_ACT_ALLOW"}), madvise(4), true),
            (json!({"defaultAction": "SCMP_ACT_ERRNO"}), madvise(4), false),
            (json!({"defaultAction": "SCMP_ACT_LOG"}), madvise(4), false),
            (
                json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["madvise"], "action": "SCMP_ACT_ALLOW"}]}),
                madvise(4),
                true,
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["madvise"], "action": "SCMP_ACT_KILL"}]}),
                madvise(4),
                false,
            ),
            // Argument conditions, 64-bit compares as libseccomp emits them (two words).
            (
                json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["madvise"], "action": "SCMP_ACT_ALLOW",
                    "args": [{"index": 2, "value": 4, "op": "SCMP_CMP_EQ"}]}]}),
                madvise(4),
                true,
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["madvise"], "action": "SCMP_ACT_ALLOW",
                    "args": [{"index": 2, "value": 4, "op": "SCMP_CMP_EQ"}]}]}),
                madvise(3),
                false,
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["madvise"], "action": "SCMP_ACT_ERRNO",
                    "args": [{"index": 0, "value": 0x7f00_0000_0000u64, "op": "SCMP_CMP_GE"}]}]}),
                madvise(4),
                false,
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["madvise"], "action": "SCMP_ACT_ERRNO",
                    "args": [{"index": 1, "value": 0xf000, "valueTwo": 0x1000, "op": "SCMP_CMP_MASKED_EQ"}]}]}),
                madvise(4),
                false,
            ),
            // Another call's rule does not matter; a long (binary tree) profile still answers.
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}),
                madvise(4),
                true,
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": [
                    "read", "write", "openat", "close", "fstat", "mmap", "mprotect", "munmap", "brk", "rt_sigaction",
                    "rt_sigprocmask", "ioctl", "pread64", "pwrite64", "readv", "writev", "access", "pipe", "select",
                    "sched_yield", "mremap", "msync", "mincore", "madvise", "shmget", "shmat", "shmctl", "dup", "dup2",
                    "pause", "nanosleep", "getitimer", "alarm", "setitimer", "getpid", "sendfile", "socket", "connect"],
                    "action": "SCMP_ACT_ALLOW"}]}),
                madvise(4),
                true,
            ),
        ];
        for (i, (profile, (nr, args), want)) in cases.into_iter().enumerate() {
            let f = Filter::build(&parse(profile.clone())).unwrap();
            assert_eq!(f.allows(nr, args), want, "case {i}: {profile}");
        }
    }

    #[test]
    fn every_spec_name_decodes() {
        for a in ACTIONS {
            assert!(a.parse::<Action>().is_ok(), "{a}");
        }
        for a in ARCHES {
            assert!(a.parse::<Arch>().is_ok(), "{a}");
        }
        for f in FLAGS {
            assert!(flag_of(f).is_some(), "{f}");
        }
        for o in OPERATORS {
            assert!(o.parse::<Op>().is_ok(), "{o}");
        }
    }

    #[test]
    fn profile_mistakes_are_errors_naming_the_field() {
        let cases = [
            (json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/x"}), "linux.seccomp.defaultAction"),
            (json!({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1}), "linux.seccomp.defaultErrnoRet"),
            (json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}), "linux.seccomp.defaultErrnoRet"),
            (json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "m"}), "linux.seccomp.listenerMetadata"),
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]}),
                "linux.seccomp.syscalls[0].names",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_KILL", "errnoRet": 1}]}),
                "linux.seccomp.syscalls[0].errnoRet",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
                "linux.seccomp.syscalls[0].action",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x",
                    "syscalls": [{"names": ["sendmsg"], "action": "SCMP_ACT_NOTIFY"}]}),
                "linux.seccomp.syscalls[0].names",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x",
                    "syscalls": [{"names": ["mkdir", "write"], "action": "SCMP_ACT_NOTIFY"}]}),
                "linux.seccomp.syscalls[0].names",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}]}),
                "linux.seccomp.syscalls[0].args[0].index",
            ),
        ];
        for (cfg, field) in cases {
            let e = Filter::build(&parse(cfg.clone())).unwrap_err().to_string();
            assert!(e.starts_with(&format!("{field}: ")), "{cfg}: {e}");
        }
    }

    #[test]
    fn unknown_syscalls_are_skipped_and_notify_is_noticed() {
        let f = Filter::build(&parse(json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x", "syscalls": [
            {"names": ["no_such_syscall", "mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5},
            {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]},
            {"names": ["mkdirat"], "action": "SCMP_ACT_NOTIFY"}]})))
        .unwrap();
        assert!(f.notifies());
        let f = Filter::build(&parse(json!({"defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG"],
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]})))
        .unwrap();
        assert!(!f.notifies());
    }

    #[test]
    fn the_enosys_stub_leads_unless_the_default_action_is_permissive() {
        let profile = |default: &str| {
            parse(
                json!({"defaultAction": default, "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]}),
            )
        };
        let errno = Filter::build(&profile("SCMP_ACT_ERRNO")).unwrap();
        let log = Filter::build(&profile("SCMP_ACT_LOG")).unwrap();
        // The stub starts by loading seccomp_data.arch (offset 4); libseccomp's program too,
        // so compare lengths: the stub adds instructions in front of the same program.
        assert!(errno.program.len() > log.program.len(), "{} vs {}", errno.program.len(), log.program.len());
        assert_eq!((errno.program[0].code, errno.program[0].k), (0x20, 4));
        let enosys = Filter::build(&parse(json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": libc::ENOSYS,
            "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]})))
        .unwrap();
        assert_eq!(enosys.program.len(), log.program.len());
    }

    #[test]
    fn process_state_has_the_spec_fields() {
        let s: Value = serde_json::from_str(&process_state(42, Some("meta"), json!({"id": "c"}))).unwrap();
        assert_eq!(s["fds"], json!(["seccompFd"]));
        assert_eq!(s["pid"], 42);
        assert_eq!(s["metadata"], "meta");
        assert_eq!(s["state"]["id"], "c");
        let s: Value = serde_json::from_str(&process_state(1, None, json!({}))).unwrap();
        assert!(s.get("metadata").is_none());
    }
}
