//! Root tests: prepare/enter/finalize on a busybox rootfs, in a forked child
//! with a private mount namespace. Host state is checked from the parent.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::stat::{major, makedev, minor, Mode};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};
use oci_spec::runtime::Spec;

use super::super::*;
use super::spec;

static SEQ: AtomicUsize = AtomicUsize::new(0);

fn unique(tag: &str) -> String {
    format!("berth-{tag}-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::SeqCst))
}

struct Fixture {
    _dir: tempfile::TempDir,
    top: PathBuf,
    bundle: PathBuf,
    rootfs: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::Builder::new().prefix("berth-rootfs-test").tempdir().expect("tempdir");
    let top = dir.path().canonicalize().expect("canon");
    let bundle = top.join("bundle");
    let rootfs = bundle.join("rootfs");
    for d in ["bin", "proc", "sys", "dev", "etc", "tmp", "mnt"] {
        fs::create_dir_all(rootfs.join(d)).expect("mkdir");
    }
    fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("copy busybox");
    for l in ["sh", "cat", "ls"] {
        symlink("busybox", rootfs.join("bin").join(l)).expect("symlink");
    }
    fs::write(rootfs.join("etc/hostname"), "container\n").expect("hostname");
    Fixture { _dir: dir, top, bundle, rootfs }
}

/// Run `f` in a forked child inside a new mount namespace; its error string
/// (or panic) comes back through a pipe. The one unsafe block outside `sys`: the test
/// harness is multi-threaded, so this needs glibc's fork (atfork handlers), not clone3.
#[allow(unsafe_code)]
fn in_child(f: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    let (r, w) = nix::unistd::pipe().map_err(|e| e.to_string())?;
    // SAFETY: the child only runs the closure and then _exits; it never
    // returns into the test harness.
    match unsafe { fork() }.map_err(|e| e.to_string())? {
        ForkResult::Child => {
            drop(r);
            let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare: {e}"))?;
                mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_SLAVE, None::<&str>)
                    .map_err(|e| format!("rslave: {e}"))?;
                f()
            }));
            let (code, msg) = match res {
                Ok(Ok(())) => (0, String::new()),
                Ok(Err(m)) => (1, m),
                Err(_) => (2, "child panicked".to_string()),
            };
            let _ = nix::unistd::write(&w, msg.as_bytes());
            // _exit skips the harness's atexit/unwinding in the child.
            crate::sys::exit_now(code)
        }
        ForkResult::Parent { child } => {
            drop(w);
            let mut msg = String::new();
            let _ = fs::File::from(r).read_to_string(&mut msg);
            match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, 0)) => Ok(()),
                Ok(st) => Err(format!("{msg} ({st:?})")),
                Err(e) => Err(format!("waitpid: {e}")),
            }
        }
    }
}

/// [`in_child`], then: nothing it mounted is seen on the host; then its result.
fn in_child_leaving_no_host_mounts(fx: &Fixture, f: impl FnOnce() -> Result<(), String>) {
    let r = in_child(f);
    assert_no_host_mounts(fx);
    r.expect("child");
}

/// prepare + enter (pivot_root), in the child.
fn prepare_and_enter(c: &RootfsConfig) -> Result<(), String> {
    prepare(c).map_err(s("prepare"))?.enter(false).map_err(s("enter"))
}

fn assert_no_host_mounts(fx: &Fixture) {
    let mi = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let top = fx.top.to_string_lossy();
    assert!(!mi.contains(top.as_ref()), "host mountinfo mentions {top}:\n{mi}");
}

fn cfg<'a>(fx: &'a Fixture, spec: &'a Spec) -> RootfsConfig<'a> {
    RootfsConfig {
        spec,
        rootfs: &fx.rootfs,
        bundle: &fx.bundle,
        cgroup_mounts: vec![],
        cgroupns: false,
        shares_mount_ns: false,
        in_user_ns: false,
        host_open: None,
    }
}

const STD_MOUNTS: &str = r#"
  {"destination":"/proc","type":"proc","source":"proc"},
  {"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","strictatime","mode=755","size=65536k"]},
  {"destination":"/dev/pts","type":"devpts","source":"devpts","options":["nosuid","noexec","newinstance","ptmxmode=0666","mode=0620","gid=5"]},
  {"destination":"/dev/shm","type":"tmpfs","source":"shm","options":["nosuid","noexec","nodev","mode=1777","size=65536k"]},
  {"destination":"/dev/mqueue","type":"mqueue","source":"mqueue","options":["nosuid","noexec","nodev"]},
  {"destination":"/sys","type":"sysfs","source":"sysfs","options":["nosuid","noexec","nodev","ro"]}"#;

fn make_spec(root_ro: bool, mounts: &str, linux: &str) -> Spec {
    spec(&format!(
        r#"{{"ociVersion":"1.3.0","root":{{"path":"rootfs","readonly":{root_ro}}},"mounts":[{mounts}],"linux":{linux}}}"#
    ))
}

fn err_of<T>(r: Result<T, RootfsError>) -> Result<String, String> {
    match r {
        Ok(_) => Err("expected an error, got success".into()),
        Err(e) => Ok(e.to_string()),
    }
}

fn s<E: std::fmt::Display>(ctx: &str) -> impl Fn(E) -> String + '_ {
    move |e| format!("{ctx}: {e}")
}

fn errno_of(r: std::io::Result<impl Sized>) -> Option<i32> {
    r.err().and_then(|e| e.raw_os_error())
}

fn check(cond: bool, what: &str) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(format!("check failed: {what}"))
    }
}

fn mountinfo_line(mp: &str) -> Option<String> {
    let mi = fs::read_to_string("/proc/self/mountinfo").ok()?;
    mi.lines().rfind(|l| l.split(' ').nth(4) == Some(mp)).map(str::to_string)
}

