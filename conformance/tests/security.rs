//! Escape regressions (SECURITY.md §1a) for what issue 2 builds. Host
//! canaries live under the test's own dir; every test also runs the leak check.

use conformance::util::sha256_file;
use conformance::{Case, Runtime};
use serde_json::json;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::PathBuf;

// CVE-2024-21626 "Leaky Vessels" -------------------------------------------

#[test]
fn cve_2024_21626_leaked_host_fds_do_not_reach_the_container() {
    let mut c = Case::new("sec_fd_leak");
    let canary = c.canary("hostdir");
    // `; true` keeps sh as pid 1 (no exec of ls) without opening pipes of its own.
    c.bundle.set_sh("ls -l /proc/1/fd/; true");
    c.write();
    let leaks: Vec<PathBuf> =
        vec![canary.clone(), "/".into(), "/sys/fs/cgroup".into(), c.dir.clone(), "/etc/hostname".into()];
    let out = c.rt.cmd().args(["run", "--bundle"]).arg(&c.bundle.dir).arg(&c.id).leak_fds(&leaks).run();
    out.expect_ok("run with leaked host fds");
    let fds: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.contains(" -> "))
        .filter_map(|l| l.split(" -> ").next()?.split_whitespace().last())
        .collect();
    assert_eq!(fds, vec!["0", "1", "2"], "only stdio may be open in pid 1 of the container:\n{}", out.stdout);
}

#[test]
fn cve_2024_21626_created_init_holds_no_host_fds() {
    let mut c = Case::new("sec_fd_leak_created");
    let canary = c.canary("hostdir");
    c.bundle.set_args(&["sleep", "1000"]);
    c.write();
    let out =
        c.rt.cmd()
            .args(["create", "--bundle"])
            .arg(&c.bundle.dir)
            .arg(&c.id)
            .stdio_to(&c.stdio)
            .leak_fds(&[canary.clone(), "/".into()])
            .run();
    out.expect_ok("create");
    c.start().expect_ok("start");
    let pid = c.state()["pid"].as_i64().unwrap();
    let mut bad = Vec::new();
    for e in fs::read_dir(format!("/proc/{pid}/fd")).unwrap().flatten() {
        let n: i32 = e.file_name().to_string_lossy().parse().unwrap();
        let t = fs::read_link(e.path()).map(|p| p.display().to_string()).unwrap_or_default();
        if n > 2 {
            bad.push(format!("{n} -> {t}"));
        }
    }
    assert!(bad.is_empty(), "container process holds extra fds: {bad:?}");
}

/// Issue 16: between `create` and `start` the init must hold none of the caller's fds (an
/// exec'd process with CAP_SYS_PTRACE would read host files through /proc/1/fd/N/...), not
/// merely have them close-on-exec. Allowed: stdio, sockets, pipes and anonymous inodes, and
/// the runtime's own files under its --root (runc's and crun's exec fifo).
#[test]
fn created_init_holds_none_of_the_callers_fds_before_start() {
    // Not crun 1.8: its created init keeps the caller's fds until it execs.
    for (label, bin) in [("berth", None), ("runc", Some("/usr/sbin/runc"))] {
        if bin.is_some_and(|b| !std::path::Path::new(b).exists()) {
            continue;
        }
        let mut c = Case::new(&format!("sec_created_fds_{label}"));
        let state_root = c.dir.join("root");
        if let Some(b) = bin {
            c.rt = Runtime::with_binary(std::path::Path::new(b), &state_root);
        }
        let canary = c.canary("hostdir");
        c.bundle.set_args(&["sleep", "1000"]);
        c.write();
        let leaks: Vec<PathBuf> = vec![canary.clone(), "/".into(), "/etc/hostname".into(), c.dir.clone()];
        let out =
            c.rt.cmd()
                .args(["create", "--bundle"])
                .arg(&c.bundle.dir)
                .arg(&c.id)
                .stdio_to(&c.stdio)
                .leak_fds(&leaks)
                .run();
        out.expect_ok(&format!("{label} create with leaked fds"));
        let pid = c.state()["pid"].as_i64().expect("state has the init's pid");
        let mut bad = Vec::new();
        for e in fs::read_dir(format!("/proc/{pid}/fd")).expect("read the init's fds").flatten() {
            let n: i32 = e.file_name().to_string_lossy().parse().expect("fd number");
            let t = fs::read_link(e.path()).map(|p| p.display().to_string()).unwrap_or_default();
            let internal = ["socket:", "pipe:", "anon_inode:", "/memfd:"].iter().any(|p| t.starts_with(p))
                || t.starts_with(&state_root.display().to_string());
            if n > 2 && !internal {
                bad.push(format!("{n} -> {t}"));
            }
        }
        assert!(bad.is_empty(), "{label}: the created init holds host fds: {bad:?}");
    }
}

