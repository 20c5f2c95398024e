//! `exec`: another process inside an existing container, as runc's `exec`.
//!
//! berth forks the process straight into the container's pid namespace (its own
//! pid_for_children is pointed there around the fork) and cgroup (clone3 CLONE_INTO_CGROUP
//! on v2; on v1 the child moves itself into each hierarchy before it goes on), as `create` forks its init
//! (`process::spawn`), and drives the same handshake (`process::handshake`). The child
//! joins every other namespace of the init in one setns(pidfd), gets a terminal if asked,
//! and then the same process attributes as the init (init::process_setup::apply). berth stays
//! the parent: it reports an execve failure, writes --pid-file, and in the foreground waits
//! and forwards signals. The binary runs from a read-only view of itself (sealed.rs), so
//! the process cannot reach it through /proc/<pid>/exe (CVE-2019-5736).

use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use nix::sched::CloneFlags;
use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities, LinuxSeccomp, Process};

use crate::error::{Error, Result};
use crate::init::error::{applying, doing, InitError};
use crate::process::channel::{self, Channel, Msg};
use crate::process::handshake::{Handshake, Requests};
use crate::process::spawn::{spawn, GuardedChild, PidNs, Placement, Spawned, Target};
use crate::state::{Record, Status, Store};
use crate::{process, sys};

/// What to run: runc's `--process process.json`, or the container's own process with the
/// command line's changes.
pub enum ProcessSource {
    File(PathBuf),
    Args(Overrides),
}

/// The changes `exec <id> <cmd>...` makes to the container's `process`. The command, its
/// cwd and environment are bytes, as they came on berth's command line.
#[derive(Default, Debug, Clone)]
pub struct Overrides {
    pub args: Vec<OsString>,
    pub tty: bool,
    pub cwd: Option<OsString>,
    pub env: Vec<OsString>,
    /// `uid[:gid]`, numeric.
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    /// Added to the bounding, effective, permitted and ambient sets; never inheritable
    /// (CVE-2022-29162).
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    pub apparmor: Option<String>,
    pub process_label: Option<String>,
}

pub struct ExecOpts {
    pub id: String,
    pub source: ProcessSource,
    /// A connected --console-socket.
    pub console: Option<OwnedFd>,
    /// A connected --pidfd-socket, which gets a pidfd of the process (runc's message:
    /// "setns").
    pub pidfd_socket: Option<OwnedFd>,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
    pub ignore_paused: bool,
    /// --cgroup values: a sub-cgroup of the container's to run in.
    pub cgroup: Vec<String>,
}

/// The running process, as berth (its parent) sees it.
pub struct Execed {
    pub pid: i32,
    pub pidfd: OwnedFd,
    /// The terminal's master when berth itself holds it (--tty in the foreground).
    pub master: Option<OwnedFd>,
}

/// Parses `--user uid[:gid]`: decimal numbers only, so no typo can silently become uid 0
/// (CVE-2026-30892).
pub fn parse_user(s: &str) -> std::result::Result<(u32, Option<u32>), String> {
    let num = |part: &str, what: &str| -> std::result::Result<u32, String> {
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("--user {s:?}: the {what} must be a decimal number (uid[:gid])"));
        }
        part.parse::<u32>().map_err(|_| format!("--user {s:?}: the {what} is out of range"))
    };
    match s.split_once(':') {
        Some((u, g)) => Ok((num(u, "uid")?, Some(num(g, "gid")?))),
        None => Ok((num(s, "uid")?, None)),
    }
}

fn capability(name: &str) -> std::result::Result<Capability, String> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") { upper } else { format!("CAP_{upper}") };
    caps::Capability::from_str(&full).map_err(|_| format!("--cap {name:?}: unknown capability"))?;
    serde_json::from_value(serde_json::Value::String(full)).map_err(|_| format!("--cap {name:?}: unknown capability"))
}

