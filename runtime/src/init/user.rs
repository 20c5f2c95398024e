//! rlimits, the owner of the stdio, and the uid/gid switch of the container process.

use oci_spec::runtime::{PosixRlimitType, Process};

use super::error::{applying, doing, InitError};

pub fn set_rlimits(process: &Process) -> Result<(), InitError> {
    for (i, rl) in process.rlimits().as_deref().unwrap_or(&[]).iter().enumerate() {
        let res = resource(rl.typ());
        nix::sys::resource::setrlimit(res, rl.soft(), rl.hard()).map_err(std::io::Error::from).map_err(
            applying(format!("process.rlimits[{i}] ({:?} soft {} hard {})", rl.typ(), rl.soft(), rl.hard())).io(),
        )?;
    }
    Ok(())
}

fn resource(t: PosixRlimitType) -> nix::sys::resource::Resource {
    use nix::sys::resource::Resource;
    match t {
        PosixRlimitType::RlimitCpu => Resource::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => Resource::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => Resource::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => Resource::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => Resource::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => Resource::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => Resource::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => Resource::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => Resource::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => Resource::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => Resource::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => Resource::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => Resource::RLIMIT_RTTIME,
    }
}

/// Hands fds 0-2 to `uid` (the owner only: a devpts mount may set the group), so a process
/// that is not root can reopen /dev/stdout or use its terminal: runc's fixStdioPermissions.
/// A character device is handed over only when it is the pty made for this process
/// (`own_pty`): one inherited from the caller is the caller's terminal (or /dev/null), and a
/// container uid owning it could read it and push input into it (TIOCSTI); runc interposes
/// pipes in the foreground for the same effect, berth passes its stdio straight through.
/// Also left alone: an fd that is `uid`'s already, and what may not be changed here
/// (EINVAL: `uid` is not mapped in our user namespace; EPERM: the fd's owner is not; EROFS)
/// — the process runs without it.
pub fn chown_stdio(uid: u32, own_pty: bool) -> Result<(), InitError> {
    use nix::errno::Errno;
    use std::os::fd::AsFd;
    let null = libc::makedev(1, 3);
    let (stdin, stdout, stderr) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
    for (n, fd) in [(0, stdin.as_fd()), (1, stdout.as_fd()), (2, stderr.as_fd())] {
        let st = match nix::sys::stat::fstat(fd) {
            Ok(st) => st,
            // Closed: nothing to hand over (the CLI fills 0-2, but a caller may not).
            Err(Errno::EBADF) => continue,
            Err(e) => return Err(doing(format!("fstat of stdio fd {n}")).errno()(e)),
        };
        let chr = st.st_mode & libc::S_IFMT == libc::S_IFCHR;
        if st.st_uid == uid || (chr && (!own_pty || st.st_rdev == null)) {
            continue;
        }
        match nix::unistd::fchown(fd, Some(nix::unistd::Uid::from_raw(uid)), None) {
            Ok(()) | Err(Errno::EINVAL | Errno::EPERM | Errno::EROFS) => {}
            Err(e) => {
                return Err(
                    applying(format!("process.user.uid {uid}")).doing(format!("chown of stdio fd {n}")).errno()(e),
                )
            }
        }
    }
    Ok(())
}

/// The groups half of the user switch: setgroups, setresgid, umask. It keeps every
/// capability, so it runs before a filter that needs CAP_SYS_ADMIN to load.
pub fn switch_groups(process: &Process) -> Result<(), InitError> {
    let user = process.user();
    let groups: Vec<libc::gid_t> = user.additional_gids().clone().unwrap_or_default();
    let gids: Vec<nix::unistd::Gid> = groups.iter().map(|g| nix::unistd::Gid::from_raw(*g)).collect();
    // A user namespace whose setgroups is denied (mapped without CAP_SETGID) keeps the
    // groups it has; only asking for groups is then an error.
    let denied = std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny");
    if !(denied && groups.is_empty()) {
        nix::unistd::setgroups(&gids)
            .map_err(std::io::Error::from)
            .map_err(applying(format!("process.user.additionalGids {groups:?}")).io())?;
    }
    let gid = user.gid();
    let g = nix::unistd::Gid::from_raw(gid);
    nix::unistd::setresgid(g, g, g)
        .map_err(std::io::Error::from)
        .map_err(applying(format!("process.user.gid {gid}")).io())?;
    let umask = user.umask().unwrap_or(0o022);
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(umask as libc::mode_t));
    Ok(())
}

/// setresuid with PR_SET_KEEPCAPS so the permitted set survives the switch to a non-root
/// uid; capabilities are set right after.
pub fn switch_uid(process: &Process) -> Result<(), InitError> {
    crate::sys::set_keepcaps(true).map_err(doing("prctl(PR_SET_KEEPCAPS)").io())?;
    let uid = process.user().uid();
    let u = nix::unistd::Uid::from_raw(uid);
    nix::unistd::setresuid(u, u, u)
        .map_err(std::io::Error::from)
        .map_err(applying(format!("process.user.uid {uid}")).io())?;
    crate::sys::set_keepcaps(false).map_err(doing("prctl(PR_SET_KEEPCAPS)").io())
}