#[test]
fn cve_2024_21626_cwd_proc_self_fd_cannot_reach_host() {
    let mut c = Case::new("sec_cwd_fd");
    let canary = c.canary("hostdir");
    fs::write(canary.join("secret"), "HOST-SECRET\n").unwrap();
    for n in 3..10 {
        c.config()["process"]["cwd"] = format!("/proc/self/fd/{n}").into();
        c.bundle.set_sh("cat secret ../secret ../../secret 2>/dev/null; readlink /proc/1/cwd");
        c.write();
        let out =
            c.rt.cmd()
                .args(["run", "--bundle"])
                .arg(&c.bundle.dir)
                .arg(&c.id)
                .leak_fds(&[canary.clone(), canary.clone(), canary.clone(), "/".into()])
                .run();
        assert!(!out.stdout.contains("HOST-SECRET"), "cwd=/proc/self/fd/{n} reached the host:\n{out}");
        if out.ok() {
            let cwd = out.stdout.lines().last().unwrap_or("");
            assert!(
                !cwd.contains(canary.to_str().unwrap()) && !cwd.contains("unreachable"),
                "fd {n}: cwd outside the rootfs: {cwd}"
            );
        }
        c.rt.delete_force(&c.id);
    }
}

// CVE-2019-5736 ------------------------------------------------------------

#[test]
fn cve_2019_5736_shebang_proc_self_exe_leaves_runtime_binary_unchanged() {
    let mut c = Case::new("sec_self_exe");
    let bin = c.rt.bin.clone();
    let before = sha256_file(&bin);
    c.bundle.rootfs.write_script("/entry", "#!/proc/self/exe\n");
    // The payload tries every way a container process sees the runtime's exe.
    c.bundle.rootfs.write_script(
        "/attack",
        "#!/bin/sh\nfor p in /proc/self/exe /proc/1/exe; do echo pwned >> $p 2>/dev/null && echo WROTE $p; done\nexec /entry\n",
    );
    c.config()["root"]["readonly"] = false.into();
    c.bundle.set_args(&["/attack"]);
    let _ = c.run();
    c.bundle.set_args(&["/entry"]);
    let _ = c.run();
    assert_eq!(sha256_file(&bin), before, "the runtime binary {} was modified", bin.display());
}

#[test]
fn create_re_executes_from_a_read_only_view_before_its_c_library_starts() {
    // berth_sys::early_exec: the host binary's image makes four system calls (open of
    // /proc/self/exe, open_tree, mount_setattr, execveat) and nothing of the C library's
    // start-up (its first call, arch_prctl, comes only in the protected image).
    let c = Case::new("sec_early_exec");
    c.write();
    let trace = c.dir.join("strace.out");
    let out = std::process::Command::new("strace")
        .arg("-o")
        .arg(&trace)
        .args(["-e", "trace=execve,execveat,arch_prctl,open,openat,open_tree,mount_setattr"])
        .arg(&c.rt.bin)
        .arg("--root")
        .arg(&c.rt.root)
        .args(["create", "--bundle"])
        .arg(&c.bundle.dir)
        .arg(&c.id)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run strace (Debian package strace)");
    assert!(out.success(), "create under strace: {out}");
    let text = fs::read_to_string(&trace).expect("read the trace");
    let calls: Vec<&str> = text.lines().filter_map(|l| l.split('(').next()).filter(|n| !n.starts_with("+++")).collect();
    let first_image: Vec<&str> = calls.iter().copied().take_while(|n| *n != "execveat").collect();
    assert_eq!(
        first_image,
        ["execve", "open", "open_tree", "mount_setattr"],
        "{} is not a release build with the early re-exec (make build), or the host image did \
         more than re-execute:\n{text}",
        c.rt.bin.display()
    );
    let after: Vec<&str> = calls.iter().copied().skip_while(|n| *n != "execveat").collect();
    assert_eq!(after.get(1).copied(), Some("open"), "the protected image checks /proc/self/exe first:\n{text}");
    assert!(after.contains(&"arch_prctl"), "the protected image's C library never started:\n{text}");
    assert!(!after[1..].contains(&"execveat"), "the protected image re-executed again:\n{text}");
}