/// Sets `KEY=value` entries, a later one replacing an earlier one with the same key.
fn merge_env(env: &mut Vec<OsString>, extra: &[OsString]) {
    let key = |kv: &OsString| kv.as_bytes().split(|b| *b == b'=').next().unwrap_or(b"").to_vec();
    for kv in extra {
        match env.iter_mut().find(|e| key(e) == key(kv)) {
            Some(slot) => *slot = kv.clone(),
            None => env.push(kv.clone()),
        }
    }
}

/// What execve gets for `exec <id> <cmd>...`: the command line's bytes, and the container's
/// environment with the command line's entries.
pub fn command(base: &Process, o: &Overrides) -> crate::init::execve::Command {
    let mut env = crate::init::execve::Command::of(base).env;
    merge_env(&mut env, &o.env);
    crate::init::execve::Command { args: o.args.clone(), env }
}

fn lossy(v: &[OsString]) -> Vec<String> {
    v.iter().map(|s| s.to_string_lossy().into_owned()).collect()
}

/// The container's process with the command line's changes, as runc's `exec` builds it.
pub fn build_process(base: &Process, o: &Overrides) -> std::result::Result<Process, String> {
    let mut p = base.clone();
    // The strings (for validation and the process state) lose bytes that are not UTF-8;
    // execve gets the bytes themselves (`command`).
    let cmd = command(base, o);
    p.set_args(Some(lossy(&cmd.args)));
    p.set_terminal(Some(o.tty));
    p.set_console_size(None);
    if let Some(cwd) = o.cwd.as_deref().filter(|c| !c.is_empty()) {
        p.set_cwd(PathBuf::from(cwd));
    }
    p.set_env(Some(lossy(&cmd.env)));
    let mut user = p.user().clone();
    if let Some(u) = o.user.as_deref().filter(|u| !u.is_empty()) {
        let (uid, gid) = parse_user(u)?;
        user.set_uid(uid);
        if let Some(g) = gid {
            user.set_gid(g);
        }
    }
    if !o.additional_gids.is_empty() {
        let mut gids = user.additional_gids().clone().unwrap_or_default();
        gids.extend(&o.additional_gids);
        user.set_additional_gids(Some(gids));
    }
    p.set_user(user);
    if !o.caps.is_empty() {
        let mut c: LinuxCapabilities = p.capabilities().clone().unwrap_or_default();
        let add = |set: &Option<Capabilities>, extra: &[Capability]| -> Option<Capabilities> {
            let mut s = set.clone().unwrap_or_default();
            s.extend(extra.iter().copied());
            Some(s)
        };
        let extra: Vec<Capability> = o.caps.iter().map(|n| capability(n)).collect::<std::result::Result<_, _>>()?;
        c.set_bounding(add(c.bounding(), &extra));
        c.set_effective(add(c.effective(), &extra));
        c.set_permitted(add(c.permitted(), &extra));
        c.set_ambient(add(c.ambient(), &extra));
        p.set_capabilities(Some(c));
    }
    if o.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(a) = &o.apparmor {
        p.set_apparmor_profile(Some(a.clone()));
    }
    if let Some(l) = &o.process_label {
        p.set_selinux_label(Some(l.clone()));
    }
    Ok(p)
}

/// Reads runc's `--process` file: an OCI `process` object. Without `user` the process
/// runs as 0:0, not as the container's user (runc decodes into a zero-valued struct).
pub fn load_process(path: &Path) -> Result<Process> {
    let bad = |e: &dyn std::fmt::Display| Error::Usage(format!("--process {}: {e}", path.display()));
    let data = std::fs::read(path).map_err(|e| bad(&e))?;
    let mut value: serde_json::Value = serde_json::from_slice(&data).map_err(|e| bad(&e))?;
    if let Some(obj) = value.as_object_mut() {
        obj.entry("user").or_insert_with(|| serde_json::json!({"uid": 0, "gid": 0}));
    }
    crate::spec::accept_spec_scheduler_flags(&mut value);
    serde_json::from_value(value).map_err(|e| bad(&e))
}

