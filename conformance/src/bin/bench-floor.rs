//! The kernel's floor for starting a container, as `make bench` compares the runtimes with
//! it: one static process that does only what no runtime can skip. It puts a child in new
//! mount, pid, uts, ipc and network namespaces, makes the mounts private, binds the rootfs
//! onto itself, mounts /proc in it, pivots into it, and execs the program; then waits for
//! it and exits with its status. No cgroup, no config to read, no state to keep.
//!
//! Usage: `bench-floor <rootfs> <program> [args…]` (as root).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{chdir, execv, fork, pivot_root, ForkResult};

fn child(rootfs: &PathBuf, argv: &[CString]) -> nix::Result<std::convert::Infallible> {
    unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWNET)?;
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)?;
    mount(Some(rootfs), rootfs, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)?;
    let proc = rootfs.join("proc");
    mount(
        Some("proc"),
        &proc,
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )?;
    chdir(rootfs)?;
    pivot_root(".", ".")?;
    umount2(".", MntFlags::MNT_DETACH)?;
    chdir("/")?;
    execv(&argv[0], argv)
}

fn main() {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: bench-floor <rootfs> <program> [args...]");
        std::process::exit(2);
    }
    let rootfs = PathBuf::from(&args[0]);
    let argv: Vec<CString> = match args[1..].iter().map(|a| CString::new(a.as_bytes())).collect() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("bench-floor: argument with a NUL byte: {e}");
            std::process::exit(2);
        }
    };
    // The pid namespace applies to the next child: it is pid 1 there, as a container's init.
    if let Err(e) = unshare(CloneFlags::CLONE_NEWPID) {
        eprintln!("bench-floor: unshare(CLONE_NEWPID): {e}");
        std::process::exit(1);
    }
    // SAFETY: this process has one thread (nothing has spawned any), so the child may run
    // any code after fork.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            let e = child(&rootfs, &argv).err();
            eprintln!("bench-floor: container set-up: {e:?}");
            std::process::exit(127);
        }
        Ok(ForkResult::Parent { child }) => match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => std::process::exit(code),
            Ok(other) => {
                eprintln!("bench-floor: child {other:?}");
                std::process::exit(1);
            }
            Err(e) => {
                eprintln!("bench-floor: waitpid: {e}");
                std::process::exit(1);
            }
        },
        Err(e) => {
            eprintln!("bench-floor: fork: {e}");
            std::process::exit(1);
        }
    }
}