#[test]
fn cve_2019_5736_created_init_is_not_the_host_binary() {
    let c = Case::new("sec_init_exe");
    c.create().expect_ok("create");
    let pid = c.state()["pid"].as_i64().unwrap();
    let exe = fs::read_link(format!("/proc/{pid}/exe")).expect("readlink init exe");
    let host = fs::canonicalize(&c.rt.bin).unwrap();
    assert_ne!(exe, host, "the parked init runs the host runtime binary itself (no sealed copy)");
    // Writing through the init's exe must be refused.
    let w = fs::OpenOptions::new().write(true).open(format!("/proc/{pid}/exe"));
    assert!(w.is_err(), "init's exe is writable");
}

#[test]
fn cve_2019_5736_runtime_image_stays_unwritable_after_the_init_exits() {
    // The attack itself: hold the init's exe open (O_PATH, as a container process can
    // through /proc/<pid>/exe), wait until nothing executes it (no more ETXTBSY), then
    // reopen it for writing through /proc/self/fd.
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let c = Case::new("sec_exe_after_exit");
    let before = sha256_file(&c.rt.bin);
    c.create().expect_ok("create");
    let pid = c.state()["pid"].as_i64().unwrap();
    let held = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(format!("/proc/{pid}/exe"))
        .expect("O_PATH open of the init's exe");
    c.rt.delete_force(&c.id).expect_ok("delete --force");
    let reopened = fs::OpenOptions::new().write(true).open(format!("/proc/self/fd/{}", held.as_raw_fd()));
    match reopened {
        Ok(_) => panic!("the runtime image the init ran from is writable after the init exited"),
        Err(e) => assert!(
            matches!(e.raw_os_error(), Some(libc::EROFS) | Some(libc::EPERM) | Some(libc::ETXTBSY)),
            "unexpected error reopening the image for writing: {e}"
        ),
    }
    assert_eq!(sha256_file(&c.rt.bin), before, "the runtime binary was modified");
}

// CVE-2024-45310 / CVE-2021-30465 (non-race form) --------------------------