#[test]
#[ignore = "needs root"]
fn root_rootfs_full_cycle_mounts_devices_masks_readonly_paths() {
    let fx = fixture();
    let sp = make_spec(
        false,
        STD_MOUNTS,
        r#"{"maskedPaths":["/proc/version","/sys/firmware","/proc/does-not-exist"],
            "readonlyPaths":["/proc/sys","/proc/sysrq-trigger"]}"#,
    );
    validate(&sp, &fx.bundle).expect("validate");
    in_child_leaving_no_host_mounts(&fx, || {
        let root = prepare(&cfg(&fx, &sp)).map_err(s("prepare"))?;
        root.enter(false).map_err(s("enter"))?;
        finalize(&sp).map_err(s("finalize"))?;
        check(std::env::current_dir().map_err(s("cwd"))? == Path::new("/"), "cwd is /")?;
        check(Path::new("/bin/busybox").exists(), "busybox visible")?;
        let md = fs::metadata("/dev/null").map_err(s("stat /dev/null"))?;
        check(md.file_type().is_char_device() && md.rdev() == makedev(1, 3), "/dev/null is 1:3")?;
        check(md.permissions().mode() & 0o777 == 0o666, "/dev/null mode 0666")?;
        for (n, maj, min) in [("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)] {
            let md = fs::metadata(format!("/dev/{n}")).map_err(s(n))?;
            check(major(md.rdev()) == maj && minor(md.rdev()) == min, n)?;
        }
        check(fs::read_link("/dev/ptmx").map_err(s("ptmx"))? == Path::new("pts/ptmx"), "/dev/ptmx -> pts/ptmx")?;
        check(fs::read_link("/dev/fd").map_err(s("fd"))? == Path::new("/proc/self/fd"), "/dev/fd link")?;
        check(fs::read_link("/dev/stderr").map_err(s("stderr"))? == Path::new("/proc/self/fd/2"), "/dev/stderr link")?;
        fs::OpenOptions::new().read(true).write(true).open("/dev/ptmx").map_err(s("open ptmx"))?;
        // masked file reads empty, masked dir is an empty read-only tmpfs
        check(fs::read("/proc/version").map_err(s("read version"))?.is_empty(), "/proc/version masked")?;
        check(fs::read_dir("/sys/firmware").map_err(s("ls firmware"))?.next().is_none(), "/sys/firmware empty")?;
        check(errno_of(fs::write("/sys/firmware/x", "x")) == Some(libc::EROFS), "/sys/firmware read-only")?;
        // readonly paths
        let w = fs::OpenOptions::new().write(true).open("/proc/sys/kernel/hostname");
        check(errno_of(w) == Some(libc::EROFS), "/proc/sys read-only")?;
        check(mountinfo_line("/sys").is_some_and(|l| l.contains(" ro,")), "/sys ro")?;
        check(mountinfo_line("/").is_some(), "/ is a mount")?;
        // the rest of the rootfs stays writable
        fs::write("/tmp/probe", "ok").map_err(s("write /tmp"))?;
        let mi = fs::read_to_string("/proc/self/mountinfo").map_err(s("mountinfo"))?;
        check(!mi.lines().any(|l| l.split(' ').nth(4) == Some("/proc/self/mountinfo")), "sanity")?;
        Ok(())
    });
}

#[test]
#[ignore = "needs root"]
fn root_rootfs_readonly_root_after_finalize() {
    let fx = fixture();
    let sp = make_spec(true, STD_MOUNTS, "{}");
    in_child_leaving_no_host_mounts(&fx, || {
        prepare_and_enter(&cfg(&fx, &sp))?;
        finalize(&sp).map_err(s("finalize"))?;
        check(errno_of(fs::write("/tmp/x", "x")) == Some(libc::EROFS), "/ read-only")?;
        fs::write("/dev/shm/x", "x").map_err(s("/dev/shm stays writable"))?;
        Ok(())
    });
}