fn validate(p: &Process) -> std::result::Result<(), String> {
    if p.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err("process.args: the command to execute must not be empty".into());
    }
    if !p.cwd().is_absolute() {
        return Err(format!("process.cwd {:?}: must be an absolute path", p.cwd()));
    }
    crate::kernel_attrs::validate_cpu_affinity(p).map_err(|(field, why)| format!("{field}: {why}"))?;
    crate::lsm::check(p.apparmor_profile(), p.selinux_label(), &None).map_err(|(field, why)| {
        let flag = if field == "process.apparmorProfile" { "--apparmor" } else { "--process-label" };
        format!("{field} ({flag}): {why}")
    })
}

pub fn exec(store: &Store, opts: ExecOpts) -> Result<Execed> {
    crate::id::validate(&opts.id)?;
    let id = opts.id.as_str();
    let rec = store.load(id)?;
    match store.status(&rec) {
        Status::Stopped => {
            return Err(Error::WrongState {
                id: id.into(),
                status: Status::Stopped,
                msg: "cannot exec in a stopped container",
            })
        }
        Status::Creating => {
            return Err(Error::WrongState {
                id: id.into(),
                status: Status::Creating,
                msg: "it has no process to join yet",
            })
        }
        _ => {}
    }
    // The process joins this cgroup: it must be the one holding the init.
    let cgroup = crate::recorded_cgroup::trusted(&rec, true)?;
    if !opts.ignore_paused && cgroup.is_frozen().unwrap_or(false) {
        return Err(Error::WrongState {
            id: id.into(),
            status: Status::Paused,
            msg: "cannot exec in a paused container (use --ignore-paused to override)",
        });
    }
    // What create recorded, not the bundle's config.json: edits made to it after create
    // have no effect (runtime-spec; runc keeps its own copy too). Only a record of an older
    // berth, which lacks them, sends us to the bundle.
    let (base, seccomp_cfg, personality) = match &rec.process {
        Some(p) => (p.clone(), rec.seccomp.clone(), rec.personality.clone()),
        None => {
            let spec = crate::spec::load(&rec.bundle)?.spec;
            let seccomp = spec.linux().as_ref().and_then(|l| l.seccomp().clone());
            let personality = spec.linux().as_ref().and_then(|l| l.personality().clone());
            (spec.process().clone().unwrap_or_default(), seccomp, personality)
        }
    };
    // The container's filter binds every process in it (as with runc): compiled here, before
    // the fork, loaded by the child in init::process_setup::apply.
    let seccomp = seccomp_cfg.as_ref().map(crate::seccomp::Filter::build).transpose()?;
    let (mut process, raw) = match &opts.source {
        ProcessSource::File(p) => (load_process(p)?, None),
        ProcessSource::Args(o) => (build_process(&base, o).map_err(Error::Usage)?, Some(command(&base, o))),
    };
    // Like runc: without rlimits of its own the process gets the container's.
    if process.rlimits().as_ref().is_none_or(|r| r.is_empty()) {
        process.set_rlimits(base.rlimits().clone());
    }
    // And the config's execCPUAffinity (runc's: the process's own wins).
    if process.exec_cpu_affinity().is_none() {
        process.set_exec_cpu_affinity(base.exec_cpu_affinity().clone());
    }
    // And the container's AppArmor profile and SELinux label unless it names its own
    // (runc's newInitConfig), so a process.json cannot leave them off by omission.
    if process.apparmor_profile().as_ref().is_none_or(|a| a.is_empty()) {
        process.set_apparmor_profile(base.apparmor_profile().clone());
    }
    if process.selinux_label().as_ref().is_none_or(|l| l.is_empty()) {
        process.set_selinux_label(base.selinux_label().clone());
    }
    validate(&process).map_err(Error::Usage)?;
    let terminal = process.terminal().unwrap_or(false);
    if opts.detach && terminal && opts.console.is_none() {
        return Err(Error::Usage(
            "--tty: cannot allocate a tty if berth will detach without setting --console-socket".into(),
        ));
    }
    if opts.console.is_some() && (!opts.detach || !terminal) {
        return Err(Error::Usage(
            "--console-socket: cannot use a console socket if berth will not detach or allocate a tty".into(),
        ));
    }

    // The pidfd pins the init: check it is still the container's before joining it.
    let init = sys::pidfd_open(rec.pid).map_err(|e| Error::io(format!("container \"{id}\": pidfd_open"), e))?;
    if !sys::process_alive(rec.pid, rec.init_start_time) {
        return Err(Error::WrongState {
            id: id.into(),
            status: Status::Stopped,
            msg: "cannot exec in a stopped container",
        });
    }
    let ns = crate::namespaces::differing_from_self(rec.pid)
        .map_err(|e| Error::io(format!("container \"{id}\": reading the init's namespaces"), e))?;
    let placement = Placement::of(&*cgroup, &opts.cgroup)?;
    let (own_console, console) = match opts.console {
        Some(c) => (None, Some(c)),
        None if terminal => {
            use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
            let (mine, theirs) = socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC)
                .map_err(|e| Error::io("socketpair", e.into()))?;
            (Some(mine), Some(theirs))
        }
        None => (None, None),
    };
    // A container without a mount namespace of its own runs chrooted in ours: the new
    // process goes into the init's root too (runc's exec would leave it in the host's /).
    let root = if rec.rootfs_mount.is_some() && !ns.contains(CloneFlags::CLONE_NEWNS) {
        let fd = nix::fcntl::open(
            format!("/proc/{}/root", rec.pid).as_str(),
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| Error::io(format!("container \"{id}\": opening the init's root"), e.into()))?;
        Some(fd)
    } else {
        None
    };
    // Rootless, berth may not point its own pid_for_children into a pid namespace of the
    // container's user namespace (that takes CAP_SYS_ADMIN in berth's own), nor back to
    // its own pid namespace afterwards when that belongs to a user namespace above berth's
    // (podman's: berth is root in podman's user namespace, the host's pid namespace is
    // not). The child then joins the container's namespaces and forks the process into
    // them with CLONE_PARENT, as create's two-step init does (and runc's nsexec), and berth's
    // own pid_for_children never changes.
    let staged = crate::rootless::active() && ns.contains(CloneFlags::CLONE_NEWPID);
    let (parent_ch, child_ch) = channel::pair().map_err(|e| Error::io("socketpair", e))?;
    crate::failpoint::hit("exec:prepared");
    let target = Target {
        new_namespaces: CloneFlags::empty(),
        pid_ns: if ns.contains(CloneFlags::CLONE_NEWPID) && !staged {
            PidNs::Of { pidfd: init.as_fd(), id }
        } else {
            PidNs::Ours
        },
        cgroup: placement,
        initial_cpus: process.exec_cpu_affinity().as_ref().and_then(|a| a.initial().as_deref()),
        oom_score_adj: process.oom_score_adj().or(base.oom_score_adj()),
    };
    let guarded = match spawn(target, &process::EXEC, &child_ch)? {
        Spawned::Child => {
            drop(parent_ch);
            let own_terminal = own_console.is_some();
            drop(own_console);
            child(Child {
                id,
                channel: child_ch,
                init,
                join: if staged { ns } else { ns - CloneFlags::CLONE_NEWPID },
                staged,
                root,
                process: &process,
                command: raw.as_ref(),
                console,
                own_terminal,
                preserve_fds: opts.preserve_fds,
                seccomp: seccomp.as_ref(),
                personality: personality.as_ref(),
            })
        }
        Spawned::Parent(guarded) => guarded,
    };
    drop(child_ch);
    drop(console);
    let mut handshake = Handshake::new(parent_ch, guarded, id, &process::EXEC);
    handshake.go(String::new())?;
    // The terminal was sent before `Ready`, so it waits in the socket. Taken only after the
    // set-up is served: a staged child forks the process and waits for the second `Go`
    // before the process makes the terminal.
    handshake.serve(&mut ProcessRequests { rec: &rec, seccomp: seccomp_cfg.as_ref(), staged })?;
    let master = match &own_console {
        Some(sock) => Some(crate::console::recv_fd(sock.as_fd()).map_err(|e| Error::io("receiving the terminal", e))?),
        None => None,
    };
    handshake.wait_exec()?;
    if let Some(sock) = &opts.pidfd_socket {
        crate::console::send_fd(sock.as_fd(), handshake.pidfd(), "setns")
            .map_err(|e| Error::io(format!("--pidfd-socket: sending the pidfd of container \"{id}\"'s process"), e))?;
    }
    let pid = handshake.pid();
    if let Some(p) = &opts.pid_file {
        crate::pid_file::write(p, pid)?;
    }
    crate::log::debug(&format!("exec {id}: process {pid} runs"));
    crate::failpoint::hit("exec:execed");
    let (pid, pidfd) = handshake.finish();
    Ok(Execed { pid, pidfd, master })
}