#[test]
fn cve_2024_45310_mount_destinations_through_symlinks_stay_in_rootfs() {
    let mut c = Case::new("sec_mkdirall");
    let canary = c.canary("hostcanary");
    let nonexistent = format!("/nonexistent-{}", c.id);
    let r = &c.bundle.rootfs;
    fs::create_dir_all(r.host_path("/real/conf")).unwrap();
    symlink("/real/conf", r.host_path("/conf")).unwrap();
    symlink(format!("../../../../../../../../..{}", canary.display()), r.host_path("/up")).unwrap();
    symlink(format!("{nonexistent}/x"), r.host_path("/dangling")).unwrap();
    c.config()["root"]["readonly"] = false.into();
    for d in ["/conf/stack", "/up/a/b", "/dangling/c"] {
        c.bundle.add_mount(json!({"destination": d, "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}));
    }
    let out = c.run_sh("grep -c tmpfs /proc/mounts");
    if out.ok() {
        assert!(
            c.bundle.rootfs.host_path("/real/conf/stack").is_dir(),
            "absolute symlink not resolved inside the rootfs"
        );
        assert!(c.bundle.rootfs.host_path(&format!("{}/a/b", canary.display())).is_dir());
    }
    c.assert_canary_untouched(&canary);
    assert!(!PathBuf::from(&nonexistent).exists(), "{nonexistent} created on the host");
}

#[test]
fn cve_2021_30465_bind_destination_symlink_to_host_root_stays_in_rootfs() {
    let mut c = Case::new("sec_bind_symlink");
    let canary = c.canary("hostcanary");
    let src = c.dir.join("vol");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("payload"), "p\n").unwrap();
    symlink(canary.to_str().unwrap(), c.bundle.rootfs.host_path("/mnt/link")).unwrap();
    c.bundle.add_mount(json!({"destination": "/mnt/link", "type": "bind", "source": src, "options": ["rbind"]}));
    let out = c.run_sh("ls /mnt/link");
    if out.ok() {
        assert!(out.stdout.contains("payload"), "{out}");
    }
    c.assert_canary_untouched(&canary);
}

// CVE-2025-31133: /dev/null used for masking must be the real 1:3 device --

fn rootfs_without_dev_tmpfs(c: &mut Case) {
    // The attack needs the image's own /dev, so no tmpfs over it.
    c.bundle.remove_mount("/dev");
    c.bundle.remove_mount("/dev/pts");
    c.bundle.remove_mount("/dev/shm");
    c.bundle.remove_mount("/dev/mqueue");
    c.config()["root"]["readonly"] = false.into();
}

#[test]
fn cve_2025_31133_fake_dev_null_file_is_not_used_for_masking() {
    let mut c = Case::new("sec_devnull_file");
    rootfs_without_dev_tmpfs(&mut c);
    fs::write(c.bundle.rootfs.host_path("/dev/null"), "LEAKED-FAKE-NULL\n").unwrap();
    let out = c.run_sh("cat /proc/timer_list | head -c 64; echo; stat -c '%t:%T' /proc/timer_list");
    if out.ok() {
        assert!(!out.stdout.contains("LEAKED-FAKE-NULL"), "masked with a regular file: {out}");
        assert_eq!(out.stdout.lines().last(), Some("1:3"), "{out}");
    } else {
        assert!(out.stderr.contains("/dev/null"), "refusal should name /dev/null: {out}");
    }
}

#[test]
fn cve_2025_31133_dev_null_symlink_to_core_pattern_is_not_used_for_masking() {
    let mut c = Case::new("sec_devnull_link");
    rootfs_without_dev_tmpfs(&mut c);
    let core = fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    symlink("/proc/sys/kernel/core_pattern", c.bundle.rootfs.host_path("/dev/null")).unwrap();
    let out = c.run_sh("stat -c '%F %t:%T' /proc/timer_list");
    assert_eq!(fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(), core);
    if out.ok() {
        assert_eq!(out.stdout.trim(), "character special file 1:3", "{out}");
    }
}

#[test]
fn cve_2025_31133_missing_dev_null_does_not_silently_unmask() {
    let mut c = Case::new("sec_devnull_missing");
    rootfs_without_dev_tmpfs(&mut c);
    let out = c.run_sh("wc -c < /proc/keys; stat -c '%t:%T' /proc/keys");
    if out.ok() {
        assert_eq!(out.stdout, "0\n1:3\n", "mask silently skipped: {out}");
    }
}

// CVE-2026-41579: /dev as a symlink out of the rootfs ------------------------

#[test]
fn cve_2026_41579_dev_symlink_does_not_populate_host() {
    for (n, rel) in [("abs", false), ("rel", true)] {
        let mut c = Case::new(&format!("sec_dev_link_{n}"));
        let canary = c.canary("hostcanary");
        let r = c.bundle.rootfs.host_path("/dev");
        fs::remove_dir(&r).unwrap();
        let target =
            if rel { format!("../../../../../../../..{}", canary.display()) } else { canary.display().to_string() };
        symlink(&target, &r).unwrap();
        c.config()["linux"]["devices"] =
            json!([{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666}]);
        let _ = c.run_sh("ls /dev");
        c.assert_canary_untouched(&canary);
        // And once more without the /dev tmpfs, where nodes go straight into the image's /dev.
        rootfs_without_dev_tmpfs(&mut c);
        let _ = c.run_sh("ls /dev");
        c.assert_canary_untouched(&canary);
    }
}

// CVE-2023-27561 / CVE-2019-19921: /proc or /sys as symlinks ----------------

#[test]
fn cve_2023_27561_proc_as_symlink_is_refused() {
    for (n, target) in [("abs", "/bad-proc"), ("rel", "../../proc")] {
        let mut c = Case::new(&format!("sec_proc_link_{n}"));
        let r = c.bundle.rootfs.host_path("/proc");
        fs::remove_dir(&r).unwrap();
        symlink(target, &r).unwrap();
        c.bundle.set_args(&["true"]);
        let out = c.create();
        out.expect_fail("create with /proc as a symlink");
        assert!(out.stderr.contains("proc"), "{out}");
        c.assert_no_leaks("after the refused /proc symlink");
    }
}

#[test]
fn cve_2023_27561_sys_as_symlink_is_refused() {
    let mut c = Case::new("sec_sys_link");
    let r = c.bundle.rootfs.host_path("/sys");
    fs::remove_dir(&r).unwrap();
    symlink("/bad-sys", &r).unwrap();
    c.bundle.set_args(&["true"]);
    let out = c.create();
    out.expect_fail("create with /sys as a symlink");
    assert!(out.stderr.contains("sys"), "{out}");
    c.assert_no_leaks("after the refused /sys symlink");
}

// CVE-2025-52881: /proc writes redirected by mounts over /proc ----------------

#[test]
fn cve_2025_52881_bind_over_proc_sys_with_sysctl_is_refused() {
    let mut c = Case::new("sec_proc_sys_bind");
    let canary = c.canary("fake-proc-sys-kernel");
    c.bundle.add_mount(
        json!({"destination": "/proc/sys/kernel", "type": "bind", "source": canary, "options": ["rbind", "rw"]}),
    );
    c.config()["linux"]["sysctl"] = json!({"kernel.msgmax": "4242"});
    let out = c.create();
    // First the escape itself: the sysctl write must not land in the host dir.
    c.assert_canary_untouched(&canary);
    out.expect_fail("a bind mount over /proc/sys with linux.sysctl");
    c.assert_no_leaks("after the refused /proc/sys bind");
}

// CVE-2025-52565: /dev/console --------------------------------------------

#[test]
fn cve_2025_52565_dev_console_symlink_is_replaced_by_the_pty() {
    let mut c = Case::new("sec_console_link");
    rootfs_without_dev_tmpfs(&mut c);
    c.bundle.add_mount(json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]}));
    let trigger = c.dir.join("sysrq-canary");
    fs::write(&trigger, "canary\n").unwrap();
    symlink(&trigger, c.bundle.rootfs.host_path("/dev/console")).unwrap();
    c.config()["process"]["terminal"] = true.into();
    c.bundle.set_sh("stat -c '%F %t' /dev/console; echo done");
    let (l, sock) = conformance::console::listen(&c.dir);
    // Keeps the master open so the container's writes do not fail.
    let t = std::thread::spawn(move || conformance::console::recv_fd(&l));
    let out = c.create_with(&["--console-socket", &sock]);
    if out.ok() {
        let master = t.join().unwrap();
        c.start().expect_ok("start");
        let s = conformance::console::read_until(master, "done");
        assert_eq!(s.lines().next(), Some("character special file 88"), "{s:?}");
    }
    assert_eq!(fs::read_to_string(&trigger).unwrap(), "canary\n", "write went through the /dev/console symlink");
}