#[test]
#[ignore = "needs root"]
fn root_rootfs_dev_readonly_when_dev_mount_has_ro() {
    let fx = fixture();
    let mounts = STD_MOUNTS.replace(r#""strictatime","mode=755""#, r#""strictatime","ro","mode=755""#);
    let sp = make_spec(false, &mounts, "{}");
    in_child_leaving_no_host_mounts(&fx, || {
        prepare_and_enter(&cfg(&fx, &sp))?;
        finalize(&sp).map_err(s("finalize"))?;
        check(mountinfo_line("/dev").is_some_and(|l| l.contains(" ro,")), "/dev ro")?;
        check(Path::new("/dev/null").exists(), "devices created before the remount")?;
        Ok(())
    });
}

#[test]
#[ignore = "needs root"]
fn root_rootfs_no_pivot_moves_and_chroots() {
    let fx = fixture();
    let sp = make_spec(false, STD_MOUNTS, "{}");
    in_child_leaving_no_host_mounts(&fx, || {
        prepare(&cfg(&fx, &sp)).map_err(s("prepare"))?.enter(true).map_err(s("enter"))?;
        finalize(&sp).map_err(s("finalize"))?;
        check(Path::new("/bin/busybox").exists(), "busybox at /bin")?;
        check(fs::read_to_string("/etc/hostname").map_err(s("hostname"))? == "container\n", "container /etc")?;
        check(Path::new("/proc/self").exists(), "/proc mounted")?;
        Ok(())
    });
}

#[test]
#[ignore = "needs root"]
fn root_rootfs_bind_mounts_file_and_dir_with_flags() {
    let fx = fixture();
    fs::write(fx.bundle.join("hostfile"), "hello").expect("hostfile");
    fs::create_dir(fx.bundle.join("hostdir")).expect("hostdir");
    fs::write(fx.bundle.join("hostdir/inner"), "in").expect("inner");
    let mounts = format!(
        r#"{STD_MOUNTS},
        {{"destination":"/etc/greeting","source":"hostfile","options":["bind","ro"]}},
        {{"destination":"mnt/data","type":"bind","source":"{}","options":["rbind","rw","nosuid","rprivate"]}}"#,
        fx.bundle.join("hostdir").display()
    );
    let sp = make_spec(false, &mounts, "{}");
    validate(&sp, &fx.bundle).expect("validate");
    in_child_leaving_no_host_mounts(&fx, || {
        prepare_and_enter(&cfg(&fx, &sp))?;
        finalize(&sp).map_err(s("finalize"))?;
        check(fs::read_to_string("/etc/greeting").map_err(s("read"))? == "hello", "file bind content")?;
        check(errno_of(fs::OpenOptions::new().write(true).open("/etc/greeting")) == Some(libc::EROFS), "ro bind")?;
        check(fs::read_to_string("/mnt/data/inner").map_err(s("inner"))? == "in", "dir bind content")?;
        fs::write("/mnt/data/new", "n").map_err(s("rw bind"))?;
        let l = mountinfo_line("/mnt/data").ok_or("no /mnt/data mount")?;
        check(l.contains("nosuid") && !l.contains("shared:"), "nosuid, private")?;
        Ok(())
    });
    assert_eq!(fs::read_to_string(fx.bundle.join("hostdir/new")).expect("new"), "n");
    assert!(fx.rootfs.join("etc/greeting").metadata().expect("created").is_file());
}

fn canary_dir() -> PathBuf {
    let p = Path::new("/tmp").join(unique("canary"));
    fs::create_dir(&p).expect("canary");
    p
}

fn assert_canary_empty(p: &Path) {
    let n = fs::read_dir(p).expect("canary").count();
    assert_eq!(n, 0, "host canary {} was written", p.display());
    fs::remove_dir(p).expect("rm canary");
}

#[test]
#[ignore = "needs root"]
fn root_rootfs_dev_symlink_out_of_root_stays_inside() {
    for relative in [false, true] {
        let fx = fixture();
        let canary = canary_dir();
        let name = canary.file_name().expect("name").to_string_lossy().into_owned();
        fs::remove_dir(fx.rootfs.join("dev")).expect("rm dev");
        let target = if relative { format!("../../../../../../tmp/{name}") } else { format!("/tmp/{name}") };
        symlink(&target, fx.rootfs.join("dev")).expect("dev link");
        let sp = make_spec(
            false,
            r#"{"destination":"/proc","type":"proc","source":"proc"}"#,
            r#"{"devices":[{"path":"/dev/net/tun","type":"c","major":10,"minor":200,"fileMode":384}]}"#,
        );
        validate(&sp, &fx.bundle).expect("validate");
        let r = in_child(|| prepare(&cfg(&fx, &sp)).map(drop).map_err(s("prepare")));
        assert_no_host_mounts(&fx);
        r.expect("child");
        assert_canary_empty(&canary);
        let inside = fx.rootfs.join("tmp").join(&name);
        let null = fs::metadata(inside.join("null")).expect("null inside root");
        assert_eq!(null.rdev(), makedev(1, 3));
        let tun = fs::metadata(inside.join("net/tun")).expect("tun inside root");
        assert_eq!((tun.rdev(), tun.permissions().mode() & 0o7777), (makedev(10, 200), 0o600));
    }
}

#[test]
#[ignore = "needs root"]
fn root_rootfs_mount_destinations_through_symlinks_stay_inside() {
    let fx = fixture();
    let canary = canary_dir();
    let name = canary.file_name().expect("name").to_string_lossy().into_owned();
    let ghost = format!("/{}", unique("nonexistent"));
    symlink("/real/conf", fx.rootfs.join("conf")).expect("conf");
    symlink(format!("../../../../tmp/{name}"), fx.rootfs.join("up")).expect("up");
    symlink(format!("{ghost}/x"), fx.rootfs.join("dangling")).expect("dangling");
    fs::write(fx.bundle.join("f"), "f").expect("f");
    let mounts = r#"
        {"destination":"/conf/stack","type":"tmpfs","source":"tmpfs"},
        {"destination":"/up/a/b","type":"tmpfs","source":"tmpfs"},
        {"destination":"/dangling/c","type":"tmpfs","source":"tmpfs"},
        {"destination":"/up/../../../file","source":"f","options":["bind"]}"#;
    let sp = make_spec(false, mounts, "{}");
    in_child_leaving_no_host_mounts(&fx, || {
        prepare(&cfg(&fx, &sp)).map_err(s("prepare"))?;
        let l = mountinfo_line(&format!("{}/real/conf/stack", fx.rootfs.display()));
        check(l.is_some_and(|l| l.contains("tmpfs")), "tmpfs at rootfs/real/conf/stack")?;
        Ok(())
    });
    assert_canary_empty(&canary);
    assert!(!Path::new(&ghost).exists(), "{ghost} created on the host");
    assert!(fx.rootfs.join("real/conf/stack").is_dir());
    assert!(fx.rootfs.join("tmp").join(&name).join("a/b").is_dir());
    assert!(fx.rootfs.join(ghost.trim_start_matches('/')).join("x/c").is_dir());
    assert!(fx.rootfs.join("file").is_file());
}

#[test]
#[ignore = "needs root"]
fn root_rootfs_proc_or_sys_symlink_is_rejected() {
    for (dir, target) in [("proc", "/tmp"), ("proc", "../../proc"), ("sys", "/tmp")] {
        let fx = fixture();
        fs::remove_dir(fx.rootfs.join(dir)).expect("rm");
        symlink(target, fx.rootfs.join(dir)).expect("link");
        let sp = make_spec(false, STD_MOUNTS, "{}");
        let r = in_child(|| {
            let e = err_of(prepare(&cfg(&fx, &sp)))?;
            check(e.contains("must be mounted on ordinary directory") && e.contains(dir), &e)
        });
        assert_no_host_mounts(&fx);
        r.expect("child");
    }
}

#[test]
#[ignore = "needs root"]
fn root_rootfs_mount_into_proc_through_symlink_is_rejected() {
    let fx = fixture();
    symlink("/proc", fx.rootfs.join("pp")).expect("pp");
    let mounts = r#"{"destination":"/proc","type":"proc","source":"proc"},
        {"destination":"/pp/sys","type":"tmpfs","source":"tmpfs"}"#;
    let sp = make_spec(false, mounts, "{}");
    validate(&sp, &fx.bundle).expect("lexically fine");
    in_child_leaving_no_host_mounts(&fx, || {
        let e = err_of(prepare(&cfg(&fx, &sp)))?;
        check(e.contains("mounts[1]") && e.contains("inside /proc"), &e)
    });
}

#[test]
#[ignore = "needs root"]
fn root_rootfs_masked_paths_refuse_fake_dev_null() {
    let hostfile = Path::new("/tmp").join(unique("hostnull"));
    fs::write(&hostfile, "host secret").expect("hostfile");
    for variant in ["regular", "symlink-host", "fifo"] {
        let fx = fixture();
        let null = fx.rootfs.join("dev/null");
        match variant {
            "regular" => fs::write(&null, "").expect("file"),
            "symlink-host" => symlink(&hostfile, &null).expect("link"),
            _ => nix::unistd::mkfifo(&null, Mode::from_bits_truncate(0o666)).expect("fifo"),
        }
        // No /dev tmpfs: the image's /dev is used as is.
        let sp = make_spec(
            false,
            r#"{"destination":"/proc","type":"proc","source":"proc"}"#,
            r#"{"maskedPaths":["/etc/hostname"]}"#,
        );
        let r = in_child(|| {
            prepare_and_enter(&cfg(&fx, &sp))?;
            let e = err_of(finalize(&sp))?;
            check(e.contains("invalid /dev/null"), &e)?;
            check(fs::read_to_string("/etc/hostname").map_err(s("hostname"))? == "container\n", "not masked")
        });
        assert_no_host_mounts(&fx);
        r.unwrap_or_else(|e| panic!("{variant}: {e}"));
    }
    assert_eq!(fs::read_to_string(&hostfile).expect("read"), "host secret");
    fs::remove_file(&hostfile).expect("rm");
}

#[test]
#[ignore = "needs root"]
fn root_rootfs_console_replaces_symlink_with_file_inside_root() {
    let hostfile = Path::new("/tmp").join(unique("hostconsole"));
    fs::write(&hostfile, "host").expect("hostfile");
    let fx = fixture();
    symlink(&hostfile, fx.rootfs.join("dev/console")).expect("console link");
    let mounts = r#"{"destination":"/proc","type":"proc","source":"proc"},
      {"destination":"/dev/pts","type":"devpts","source":"devpts","options":["nosuid","noexec","newinstance","ptmxmode=0666","mode=0620"]}"#;
    let sp = make_spec(false, mounts, "{}");
    in_child_leaving_no_host_mounts(&fx, || {
        let root = prepare(&cfg(&fx, &sp)).map_err(s("prepare"))?;
        let ptmx = root.open_ptmx().map_err(s("open_ptmx"))?;
        let (peer, _) = crate::sys::term::open_pty_peer(ptmx.as_fd()).map_err(|e| format!("TIOCGPTPEER: {e}"))?;
        root.mount_console(peer.as_fd()).map_err(s("mount_console"))?;
        let md = fs::symlink_metadata(fx.rootfs.join("dev/console")).map_err(s("stat console"))?;
        check(md.file_type().is_char_device() && major(md.rdev()) == 136, "console is a pts")?;
        root.enter(false).map_err(s("enter"))?;
        let md = fs::metadata("/dev/console").map_err(s("stat console inside"))?;
        check(md.file_type().is_char_device() && major(md.rdev()) == 136, "console inside is a pts")
    });
    assert_eq!(fs::read_to_string(&hostfile).expect("read"), "host");
    assert!(fs::symlink_metadata(fx.rootfs.join("dev/console")).expect("console").is_file());
    fs::remove_file(&hostfile).expect("rm");
}

use std::os::fd::AsFd;

#[test]
#[ignore = "needs root"]
fn root_rootfs_open_ptmx_refuses_non_ptmx() {
    let fx = fixture();
    // /dev from the image, no devpts: /dev/ptmx -> pts/ptmx dangles.
    let sp = make_spec(false, r#"{"destination":"/proc","type":"proc","source":"proc"}"#, "{}");
    in_child_leaving_no_host_mounts(&fx, || {
        let root = prepare(&cfg(&fx, &sp)).map_err(s("prepare"))?;
        fs::create_dir_all(fx.rootfs.join("dev/pts")).map_err(s("mkdir pts"))?;
        nix::unistd::mkfifo(&fx.rootfs.join("dev/pts/ptmx"), Mode::from_bits_truncate(0o666)).map_err(s("fifo"))?;
        let e = err_of(root.open_ptmx())?;
        check(e.contains("not the devpts ptmx"), &e)
    });
}

#[test]
#[ignore = "needs root"]
fn root_rootfs_device_mismatch_with_existing_file_errors() {
    let fx = fixture();
    fs::write(fx.rootfs.join("dev/foo"), "").expect("foo");
    let sp = make_spec(
        false,
        r#"{"destination":"/proc","type":"proc","source":"proc"}"#,
        r#"{"devices":[{"path":"/dev/foo","type":"c","major":1,"minor":3}]}"#,
    );
    in_child_leaving_no_host_mounts(&fx, || {
        let e = err_of(prepare(&cfg(&fx, &sp)))?;
        check(e.contains("linux.devices[0]") && e.contains("already exists"), &e)
    });
}

#[test]
#[ignore = "needs root on a cgroup v1 host (the memory hierarchy at /sys/fs/cgroup/memory)"]
fn root_rootfs_cgroup_v1_mount_is_read_only() {
    assert!(
        Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists(),
        "needs the cgroup v1 memory hierarchy at /sys/fs/cgroup/memory"
    );
    let fx = fixture();
    let mounts = format!(
        r#"{STD_MOUNTS},
        {{"destination":"/sys/fs/cgroup","type":"cgroup","source":"cgroup","options":["nosuid","noexec","nodev","relatime","ro"]}}"#
    );
    let sp = make_spec(false, &mounts, "{}");
    let mut c = cfg(&fx, &sp);
    c.cgroup_mounts = vec![
        CgroupMount { name: "memory".into(), host_path: "/sys/fs/cgroup/memory".into() },
        CgroupMount { name: "cpu,cpuacct".into(), host_path: "/sys/fs/cgroup/cpu".into() },
        CgroupMount { name: "name=systemd".into(), host_path: "/sys/fs/cgroup/systemd".into() },
        CgroupMount { name: "unified".into(), host_path: "/sys/fs/cgroup/unified".into() },
    ];
    in_child_leaving_no_host_mounts(&fx, || {
        prepare_and_enter(&c)?;
        finalize(&sp).map_err(s("finalize"))?;
        check(Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists(), "memory hierarchy")?;
        check(fs::read_link("/sys/fs/cgroup/cpu").map_err(s("cpu link"))? == Path::new("cpu,cpuacct"), "cpu link")?;
        check(Path::new("/sys/fs/cgroup/systemd").is_dir(), "systemd dir")?;
        check(Path::new("/sys/fs/cgroup/unified/cgroup.procs").exists(), "unified")?;
        check(errno_of(fs::create_dir("/sys/fs/cgroup/memory/x")) == Some(libc::EROFS), "memory ro")?;
        check(errno_of(fs::create_dir("/sys/fs/cgroup/x")) == Some(libc::EROFS), "tmpfs ro")?;
        let mi = fs::read_to_string("/proc/self/mountinfo").map_err(s("mi"))?;
        for l in mi.lines().filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with("/sys/fs/cgroup"))) {
            check(l.split(' ').nth(5).is_some_and(|o| o.starts_with("ro")), l)?;
        }
        Ok(())
    });
}

