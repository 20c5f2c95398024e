//! The first step of a two-step init (`Plan::staged`): runc's order for user and time
//! namespaces. This process joins namespaces by path (user first), unshares a new user
//! namespace alone and has the parent write its id maps, becomes root in it, unshares the
//! other new namespaces (owned by the new user namespace), writes the time offsets of a
//! new time namespace before anything enters it, and forks the real init with
//! CLONE_PARENT so that it is `berth create`'s child. Returns in that init; this process
//! exits.

use nix::sched::CloneFlags;
use nix::unistd::{setresgid, setresuid, Gid, Uid};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::error::{applying, doing, InitError};
use super::Res;
use crate::namespaces::Plan;
use crate::process::channel::{Channel, Msg};
use crate::sys::{self, Forked};

pub fn enter(spec: &Spec, plan: &Plan, channel: &Channel) -> Res<()> {
    let new_time = plan.unshare_flags.contains(crate::namespaces::clone_flag(LinuxNamespaceType::Time));
    // Opened now, with the runtime's credentials: once this process is root of a new user
    // namespace its /proc files still belong to the host's root, which that root may not
    // open for writing. The write is checked against the opener (CAP_SYS_TIME over the new
    // time namespace's owner, which the runtime has) and finds the namespace that exists then.
    let offsets = if new_time { time_offsets_file(spec)? } else { None };
    crate::namespaces::join(plan)?;
    if plan.new_user {
        // A rootless parent cannot open the map files of a non-dumpable child: dumpable
        // until the maps are written, as runc does.
        dumpable_if_rootless("the id maps", || {
            nix::sched::unshare(CloneFlags::CLONE_NEWUSER).map_err(doing("unshare user namespace").errno())?;
            channel.send(&Msg::MapsPending).map_err(InitError::sync_failed)?;
            match channel.recv() {
                Ok(Some(Msg::MapsDone)) => Ok(()),
                _ => super::unsafe_exit(1),
            }
        })?;
    }
    if plan.in_user_ns() {
        // Root inside is the id certain to be mapped (validation checked it for a new
        // namespace); our host uid 0 is not, and files made as an unmapped id fail.
        setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
            .map_err(applying("linux.gidMappings").doing("becoming gid 0 in the user namespace").errno())?;
        setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
            .map_err(applying("linux.uidMappings").doing("becoming uid 0 in the user namespace").errno())?;
        // A credential change resets dumpability to fs.suid_dumpable: set it again.
        sys::set_non_dumpable().map_err(doing("prctl(PR_SET_DUMPABLE)").io())?;
    }
    if !plan.unshare_flags.is_empty() {
        nix::sched::unshare(plan.unshare_flags).map_err(doing("unshare namespaces").errno())?;
    }
    if let Some((file, text)) = offsets {
        write_time_offsets(file, &text)?;
    }
    match sys::clone3_fork(sys::CLONE_PARENT, None).map_err(doing("forking the init").io())? {
        Forked::Child => Ok(()),
        Forked::Parent { pid, .. } => {
            let _ = channel.send(&Msg::Child { pid });
            super::unsafe_exit(0)
        }
    }
}

/// runtime-spec: `linux.timeOffsets` keys are the clocks (`monotonic`, `boottime`). Our own
/// timens_offsets file, which describes the namespace our children will enter, and what
/// to write there; `None` without offsets.
fn time_offsets_file(spec: &Spec) -> Res<Option<(std::fs::File, String)>> {
    let Some(offsets) = spec.linux().as_ref().and_then(|l| l.time_offsets().as_ref()) else { return Ok(None) };
    let mut text = String::new();
    let mut clocks: Vec<&String> = offsets.keys().collect();
    clocks.sort();
    for clock in clocks {
        let o = &offsets[clock];
        text.push_str(&format!("{clock} {} {}\n", o.secs().unwrap_or(0), o.nanosecs().unwrap_or(0)));
    }
    let rel = format!("{}/timens_offsets", std::process::id());
    // Dumpable for the open only, still in the runtime's own namespaces.
    let fd = dumpable_if_rootless("the time offsets", || {
        crate::rootfs::resolve::open_proc_beneath(std::path::Path::new(&rel), nix::fcntl::OFlag::O_WRONLY)
            .map_err(applying("linux.timeOffsets").doing(format!("opening /proc/{rel}")).errno())
    })?;
    Ok(Some((std::fs::File::from(fd), text)))
}

/// Runs `f` dumpable when rootless, non-dumpable again afterwards, whatever `f` returned.
/// /proc gives a non-dumpable process's files to the host's root, which the rootless
/// runtime's user may not open. The only other process that may ptrace this one meanwhile
/// is the same user's.
fn dumpable_if_rootless<T>(what: &'static str, f: impl FnOnce() -> Res<T>) -> Res<T> {
    if !crate::rootless::active() {
        return f();
    }
    sys::set_dumpable().map_err(doing(format!("prctl(PR_SET_DUMPABLE) for {what}")).io())?;
    let result = f();
    sys::set_non_dumpable().map_err(doing("prctl(PR_SET_DUMPABLE)").io())?;
    result
}

/// Written after the unshare and before anything enters the new time namespace (the
/// kernel freezes the offsets then).
fn write_time_offsets(mut file: std::fs::File, text: &str) -> Res<()> {
    std::io::Write::write_all(&mut file, text.as_bytes())
        .map_err(applying("linux.timeOffsets").doing("writing timens_offsets").io())
}