/// What `exec` does for its process's requests.
struct ProcessRequests<'a> {
    rec: &'a Record,
    seccomp: Option<&'a LinuxSeccomp>,
    /// The first child forks the process (rootless, see `exec`).
    staged: bool,
}

impl Requests for ProcessRequests<'_> {
    fn init_forked(&mut self, child: &mut GuardedChild, pid: i32) -> Option<Result<String>> {
        self.staged.then(|| child.hand_over(pid).map(|()| String::new()))
    }

    fn seccomp_listener(&mut self, listener: OwnedFd, pid: i32) -> Option<Result<()>> {
        // As runc: the state is the container's (running, the init's pid), the process
        // state's pid the exec'd process's.
        let rec = self.rec;
        let state = crate::hooks::state(&rec.id, Status::Running, rec.pid, &rec.bundle, &rec.annotations);
        Some(crate::seccomp::send_listener(self.seccomp, listener.as_fd(), pid, &state).map_err(Into::into))
    }
}

/// Waits for the process (our child) while forwarding signals and, with a terminal held
/// by berth, copying between it and our stdio. Returns its exit code (128+signal if killed).
pub fn wait(execed: Execed) -> Result<i32> {
    crate::foreground::wait(&execed.pidfd, execed.master).map_err(|e| Error::io("waiting for the exec'd process", e))
}