// CVE-2022-29162: no inheritable capabilities unless asked -----------------

#[test]
fn cve_2022_29162_no_inheritable_caps_by_default() {
    let mut c = Case::new("sec_capinh");
    let out = c.sh_ok("grep CapInh /proc/self/status");
    assert_eq!(out.trim(), "CapInh:\t0000000000000000");
    c.config()["process"]["noNewPrivileges"] = false.into();
    c.config()["process"]["capabilities"]["inheritable"] = json!(["CAP_NET_RAW"]);
    c.config()["process"]["capabilities"]["bounding"] = json!(["CAP_NET_RAW", "CAP_KILL"]);
    let out = c.sh_ok("grep CapInh /proc/self/status");
    assert_eq!(out.trim(), "CapInh:\t0000000000002000");
}

// CVE-2023-25809: cgroup mounts are read-only --------------------------------

#[test]
fn cve_2023_25809_cgroup_mounts_are_read_only() {
    for cgroupns in [true, false] {
        let mut c = Case::new(&format!("sec_cg_ro_{cgroupns}"));
        if !cgroupns {
            c.bundle.remove_namespace("cgroup");
        }
        let out = c.sh_ok("grep ' /sys/fs/cgroup' /proc/mounts; for d in /sys/fs/cgroup/memory /sys/fs/cgroup/pids /sys/fs/cgroup/unified; do touch $d/x 2>&1 | grep -q 'Read-only' && echo $d RO; done; true");
        let mounts: Vec<&str> = out.lines().filter(|l| l.contains(" /sys/fs/cgroup")).collect();
        assert!(!mounts.is_empty(), "no cgroup mounts: {out}");
        for m in mounts {
            let opts: Vec<&str> = m.split(' ').nth(3).unwrap().split(',').collect();
            assert!(opts.contains(&"ro"), "cgroupns={cgroupns}: writable cgroup mount: {m}");
        }
        for d in ["memory", "pids"] {
            assert!(out.contains(&format!("/sys/fs/cgroup/{d} RO")), "cgroupns={cgroupns}: {d} not EROFS: {out}");
        }
    }
}