#[test]
fn rootfs_open_proc_beneath_reads_sysctl_and_refuses_magic_links() {
    let fd = super::super::resolve::open_proc_beneath(Path::new("sys/kernel/ostype"), OFlag::O_RDONLY).expect("open");
    let mut s = String::new();
    fs::File::from(fd).read_to_string(&mut s).expect("read");
    assert_eq!(s, "Linux\n");
    assert_eq!(
        super::super::resolve::open_proc_beneath(Path::new("self/root/etc/passwd"), OFlag::O_RDONLY).err(),
        Some(Errno::ELOOP)
    );
}

#[test]
#[ignore = "needs root"]
fn root_rootfs_rshared_propagation_still_pivots() {
    let fx = fixture();
    let sp = make_spec(false, STD_MOUNTS, r#"{"rootfsPropagation":"rshared"}"#);
    in_child_leaving_no_host_mounts(&fx, || {
        prepare_and_enter(&cfg(&fx, &sp))?;
        finalize(&sp).map_err(s("finalize"))?;
        let l = mountinfo_line("/").ok_or("no / line")?;
        check(l.contains("shared:"), &l)
    });
}

#[test]
#[ignore = "needs root"]
fn root_rootfs_unbindable_propagation_pivots_and_root_is_unbindable() {
    for prop in ["unbindable", "runbindable"] {
        let fx = fixture();
        let linux = format!(r#"{{"rootfsPropagation":"{prop}"}}"#);
        let sp = make_spec(false, STD_MOUNTS, &linux);
        let r = in_child(|| {
            prepare_and_enter(&cfg(&fx, &sp))?;
            // Applied last, after readonlyPaths and maskedPaths have bound theirs.
            finalize(&sp).map_err(s("finalize"))?;
            let l = mountinfo_line("/").ok_or("no / line")?;
            check(l.contains(" unbindable "), &l)
        });
        assert_no_host_mounts(&fx);
        r.expect(prop);
    }
}

#[test]
#[ignore = "needs root"]
fn root_rootfs_recursive_bind_attrs_apply_to_submounts() {
    let fx = fixture();
    let src = fx.bundle.join("tree");
    fs::create_dir_all(src.join("sub")).expect("tree");
    let mounts = format!(
        r#"{STD_MOUNTS},
        {{"destination":"/mnt/tree","source":"{src}","options":["rbind","rro","rnosuid"]}}"#,
        src = src.display()
    );
    let sp = make_spec(false, &mounts, "{}");
    in_child_leaving_no_host_mounts(&fx, || {
        // A submount inside the bind source, only in this namespace.
        mount(Some("tmpfs"), &src.join("sub"), Some("tmpfs"), MsFlags::empty(), None::<&str>).map_err(s("sub"))?;
        prepare_and_enter(&cfg(&fx, &sp))?;
        for mp in ["/mnt/tree", "/mnt/tree/sub"] {
            let l = mountinfo_line(mp).ok_or(format!("no {mp}"))?;
            let opts = l.split(' ').nth(5).unwrap_or("");
            check(opts.starts_with("ro") && opts.contains("nosuid"), &l)?;
        }
        check(errno_of(fs::write("/mnt/tree/sub/x", "x")) == Some(libc::EROFS), "sub read-only")
    });
}

fn cgroup2_mount_check(cgroupns: bool) {
    assert!(
        Path::new("/sys/fs/cgroup/unified/cgroup.procs").exists(),
        "needs a hybrid host's cgroup2 hierarchy at /sys/fs/cgroup/unified"
    );
    let fx = fixture();
    let mounts = format!(
        r#"{STD_MOUNTS},
        {{"destination":"/sys/fs/cgroup","type":"cgroup","source":"cgroup","options":["nosuid","noexec","nodev","ro"]}}"#
    );
    let sp = make_spec(false, &mounts, "{}");
    let mut c = cfg(&fx, &sp);
    c.cgroupns = cgroupns;
    c.cgroup_mounts = vec![CgroupMount { name: String::new(), host_path: "/sys/fs/cgroup/unified".into() }];
    in_child_leaving_no_host_mounts(&fx, || {
        prepare_and_enter(&c)?;
        check(Path::new("/sys/fs/cgroup/cgroup.procs").exists(), "cgroup2 at /sys/fs/cgroup")?;
        check(errno_of(fs::create_dir("/sys/fs/cgroup/x")) == Some(libc::EROFS), "cgroup2 ro")?;
        let l = mountinfo_line("/sys/fs/cgroup").ok_or("no cgroup line")?;
        check(l.contains(" - cgroup2 ") && l.split(' ').nth(5).is_some_and(|o| o.starts_with("ro")), &l)
    });
}

#[test]
#[ignore = "needs root on a cgroup v1 hybrid host (cgroup2 at /sys/fs/cgroup/unified)"]
fn root_rootfs_cgroup_v2_bind_without_cgroupns_is_read_only() {
    cgroup2_mount_check(false);
}

#[test]
#[ignore = "needs root on a cgroup v1 hybrid host (cgroup2 at /sys/fs/cgroup/unified)"]
fn root_rootfs_cgroup_v2_fresh_mount_with_cgroupns_is_read_only() {
    cgroup2_mount_check(true);
}

#[test]
#[ignore = "needs root"]
fn root_rootfs_bind_through_final_symlink_creates_target_inside() {
    let fx = fixture();
    // Like Debian's /etc/resolv.conf -> ../run/systemd/resolve/stub-resolv.conf
    symlink("../run/systemd/resolve/stub-resolv.conf", fx.rootfs.join("etc/resolv.conf")).expect("link");
    fs::write(fx.bundle.join("resolv.conf"), "nameserver 10.0.0.1\n").expect("resolv");
    let mounts = format!(
        r#"{STD_MOUNTS},
        {{"destination":"/etc/resolv.conf","source":"resolv.conf","options":["rbind","rprivate"]}},
        {{"destination":"tmp/relative","type":"tmpfs","source":"tmpfs"}}"#
    );
    let sp = make_spec(false, &mounts, "{}");
    in_child_leaving_no_host_mounts(&fx, || {
        prepare_and_enter(&cfg(&fx, &sp))?;
        let got = fs::read_to_string("/etc/resolv.conf").map_err(s("read"))?;
        check(got == "nameserver 10.0.0.1\n", &got)?;
        check(mountinfo_line("/tmp/relative").is_some(), "relative destination mounted under /")
    });
    assert!(fx.rootfs.join("run/systemd/resolve/stub-resolv.conf").is_file());
}

/// CVE-2021-30465 shape: while the destination's directory keeps being
/// swapped with a symlink out of the root, every mount still lands inside
/// the rootfs and nothing is created on the host.
#[test]
#[ignore = "needs root"]
fn root_rootfs_destination_symlink_swap_race_stays_inside() {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    let fx = fixture();
    let canary = canary_dir();
    let vol = fx.rootfs.join("vol");
    fs::create_dir_all(vol.join("dir")).expect("dir");
    symlink(&canary, vol.join("link")).expect("link");
    let mounts = r#"{"destination":"/vol/dir/x","type":"tmpfs","source":"tmpfs"},
        {"destination":"/vol/dir/x/y","type":"tmpfs","source":"tmpfs"}"#;
    let sp = make_spec(false, mounts, "{}");

    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let stop = stop.clone();
        let vol = vol.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = nix::fcntl::renameat2(
                    nix::fcntl::AT_FDCWD,
                    &vol.join("dir"),
                    nix::fcntl::AT_FDCWD,
                    &vol.join("link"),
                    nix::fcntl::RenameFlags::RENAME_EXCHANGE,
                );
            }
        })
    };
    let rootfs = fx.rootfs.to_string_lossy().into_owned();
    let mut failures = Vec::new();
    for _ in 0..100 {
        let r = in_child(|| {
            let points = |mi: &str| -> Vec<String> {
                mi.lines().filter_map(|l| l.split(' ').nth(4).map(str::to_string)).collect()
            };
            let before = points(&fs::read_to_string("/proc/self/mountinfo").map_err(s("mi"))?);
            // A clean error is acceptable; an escape is not.
            let _ = prepare(&cfg(&fx, &sp));
            let after = points(&fs::read_to_string("/proc/self/mountinfo").map_err(s("mi"))?);
            for p in after.iter().filter(|p| !before.contains(p)) {
                check(p.starts_with(&rootfs), &format!("mount outside the rootfs: {p}"))?;
            }
            Ok(())
        });
        if let Err(e) = r {
            failures.push(e);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = swapper.join();
    assert_no_host_mounts(&fx);
    assert!(failures.is_empty(), "{failures:?}");
    assert_canary_empty(&canary);
}

#[test]
#[ignore = "needs root"]
fn root_rootfs_bind_on_proc_must_be_procfs() {
    let fx = fixture();
    fs::create_dir(fx.bundle.join("fakeproc")).expect("fakeproc");
    let bad = make_spec(false, r#"{"destination":"/proc","source":"fakeproc","options":["rbind"]}"#, "{}");
    let good = make_spec(false, r#"{"destination":"/proc","source":"/proc","options":["rbind"]}"#, "{}");
    validate(&bad, &fx.bundle).expect("deferred to prepare");
    let r = in_child(|| {
        let e = err_of(prepare(&cfg(&fx, &bad)))?;
        check(e.contains("not of type proc"), &e)
    });
    r.expect("child bad");
    let r = in_child(|| prepare(&cfg(&fx, &good)).map(drop).map_err(s("prepare")));
    assert_no_host_mounts(&fx);
    r.expect("child good");
}

/// Not a check: prints how long prepare+enter+finalize take for the
/// standard config. Not in CI (the `manual-tests` feature): run as root with
/// `cargo test -p berth --lib --features manual-tests -- --ignored --nocapture timing`.
#[test]
#[cfg(feature = "manual-tests")]
#[ignore = "needs root; a timing report, not a check"]
fn root_rootfs_timing_of_standard_config() {
    let fx = fixture();
    let sp = make_spec(
        true,
        STD_MOUNTS,
        r#"{"maskedPaths":["/proc/acpi","/proc/kcore","/proc/keys","/proc/timer_list","/sys/firmware"],
            "readonlyPaths":["/proc/bus","/proc/fs","/proc/irq","/proc/sys","/proc/sysrq-trigger"]}"#,
    );
    let out = fx.top.join("timing");
    for _ in 0..5 {
        let r = in_child(|| {
            let t = std::time::Instant::now();
            let root = prepare(&cfg(&fx, &sp)).map_err(s("prepare"))?;
            let t1 = t.elapsed();
            let out_fd = nix::fcntl::open(
                &out,
                OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_APPEND,
                Mode::from_bits_truncate(0o644),
            )
            .map_err(s("open out"))?;
            root.enter(false).map_err(s("enter"))?;
            finalize(&sp).map_err(s("finalize"))?;
            let t2 = t.elapsed();
            nix::unistd::write(&out_fd, format!("prepare {t1:?} total {t2:?}\n").as_bytes()).map_err(s("write"))?;
            Ok(())
        });
        r.expect("child");
    }
    eprintln!("{}", fs::read_to_string(&out).expect("timing"));
    assert_no_host_mounts(&fx);
}

/// Enter a user namespace mapping only our own root, so mknod is refused
/// (EPERM) as in a rootless or userns container.
fn enter_own_userns() -> Result<(), String> {
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS).map_err(s("unshare user"))?;
    fs::write("/proc/self/setgroups", "deny").map_err(s("setgroups"))?;
    fs::write("/proc/self/uid_map", "0 0 1").map_err(s("uid_map"))?;
    fs::write("/proc/self/gid_map", "0 0 1").map_err(s("gid_map"))?;
    Ok(())
}

#[test]
#[ignore = "needs root"]
fn root_rootfs_devices_fall_back_to_bind_when_mknod_is_refused() {
    let fx = fixture();
    let mounts = r#"{"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","mode=755"]},
      {"destination":"/dev/pts","type":"devpts","source":"devpts","options":["nosuid","noexec","newinstance","ptmxmode=0666","mode=0620"]}"#;
    let sp = make_spec(false, mounts, r#"{"devices":[{"path":"/dev/fuse","type":"c","major":10,"minor":229}]}"#);
    in_child_leaving_no_host_mounts(&fx, || {
        enter_own_userns()?;
        let root = prepare(&cfg(&fx, &sp)).map_err(s("prepare"))?;
        let null_mp = format!("{}/dev/null", fx.rootfs.display());
        check(mountinfo_line(&null_mp).is_some(), "/dev/null is a bind mount")?;
        root.enter(false).map_err(s("enter"))?;
        finalize(&sp).map_err(s("finalize"))?;
        let md = fs::metadata("/dev/null").map_err(s("stat null"))?;
        check(md.file_type().is_char_device() && md.rdev() == makedev(1, 3), "/dev/null bound from host")?;
        if Path::new("/dev/fuse").exists() {
            let md = fs::metadata("/dev/fuse").map_err(s("stat fuse"))?;
            check(md.rdev() == makedev(10, 229), "/dev/fuse bound from host")?;
        }
        fs::OpenOptions::new().write(true).open("/dev/null").map_err(s("write /dev/null"))?;
        Ok(())
    });
}

/// A bind in a user namespace keeps the flags locked on its source that its options do not
/// name, and refuses options that clear one (runc 1.2 and later).
#[test]
#[ignore = "needs root"]
fn root_rootfs_bind_in_userns_keeps_locked_flags_not_named_and_refuses_to_clear_one() {
    let fx = fixture();
    let src = fx.bundle.join("locked");
    fs::create_dir(&src).expect("src");
    let spec_with = |options: &str| {
        let mounts = format!(r#"{{"destination":"/mnt/locked","source":"{}","options":{options}}}"#, src.display());
        make_spec(false, &mounts, "{}")
    };
    let (keeps, clears) = (spec_with(r#"["bind","noexec"]"#), spec_with(r#"["bind","suid","dev","rw"]"#));
    in_child_leaving_no_host_mounts(&fx, || {
        let fl = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_RDONLY;
        mount(Some("tmpfs"), &src, Some("tmpfs"), fl, None::<&str>).map_err(s("tmpfs"))?;
        // The flags of a mount inherited into a less privileged namespace are locked.
        enter_own_userns()?;
        let refused = match prepare(&cfg(&fx, &clears)) {
            Err(e) => e.to_string(),
            Ok(_) => return Err("a bind clearing locked flags was made".into()),
        };
        check(refused.contains("cannot clear ro,nosuid,nodev locked on the source's mount"), &refused)?;
        prepare(&cfg(&fx, &keeps)).map_err(s("prepare"))?;
        let l = mountinfo_line(&format!("{}/mnt/locked", fx.rootfs.display())).ok_or("no mount")?;
        let opts = l.split(' ').nth(5).unwrap_or("");
        check(opts.starts_with("ro") && ["nosuid", "nodev", "noexec"].iter().all(|f| opts.contains(f)), &l)
    });
}

/// CVE-2025-52565 variants: /dev/console a dangling link, /dev/pts a link out
/// of the root. The console is still a pts inside the root; the host
/// canary stays empty.
#[test]
#[ignore = "needs root"]
fn root_rootfs_console_with_dangling_console_and_pts_symlink() {
    let fx = fixture();
    let canary = canary_dir();
    let ghost = format!("/{}", unique("ghost-console"));
    symlink(&ghost, fx.rootfs.join("dev/console")).expect("console link");
    symlink(&canary, fx.rootfs.join("dev/pts")).expect("pts link");
    let mounts = r#"{"destination":"/proc","type":"proc","source":"proc"},
      {"destination":"/dev/pts","type":"devpts","source":"devpts","options":["nosuid","noexec","newinstance","ptmxmode=0666","mode=0620"]}"#;
    let sp = make_spec(false, mounts, "{}");
    in_child_leaving_no_host_mounts(&fx, || {
        let root = prepare(&cfg(&fx, &sp)).map_err(s("prepare"))?;
        let ptmx = root.open_ptmx().map_err(s("open_ptmx"))?;
        let (peer, _) = crate::sys::term::open_pty_peer(ptmx.as_fd()).map_err(|e| format!("TIOCGPTPEER: {e}"))?;
        root.mount_console(peer.as_fd()).map_err(s("mount_console"))?;
        root.enter(false).map_err(s("enter"))?;
        let md = fs::metadata("/dev/console").map_err(s("stat console"))?;
        check(md.file_type().is_char_device() && major(md.rdev()) == 136, "console is a pts")
    });
    assert_canary_empty(&canary);
    assert!(!Path::new(&ghost).exists(), "{ghost} created on the host");
}

#[test]
#[ignore = "needs root"]
fn root_rootfs_sysfs_falls_back_to_read_only_bind_in_userns() {
    let fx = fixture();
    let sp = make_spec(
        false,
        r#"{"destination":"/sys","type":"sysfs","source":"sysfs","options":["nosuid","noexec","nodev","ro"]}"#,
        "{}",
    );
    in_child_leaving_no_host_mounts(&fx, || {
        enter_own_userns()?;
        prepare(&cfg(&fx, &sp)).map_err(s("prepare"))?;
        let l = mountinfo_line(&format!("{}/sys", fx.rootfs.display())).ok_or("no /sys mount")?;
        check(l.contains(" - sysfs ") && l.split(' ').nth(5).is_some_and(|o| o.starts_with("ro")), &l)?;
        check(fx.rootfs.join("sys/kernel").is_dir(), "sysfs content")?;
        // Submounts came along: it is the host's /sys, recursively bound.
        let sub = mountinfo_line(&format!("{}/sys/fs/cgroup", fx.rootfs.display()));
        check(
            sub.as_ref().is_some_and(|l| l.split(' ').nth(5).is_some_and(|o| o.starts_with("ro"))),
            "submounts read-only",
        )
    });
}

#[test]
#[ignore = "needs root"]
fn root_rootfs_tmpcopyup_fills_tmpfs_with_image_content() {
    let fx = fixture();
    let run = fx.rootfs.join("run");
    fs::create_dir_all(run.join("sub")).expect("run");
    fs::write(run.join("a"), "aaa").expect("a");
    fs::set_permissions(run.join("a"), fs::Permissions::from_mode(0o640)).expect("chmod");
    fs::write(run.join("sub/b"), "bbb").expect("b");
    symlink("/etc/hostname", run.join("link")).expect("link");
    nix::unistd::mkfifo(&run.join("fifo"), Mode::from_bits_truncate(0o600)).expect("fifo");
    let mounts = format!(
        r#"{STD_MOUNTS},
        {{"destination":"/run","type":"tmpfs","source":"tmpfs","options":["nosuid","tmpcopyup","mode=755","ro"]}}"#
    );
    let sp = make_spec(false, &mounts, "{}");
    validate(&sp, &fx.bundle).expect("validate");
    in_child_leaving_no_host_mounts(&fx, || {
        prepare_and_enter(&cfg(&fx, &sp))?;
        let l = mountinfo_line("/run").ok_or("no /run")?;
        check(l.contains(" - tmpfs ") && l.split(' ').nth(5).is_some_and(|o| o.starts_with("ro")), &l)?;
        check(fs::read_to_string("/run/a").map_err(s("a"))? == "aaa", "a copied")?;
        let md = fs::metadata("/run/a").map_err(s("stat a"))?;
        check(md.permissions().mode() & 0o7777 == 0o640, "a mode kept")?;
        check(fs::read_to_string("/run/sub/b").map_err(s("b"))? == "bbb", "sub/b copied")?;
        check(fs::read_link("/run/link").map_err(s("link"))? == Path::new("/etc/hostname"), "link copied as link")?;
        check(fs::symlink_metadata("/run/fifo").map_err(s("fifo"))?.file_type().is_fifo(), "fifo copied")?;
        check(errno_of(fs::write("/run/new", "x")) == Some(libc::EROFS), "ro after copy")
    });
    assert!(!fx.rootfs.join("run/new").exists());
}