struct Child<'a> {
    id: &'a str,
    channel: Channel,
    init: OwnedFd,
    join: CloneFlags,
    /// `join` holds the pid namespace: fork into it after joining (rootless).
    staged: bool,
    /// The init's root, to chroot into when the container shares our mount namespace.
    root: Option<OwnedFd>,
    process: &'a Process,
    command: Option<&'a crate::init::execve::Command>,
    console: Option<OwnedFd>,
    /// The terminal is berth's own (foreground `exec -t`), not a --console-socket's.
    own_terminal: bool,
    preserve_fds: u32,
    seccomp: Option<&'a crate::seccomp::Filter>,
    /// The container's `linux.personality`.
    personality: Option<&'a oci_spec::runtime::LinuxPersonality>,
}

fn child(c: Child) -> ! {
    let report = crate::init::report_panics(&c.channel, "the exec'd process");
    let err = match setup(&c, report) {
        Ok(prepared) => {
            if c.channel.send(&Msg::Ready).is_err() {
                exit(1);
            }
            // Past `Ready` a failed execve is the process's own (execve.rs): `exec` reads
            // EOF and goes on as if it ran.
            prepared.exec_or_exit(c.seccomp)
        }
        Err(e) => e,
    };
    let _ = c.channel.send(&Msg::Error(err.to_string()));
    exit(1)
}

fn exit(code: i32) -> ! {
    // _exit skips the destructors and atexit handlers that belong to the parent's copy.
    crate::sys::exit_now(code)
}

