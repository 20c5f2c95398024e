//! rlimits and the uid/gid switch of the container process.

use oci_spec::runtime::{PosixRlimitType, Process};

pub fn set_rlimits(process: &Process) -> Result<(), String> {
    for (i, rl) in process.rlimits().as_deref().unwrap_or(&[]).iter().enumerate() {
        let res = resource(rl.typ());
        let lim = libc::rlimit { rlim_cur: rl.soft(), rlim_max: rl.hard() };
        // SAFETY: setrlimit with a valid resource number and rlimit struct.
        if unsafe { libc::setrlimit(res, &lim) } < 0 {
            return Err(format!(
                "process.rlimits[{i}] ({:?} soft {} hard {}): {}",
                rl.typ(),
                rl.soft(),
                rl.hard(),
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

fn resource(t: PosixRlimitType) -> libc::__rlimit_resource_t {
    match t {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

/// The groups half of the user switch: setgroups, setresgid, umask. It keeps every
/// capability, so it runs before a filter that needs CAP_SYS_ADMIN to load.
pub fn switch_groups(process: &Process) -> Result<(), String> {
    let user = process.user();
    let groups: Vec<libc::gid_t> = user.additional_gids().clone().unwrap_or_default();
    // A user namespace whose setgroups is denied (mapped without CAP_SETGID) keeps the
    // groups it has; only asking for groups is then an error.
    let denied = std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny");
    // SAFETY: the pointer and length describe a valid gid array.
    if !(denied && groups.is_empty()) && unsafe { libc::setgroups(groups.len(), groups.as_ptr()) } < 0 {
        return Err(format!("process.user.additionalGids {groups:?}: {}", std::io::Error::last_os_error()));
    }
    let gid = user.gid();
    // SAFETY: plain syscall with integer arguments.
    if unsafe { libc::setresgid(gid, gid, gid) } < 0 {
        return Err(format!("process.user.gid {gid}: {}", std::io::Error::last_os_error()));
    }
    let umask = user.umask().unwrap_or(0o022);
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(umask as libc::mode_t));
    Ok(())
}

/// setresuid with PR_SET_KEEPCAPS so the permitted set survives the switch to a non-root
/// uid; capabilities are set right after.
pub fn switch_uid(process: &Process) -> Result<(), String> {
    crate::sys::set_keepcaps(true).map_err(|e| format!("prctl(PR_SET_KEEPCAPS): {e}"))?;
    let uid = process.user().uid();
    // SAFETY: plain syscall with integer arguments.
    if unsafe { libc::setresuid(uid, uid, uid) } < 0 {
        return Err(format!("process.user.uid {uid}: {}", std::io::Error::last_os_error()));
    }
    crate::sys::set_keepcaps(false).map_err(|e| format!("prctl(PR_SET_KEEPCAPS): {e}"))
}