fn setup(
    c: &Child,
    panic_report: Option<std::os::fd::RawFd>,
) -> std::result::Result<crate::init::execve::Prepared, InitError> {
    use std::os::fd::AsRawFd;
    crate::sys::set_non_dumpable().map_err(doing("prctl(PR_SET_DUMPABLE)").io())?;
    // Into the container with nothing of the caller's but stdio and --preserve-fds, and
    // only the fds of berth's it uses.
    let mut own = vec![c.channel.as_fd().as_raw_fd(), c.init.as_raw_fd()];
    own.extend(c.console.as_ref().map(|s| s.as_raw_fd()));
    own.extend(c.root.as_ref().map(|r| r.as_raw_fd()));
    own.extend(panic_report);
    crate::sys::close_from_except(3 + c.preserve_fds, &own).map_err(doing("closing inherited fds").io())?;
    crate::init::recv_go(&c.channel)?;
    if !c.join.is_empty() {
        nix::sched::setns(&c.init, c.join).map_err(doing("joining the namespaces of the container's init").errno())?;
    }
    if c.staged {
        match crate::sys::clone3_fork(crate::sys::CLONE_PARENT, None)
            .map_err(doing("forking into the pid namespace").io())?
        {
            crate::sys::Forked::Child => {
                crate::init::recv_go(&c.channel)?;
            }
            crate::sys::Forked::Parent { pid, .. } => {
                let _ = c.channel.send(&Msg::Child { pid });
                exit(0)
            }
        }
    }
    if let Some(root) = &c.root {
        nix::unistd::fchdir(root).map_err(doing("chdir into the container's root").errno())?;
        nix::unistd::chroot(".").map_err(doing("chroot into the container's root").errno())?;
        nix::unistd::chdir("/").map_err(doing("chdir /").errno())?;
    }
    // The container's session keyring, found by name (as runc's exec does).
    crate::init::join_session_keyring(c.id, c.process)?;
    nix::unistd::setsid().map_err(doing("setsid").errno())?;
    if let Some(sock) = &c.console {
        terminal(sock, c.process, c.own_terminal)?;
    }
    if let Some(p) = c.personality {
        crate::kernel_attrs::apply_personality(p)?;
    }
    let affinity = c.process.exec_cpu_affinity().as_ref();
    crate::init::process_setup::apply(c.process, c.command, c.preserve_fds, affinity, c.seccomp, &c.channel)
}

/// A pty from the container's devpts: master to the console socket, peer as stdio and
/// controlling terminal.
fn terminal(sock: &OwnedFd, process: &Process, own: bool) -> std::result::Result<(), InitError> {
    let root = nix::fcntl::open(
        "/",
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(applying("terminal").doing("opening /").errno())?;
    let master = crate::rootfs::open_ptmx_in(root.as_fd())?;
    let peer = crate::init::terminal::hand_over(master, process, sock.as_fd(), own)?;
    crate::init::terminal::make_stdio(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_values_parse_or_fail_cleanly() {
        let ok: &[(&str, (u32, Option<u32>))] = &[
            ("1", (1, None)),
            ("1:2", (1, Some(2))),
            ("0", (0, None)),
            ("65534:65534", (65534, Some(65534))),
            ("4294967295", (u32::MAX, None)),
        ];
        for (s, want) in ok {
            assert_eq!(parse_user(s).as_ref(), Ok(want), "{s}");
        }
        for bad in ["a", "1:", ":1", "-1", "", "+1", " 1", "1:a", "1:2:3", "4294967296", "0x1", "root"] {
            let e = parse_user(bad).expect_err(bad);
            assert!(e.starts_with("--user"), "{bad}: {e}");
        }
    }

    #[test]
    fn caps_from_the_command_line_never_become_inheritable() {
        let base = Process::default();
        let o = Overrides {
            args: vec!["true".into()],
            caps: vec!["CAP_SYS_ADMIN".into(), "net_raw".into()],
            ..Default::default()
        };
        let p = build_process(&base, &o).unwrap();
        let c = p.capabilities().clone().unwrap();
        for set in [c.bounding(), c.effective(), c.permitted(), c.ambient()] {
            let s = set.clone().unwrap();
            assert!(s.contains(&Capability::SysAdmin) && s.contains(&Capability::NetRaw));
        }
        assert!(!c.inheritable().clone().unwrap_or_default().contains(&Capability::SysAdmin));
        assert!(build_process(&base, &Overrides { caps: vec!["CAP_NOPE".into()], ..Default::default() }).is_err());
    }

    #[test]
    fn env_from_the_command_line_replaces_by_key() {
        let mut env: Vec<OsString> = vec!["PATH=/bin".into(), "A=1".into()];
        merge_env(&mut env, &["A=2".into(), "B=3".into()]);
        assert_eq!(env, ["PATH=/bin", "A=2", "B=3"]);
    }
}
