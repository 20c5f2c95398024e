//! config.json `linux.seccomp`: every action, errnoRet and defaultErrnoRet, argument
//! conditions with every operator, architectures, flags, and SCMP_ACT_NOTIFY with a real
//! agent on `listenerPath`. Each profile is checked by what the container observed; the
//! `each_runtime` tests run the same profile under berth, runc and crun and expect the same.

use conformance::{each_runtime, each_runtime_but, Case};
use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags};
use serde_json::{json, Value};
use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// 128 + SIGSYS: how `run` reports a process the filter killed or trapped.
const SIGSYS_EXIT: i32 = 159;
const MKDIR: &str = "mkdir /dev/shm/x";

fn allow_except(rules: Value) -> Value {
    json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules})
}

fn set_profile(c: &mut Case, profile: Value) {
    c.config()["linux"]["seccomp"] = profile;
}

fn mkdir_rule(action: &str) -> Value {
    json!({"names": ["mkdir", "mkdirat"], "action": action})
}

#[test]
fn errno_action_returns_errno_ret() {
    each_runtime("sc_errno", |c, rt| {
        let mut rule = mkdir_rule("SCMP_ACT_ERRNO");
        rule["errnoRet"] = json!(libc::EIO);
        set_profile(c, allow_except(json!([rule])));
        let out = c.run_sh(&format!("{MKDIR} 2>&1; echo rc=$?; grep '^Seccomp:' /proc/self/status"));
        out.expect_ok(rt);
        assert!(out.stdout.contains("Input/output error"), "{rt}: {out}");
        assert!(out.stdout.contains("rc=1"), "{rt}: {out}");
        assert!(out.stdout.contains("Seccomp:\t2"), "{rt}: {out}");
    });
}

#[test]
fn errno_action_without_errno_ret_returns_eperm() {
    each_runtime("sc_eperm", |c, rt| {
        set_profile(c, allow_except(json!([mkdir_rule("SCMP_ACT_ERRNO")])));
        let out = c.run_sh(&format!("{MKDIR} 2>&1"));
        assert!(out.stdout.contains("Operation not permitted"), "{rt}: {out}");
    });
}

/// The syscalls busybox's sh, echo and mkdir need, and what the runtimes' inits still do
/// after loading the filter, for allow-list profiles.
const BASE_ALLOW: &[&str] = &[
    "read",
    "write",
    "readv",
    "writev",
    "close",
    "close_range",
    "fstat",
    "newfstatat",
    "stat",
    "lstat",
    "statx",
    "lseek",
    "mmap",
    "munmap",
    "mprotect",
    "brk",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "ioctl",
    "access",
    "faccessat",
    "faccessat2",
    "getpid",
    "getppid",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "getpgrp",
    "getpgid",
    "setpgid",
    "getcwd",
    "chdir",
    "fchdir",
    "open",
    "openat",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "wait4",
    "waitid",
    "clone",
    "clone3",
    "fork",
    "vfork",
    "fcntl",
    "dup",
    "dup2",
    "dup3",
    "pipe",
    "pipe2",
    "arch_prctl",
    "set_tid_address",
    "set_robust_list",
    "rseq",
    "prlimit64",
    "getrandom",
    "uname",
    "futex",
    "readlink",
    "readlinkat",
    "sendto",
    "sendmsg",
    "recvfrom",
    "recvmsg",
    "accept",
    "accept4",
    "getdents64",
    "sysinfo",
    "gettid",
    "tgkill",
    "kill",
    "sched_getaffinity",
    "sched_yield",
    "nanosleep",
    "clock_nanosleep",
    "clock_gettime",
    "gettimeofday",
    "umask",
    "capget",
    "capset",
    "prctl",
    "setgroups",
    "setresuid",
    "setresgid",
    "setuid",
    "setgid",
    "socket",
    "connect",
    "poll",
    "ppoll",
    "select",
    "pselect6",
    "epoll_create1",
    "epoll_ctl",
    "epoll_wait",
    "epoll_pwait",
    "fsync",
    "fstatfs",
    "statfs",
    "getsockname",
    "getpeername",
    "setsockopt",
    "getsockopt",
    "shutdown",
    "madvise",
    "mremap",
    "sigaltstack",
    "pidfd_open",
    "pidfd_send_signal",
    "keyctl",
    "setsid",
    "fchown",
    "fchmod",
    "fchmodat",
    "chown",
    "fchownat",
    "unlink",
    "unlinkat",
    "openat2",
    "seccomp",
];

#[test]
fn allow_list_with_default_errno_ret() {
    each_runtime("sc_allowlist", |c, rt| {
        set_profile(
            c,
            json!({
                "defaultAction": "SCMP_ACT_ERRNO",
                "defaultErrnoRet": libc::EROFS,
                "syscalls": [{"names": BASE_ALLOW, "action": "SCMP_ACT_ALLOW"}]
            }),
        );
        let out = c.run_sh(&format!("echo listed-works; {MKDIR} 2>&1"));
        assert!(out.stdout.contains("listed-works"), "{rt}: {out}");
        assert!(out.stdout.contains("Read-only file system"), "{rt}: {out}");
    });
}

#[test]
fn kill_kill_process_kill_thread_and_trap_end_the_process_by_sigsys() {
    for action in ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP"] {
        let name = format!("sc_{}", action.trim_start_matches("SCMP_ACT_").to_lowercase());
        each_runtime(&name, |c, rt| {
            set_profile(c, allow_except(json!([mkdir_rule(action)])));
            c.bundle.set_args(&["mkdir", "/dev/shm/x"]);
            let out = c.run();
            assert_eq!(out.code, SIGSYS_EXIT, "{rt} {action}: {out}");
        });
    }
}

#[test]
fn log_action_allows_the_syscall() {
    each_runtime("sc_log", |c, rt| {
        set_profile(c, allow_except(json!([mkdir_rule("SCMP_ACT_LOG")])));
        let out = c.run_sh(&format!("{MKDIR} && test -d /dev/shm/x && echo made"));
        out.expect_ok(rt);
        assert_eq!(out.stdout, "made\n", "{rt}");
    });
}

#[test]
fn trace_action_without_a_tracer_fails_with_enosys() {
    each_runtime("sc_trace", |c, rt| {
        let mut rule = mkdir_rule("SCMP_ACT_TRACE");
        rule["errnoRet"] = json!(libc::EIO);
        set_profile(c, allow_except(json!([rule])));
        let out = c.run_sh(&format!("{MKDIR} 2>&1"));
        assert!(out.stdout.contains("Function not implemented"), "{rt}: {out}");
    });
}

#[test]
fn rule_with_the_default_action_is_accepted() {
    each_runtime("sc_redundant", |c, rt| {
        set_profile(
            c,
            allow_except(json!([{"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}, mkdir_rule("SCMP_ACT_ERRNO")])),
        );
        let out = c.run_sh(&format!("{MKDIR} 2>&1"));
        assert!(out.stdout.contains("Operation not permitted"), "{rt}: {out}");
    });
}

/// Sends each signal number of `sigs` to a `sleep` child with the shell's kill builtin
/// (kill(2)) and prints "<sig>:ok" or "<sig>:blocked".
fn probe_kill(c: &mut Case, sigs: &[u32]) -> String {
    let list: Vec<String> = sigs.iter().map(u32::to_string).collect();
    let script = format!(
        "sleep 100 & p=$!; for s in {}; do if kill -$s $p 2>/dev/null; then echo $s:ok; else echo $s:blocked; fi; done",
        list.join(" ")
    );
    c.sh_ok(&script)
}

/// Signal numbers whose default action is to ignore or continue (so `sleep` survives):
/// 0 (probe), SIGCHLD 17, SIGCONT 18, SIGURG 23, SIGWINCH 28.
const SIGS: [u32; 5] = [0, 17, 18, 23, 28];

fn blocked(out: &str) -> Vec<u32> {
    out.lines().filter_map(|l| l.strip_suffix(":blocked")).filter_map(|n| n.parse().ok()).collect()
}

#[test]
fn every_operator_compares_the_argument() {
    let cases: [(&str, Value, &[u32]); 7] = [
        ("ne", json!({"index": 1, "value": 0, "op": "SCMP_CMP_NE"}), &[17, 18, 23, 28]),
        ("lt", json!({"index": 1, "value": 18, "op": "SCMP_CMP_LT"}), &[0, 17]),
        ("le", json!({"index": 1, "value": 18, "op": "SCMP_CMP_LE"}), &[0, 17, 18]),
        ("eq", json!({"index": 1, "value": 18, "op": "SCMP_CMP_EQ"}), &[18]),
        ("ge", json!({"index": 1, "value": 23, "op": "SCMP_CMP_GE"}), &[23, 28]),
        ("gt", json!({"index": 1, "value": 23, "op": "SCMP_CMP_GT"}), &[28]),
        // value is the mask, valueTwo what the masked argument must equal: 17 = 0b10001.
        ("masked_eq", json!({"index": 1, "value": 3, "valueTwo": 1, "op": "SCMP_CMP_MASKED_EQ"}), &[17]),
    ];
    for (name, arg, want) in cases {
        each_runtime(&format!("sc_op_{name}"), |c, rt| {
            set_profile(c, allow_except(json!([{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [arg]}])));
            let out = probe_kill(c, &SIGS);
            assert_eq!(blocked(&out), want, "{rt} {name}: {out}");
        });
    }
}

#[test]
fn conditions_on_different_arguments_all_have_to_match() {
    each_runtime("sc_and", |c, rt| {
        // Blocks kill(pid, 18) only for pid 1 (the shell itself, which ignores SIGCONT).
        set_profile(
            c,
            allow_except(json!([{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [
            {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
            {"index": 1, "value": 18, "op": "SCMP_CMP_EQ"}]}])),
        );
        let out = c.sh_ok(
            "sleep 100 & p=$!; for t in \"1 18\" \"1 28\" \"$p 18\"; do set -- $t; \
             if kill -$2 $1 2>/dev/null; then echo $1/$2:ok; else echo $1/$2:blocked; fi; done",
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "1/18:blocked", "{rt}: {out}");
        assert_eq!(lines[1], "1/28:ok", "{rt}: {out}");
        assert!(lines[2].ends_with("/18:ok"), "{rt}: {out}");
    });
}

#[test]
fn several_conditions_on_one_argument_each_match_on_their_own() {
    // runc's rule, which Docker's profile relies on: each becomes a rule (OR), where
    // AND would never match.
    each_runtime("sc_same_arg", |c, rt| {
        set_profile(
            c,
            allow_except(json!([{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [
            {"index": 1, "value": 17, "op": "SCMP_CMP_EQ"},
            {"index": 1, "value": 28, "op": "SCMP_CMP_EQ"}]}])),
        );
        let out = probe_kill(c, &SIGS);
        assert_eq!(blocked(&out), [17, 28], "{rt}: {out}");
    });
}

#[test]
fn masked_eq_on_open_flags_blocks_writes_only() {
    // runc's init opens its exec fifo write-only after loading the filter, so it cannot
    // start under this profile.
    each_runtime_but(&["runc"], "sc_open_wronly", |c, rt| {
        let wronly = |index: u32| json!({"index": index, "value": libc::O_ACCMODE, "valueTwo": libc::O_WRONLY, "op": "SCMP_CMP_MASKED_EQ"});
        set_profile(
            c,
            allow_except(json!([
            {"names": ["open"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EACCES, "args": [wronly(1)]},
            {"names": ["openat"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EACCES, "args": [wronly(2)]}])),
        );
        let out = c.run_sh("head -c 4 /etc/passwd; echo; echo x > /dev/shm/f 2>&1 || echo write-refused");
        assert!(out.stdout.starts_with("root"), "{rt}: {out}");
        assert!(out.stdout.contains("write-refused") || out.stderr.contains("Permission denied"), "{rt}: {out}");
        assert!(!c.bundle.rootfs.host_path("/dev/shm/f").exists());
    });
}

#[test]
fn socket_family_condition_blocks_inet_but_not_netlink() {
    each_runtime("sc_socket", |c, rt| {
        set_profile(
            c,
            allow_except(json!([{"names": ["socket"], "action": "SCMP_ACT_ERRNO",
            "args": [{"index": 0, "value": libc::AF_INET, "op": "SCMP_CMP_EQ"}]}])),
        );
        let out = c.run_sh("nc 127.0.0.1 1 </dev/null 2>&1; ip link show lo >/dev/null && echo netlink-ok");
        assert!(out.stdout.contains("Operation not permitted"), "{rt}: {out}");
        assert!(out.stdout.contains("netlink-ok"), "{rt}: {out}");
    });
}

#[test]
fn architectures_x86_64_x86_x32_are_accepted_and_rules_apply() {
    each_runtime("sc_arch", |c, rt| {
        let mut p = allow_except(json!([mkdir_rule("SCMP_ACT_ERRNO")]));
        p["architectures"] = json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]);
        set_profile(c, p);
        let out = c.run_sh(&format!("{MKDIR} 2>&1"));
        assert!(out.stdout.contains("Operation not permitted"), "{rt}: {out}");
    });
}

#[test]
fn flags_log_tsync_spec_allow_are_accepted() {
    // runc 1.1 does not know TSYNC; crun 1.8 does not know it either.
    for flag in ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC"] {
        let mut c = Case::new(&format!("sc_flag_{}", flag.trim_start_matches("SECCOMP_FILTER_FLAG_").to_lowercase()));
        let mut p = allow_except(json!([mkdir_rule("SCMP_ACT_ERRNO")]));
        p["flags"] = json!([flag]);
        set_profile(&mut c, p);
        let out = c.run_sh(&format!("{MKDIR} 2>&1"));
        assert!(out.stdout.contains("Operation not permitted"), "{flag}: {out}");
    }
}

// runc 1.3's seccomp.bats "SECCOMP_FILTER_FLAG_*": the flags a config's `flags` gives,
// read from the debug line both runtimes print. TSYNC adds nothing (the processes are
// single-threaded); without `flags` SPEC_ALLOW is set where the kernel has it (runc 1.2).
#[test]
fn seccomp_flags_loaded_are_the_configs_as_the_debug_line_says() {
    each_runtime_but(&["runc<1.3", "crun"], "sc_flags_debug", |c, rt| {
        let features: Value = serde_json::from_str(&c.rt.exec(&["features"]).stdout).expect("features JSON");
        let spec_allow = features["linux"]["seccomp"]["supportedFlags"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f == "SECCOMP_FILTER_FLAG_SPEC_ALLOW"));
        c.rt.globals = vec!["--debug".into()];
        for (flags, want) in [
            (None, if spec_allow { 4 } else { 0 }),
            (Some(json!([])), 0),
            (Some(json!(["SECCOMP_FILTER_FLAG_LOG"])), 2),
            (Some(json!(["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG"])), 2),
        ] {
            let mut p = allow_except(json!([mkdir_rule("SCMP_ACT_ERRNO")]));
            if let Some(f) = &flags {
                p["flags"] = f.clone();
            }
            set_profile(c, p);
            let out = c.run_sh(&format!("{MKDIR} 2>&1"));
            assert!(out.stdout.contains("Operation not permitted"), "{rt} {flags:?}: {out}");
            assert!(out.stderr.contains(&format!("seccomp filter flags: {want}\"")), "{rt} {flags:?}: {out}");
        }
    });
}

#[test]
fn unknown_syscall_names_are_skipped() {
    each_runtime("sc_unknown_name", |c, rt| {
        set_profile(
            c,
            allow_except(json!([{"names": ["no_such_syscall_xyz", "mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}])),
        );
        let out = c.run_sh(&format!("{MKDIR} 2>&1; echo ran"));
        out.expect_ok(rt);
        assert!(out.stdout.contains("Operation not permitted"), "{rt}: {out}");
    });
}

#[test]
fn no_new_privileges_false_still_loads_the_filter_before_dropping_capabilities() {
    each_runtime("sc_nnp_false", |c, rt| {
        c.config()["process"]["noNewPrivileges"] = json!(false);
        c.config()["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        set_profile(c, allow_except(json!([mkdir_rule("SCMP_ACT_ERRNO")])));
        let out = c.run_sh(&format!("id -u; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; {MKDIR} 2>&1"));
        assert!(out.stdout.starts_with("1000\n"), "{rt}: {out}");
        assert!(out.stdout.contains("NoNewPrivs:\t0"), "{rt}: {out}");
        assert!(out.stdout.contains("Seccomp:\t2"), "{rt}: {out}");
        assert!(out.stdout.contains("Operation not permitted"), "{rt}: {out}");
    });
}

// What the runtime does after loading the filter (issue 10, "seccomp order").

/// A profile like the OCI runtime-tools suite's default (an allow-list without
/// `close_range`), also without `fcntl` (the fallback for marking fds close-on-exec) and
/// `getcwd` (the check that the cwd is inside the root): the runtime must not need any of
/// them once the filter is loaded, with or without no_new_privs.
#[test]
fn filter_without_close_range_fcntl_getcwd_does_not_stop_the_runtime() {
    for nnp in [false, true] {
        // Debian's runc 1.1.5 (with the CVE-2024-21626 fix) calls getcwd after its filter.
        each_runtime_but(&["runc"], &format!("sc_order_nnp_{nnp}"), |c, rt| {
            let allowed: Vec<&str> =
                BASE_ALLOW.iter().copied().filter(|n| !["close_range", "fcntl", "getcwd"].contains(n)).collect();
            set_profile(
                c,
                json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": allowed, "action": "SCMP_ACT_ALLOW"}]}),
            );
            c.config()["process"]["noNewPrivileges"] = json!(nnp);
            c.bundle.set_args(&["echo", "filtered-and-running"]);
            let out = c.run();
            out.expect_ok(&format!("{rt} noNewPrivileges={nnp}"));
            assert_eq!(out.stdout, "filtered-and-running\n", "{rt} noNewPrivileges={nnp}: {out}");
        });
    }
}

/// A profile that only denies `getcwd`: the cwd check must not run under it (berth used to
/// report "process.cwd /: is outside the container's root").
#[test]
fn filter_denying_getcwd_leaves_the_cwd_check_alone() {
    for nnp in [false, true] {
        // Debian's runc 1.1.5 (with the CVE-2024-21626 fix) calls getcwd after its filter.
        each_runtime_but(&["runc"], &format!("sc_getcwd_nnp_{nnp}"), |c, rt| {
            set_profile(c, allow_except(json!([{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}])));
            c.config()["process"]["noNewPrivileges"] = json!(nnp);
            c.config()["process"]["cwd"] = json!("/tmp");
            c.bundle.set_args(&["readlink", "/proc/self/cwd"]);
            let out = c.run();
            out.expect_ok(&format!("{rt} noNewPrivileges={nnp}"));
            assert_eq!(out.stdout, "/tmp\n", "{rt} noNewPrivileges={nnp}: {out}");
        });
    }
}

// ENOSYS for syscalls the profile does not know (issue 10, as runc's patchbpf).

/// `sc NR...` makes each raw syscall with zero arguments and prints `NR=RET`, RET being
/// -errno on failure. No libc, so it runs in the busybox rootfs.
const SYSCALL_HELPER: &str = r#"
static long sys3(long n, long a, long b, long c) {
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}
void cmain(long *sp) {
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    for (long i = 1; i < argc; i++) {
        char buf[64], digits[24];
        int k = 0, n = 0;
        long nr = 0;
        for (const char *s = argv[i]; *s >= '0' && *s <= '9' && k < 20; s++, k++) {
            nr = nr * 10 + (*s - '0');
            buf[k] = *s;
        }
        long r = sys3(nr, 0, 0, 0);
        buf[k++] = '=';
        if (r < 0) buf[k++] = '-';
        unsigned long u = r < 0 ? -r : r;
        do { digits[n++] = '0' + u % 10; u /= 10; } while (u);
        while (n) buf[k++] = digits[--n];
        buf[k++] = '\n';
        sys3(1, 1, (long)buf, k);
    }
    sys3(231, 0, 0, 0);
}
__asm__(".globl _start\n_start:\n mov %rsp, %rdi\n and $-16, %rsp\n call cmain\n hlt\n");
"#;

/// Builds the helper into the case's rootfs as /bin/sc.
fn install_syscall_helper(c: &Case) {
    let src = c.dir.join("sc.c");
    std::fs::write(&src, SYSCALL_HELPER).expect("write sc.c");
    let out = std::process::Command::new("gcc")
        .args(["-nostdlib", "-static", "-fno-pie", "-no-pie", "-O1", "-fno-builtin", "-fno-stack-protector"])
        .args(["-fno-asynchronous-unwind-tables", "-o"])
        .arg(c.bundle.rootfs.host_path("/bin/sc"))
        .arg(&src)
        .output()
        .expect("gcc (build-essential) is needed for the syscall helper");
    assert!(out.status.success(), "gcc: {}", String::from_utf8_lossy(&out.stderr));
}

/// Docker's list: x32 and i386 calls are bounded too.
const DOCKER_ARCHES: [&str; 3] = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"];

#[test]
fn syscalls_above_the_highest_the_profile_names_get_enosys() {
    // x86-64 numbers: 1000 and 445 (landlock_add_rule) are above 444
    // (landlock_create_ruleset), the highest the profile names, which it denies with EIO;
    // 145 (sched_getscheduler) is named and denied; 140 (getpriority) is not named and
    // below: the default action; 39 (getpid) is allowed.
    let check = |c: &mut Case, rt: &str, arches: Option<&[&str]>| {
        install_syscall_helper(c);
        let mut profile = json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": BASE_ALLOW, "action": "SCMP_ACT_ALLOW"},
            {"names": ["sched_getscheduler", "landlock_create_ruleset"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EIO},
        ]});
        if let Some(a) = arches {
            profile["architectures"] = json!(a);
        }
        set_profile(c, profile);
        c.bundle.set_args(&["/bin/sc", "1000", "445", "444", "145", "140", "39"]);
        let out = c.run();
        out.expect_ok(rt);
        let got: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(got[..5], ["1000=-38", "445=-38", "444=-5", "145=-5", "140=-1"], "{rt} {arches:?}: {out}");
        assert!(got.get(5).is_some_and(|l| l.starts_with("39=") && !l.starts_with("39=-")), "{rt}: {out}");
    };
    // crun 1.8 has no such stub: the default action applies.
    each_runtime_but(&["crun"], "sc_enosys", |c, rt| check(c, rt, Some(&DOCKER_ARCHES)));
    // Without `architectures` the native one is bounded: runc since 1.1.15 (ccc500c4), not
    // the 1.1.5 here.
    each_runtime_but(&["runc", "crun"], "sc_enosys_native", |c, rt| check(c, rt, None));
}

/// The stub is for the default action only: a KILL default turns into ENOSYS above the
/// highest named syscall (runc's rule), and with a permissive default (ALLOW) nothing
/// changes.
#[test]
fn enosys_stub_follows_the_default_action() {
    // crun 1.8 has no such stub: its filter kills the process.
    each_runtime_but(&["crun"], "sc_enosys_default", |c, rt| {
        install_syscall_helper(c);
        set_profile(
            c,
            json!({"defaultAction": "SCMP_ACT_KILL_PROCESS", "architectures": DOCKER_ARCHES, "syscalls": [
            {"names": BASE_ALLOW, "action": "SCMP_ACT_ALLOW"}]}),
        );
        c.bundle.set_args(&["/bin/sc", "1000"]);
        let out = c.run();
        out.expect_ok(rt);
        assert_eq!(out.stdout, "1000=-38\n", "{rt}: {out}");
    });
    each_runtime("sc_enosys_allow", |c, rt| {
        install_syscall_helper(c);
        let mut p =
            allow_except(json!([{"names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EIO}]));
        p["architectures"] = json!(DOCKER_ARCHES);
        set_profile(c, p);
        c.bundle.set_args(&["/bin/sc", "140", "1000"]);
        let out = c.run();
        out.expect_ok(rt);
        assert_eq!(out.stdout, "140=-5\n1000=-38\n", "{rt}: {out}");
    });
}

// SCMP_ACT_NOTIFY: an agent on listenerPath receives the listener and answers.

struct Agent {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    state: mpsc::Receiver<Value>,
    thread: Option<JoinHandle<Vec<String>>>,
}

impl Agent {
    /// Listens on `<dir>/agent.sock`; every notification is answered by `answer`.
    fn spawn(dir: &Path, answer: fn(&ScmpNotifReq) -> ScmpNotifResp) -> Agent {
        let path = dir.join("agent.sock");
        let listener = UnixListener::bind(&path).expect("bind agent socket");
        listener.set_nonblocking(true).expect("nonblocking agent socket");
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, state) = mpsc::channel();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || serve(listener, &flag, &tx, answer));
        Agent { path, stop, state, thread: Some(thread) }
    }

    fn state(&self) -> Value {
        self.state.recv_timeout(Duration::from_secs(30)).expect("the agent received no process state")
    }

    /// Stops the agent; returns the names of the syscalls it answered.
    fn finish(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().map(|t| t.join().expect("agent thread")).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn poll_in(fd: RawFd, ms: i32) -> i16 {
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut p, 1, ms) };
    if n <= 0 {
        0
    } else {
        p.revents
    }
}

fn serve(
    listener: UnixListener,
    stop: &AtomicBool,
    tx: &mpsc::Sender<Value>,
    answer: fn(&ScmpNotifReq) -> ScmpNotifResp,
) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let conn = loop {
        if stop.load(Ordering::SeqCst) || Instant::now() > deadline {
            return Vec::new();
        }
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    conn.set_nonblocking(false).expect("blocking connection");
    let mut buf = vec![0u8; 64 * 1024];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = nix::sys::socket::recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        nix::sys::socket::MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .expect("recvmsg from the runtime");
    let mut fd = None;
    for c in msg.cmsgs().expect("cmsgs") {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: received with SCM_RIGHTS: ours now.
            fd = fds.first().map(|&f| unsafe { OwnedFd::from_raw_fd(f) });
        }
    }
    let n = msg.bytes;
    // The runtime may send the rest of the JSON in more writes (the spec allows it), and
    // need not close the connection at once.
    let mut data = buf[..n].to_vec();
    let state: Value = loop {
        if let Ok(v) = serde_json::from_slice(&data) {
            break v;
        }
        let mut more = [0u8; 4096];
        match std::io::Read::read(&mut &conn, &mut more) {
            Ok(0) | Err(_) => panic!("incomplete process state: {}", String::from_utf8_lossy(&data)),
            Ok(k) => data.extend_from_slice(&more[..k]),
        }
    };
    let fd = fd.expect("no fd came with the process state");
    let _ = tx.send(state);
    let mut answered = Vec::new();
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        let ev = poll_in(fd.as_raw_fd(), 50);
        if ev & libc::POLLIN != 0 {
            let Ok(req) = ScmpNotifReq::receive(fd.as_raw_fd()) else { continue };
            answered.push(req.data.syscall.get_name().unwrap_or_default());
            let _ = answer(&req).respond(fd.as_raw_fd());
        } else if ev & (libc::POLLHUP | libc::POLLERR) != 0 {
            break;
        }
    }
    answered
}

fn notify_profile(agent: &Agent, metadata: &str) -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": agent.path,
        "listenerMetadata": metadata,
        "syscalls": [mkdir_rule("SCMP_ACT_NOTIFY")]
    })
}

#[test]
fn notify_sends_listener_and_state_and_the_container_sees_the_agents_fake_success() {
    // crun 1.8 never finishes `create` with this profile (it waits in poll).
    each_runtime_but(&["crun"], "sc_notify_ok", |c, rt| {
        let agent = Agent::spawn(&c.dir, |req| ScmpNotifResp::new_val(req.id, 0, ScmpNotifRespFlags::empty()));
        set_profile(c, notify_profile(&agent, "agent-metadata"));
        c.config()["annotations"] = json!({"seccomp.test": "yes"});
        c.bundle.set_sh(&format!("{MKDIR} && echo made; test -d /dev/shm/x && echo exists || echo absent"));
        c.create().expect_ok(&format!("{rt} create"));
        let state = agent.state();
        let pid = c.state()["pid"].clone();
        assert_eq!(state["fds"], json!(["seccompFd"]), "{rt}: {state}");
        assert_eq!(state["metadata"], "agent-metadata", "{rt}: {state}");
        assert_eq!(state["pid"], pid, "{rt}: {state}");
        assert!(state["ociVersion"].is_string(), "{rt}: {state}");
        assert_eq!(state["state"]["id"], c.id.as_str(), "{rt}: {state}");
        assert_eq!(state["state"]["pid"], pid, "{rt}: {state}");
        assert_eq!(state["state"]["annotations"]["seccomp.test"], "yes", "{rt}: {state}");
        c.start().expect_ok("start");
        c.wait_status(&c.id, "stopped");
        assert_eq!(c.output(), "made\nabsent\n", "{rt}");
        c.rt.delete(&c.id).expect_ok("delete");
        let answered = agent.finish();
        assert!(answered.iter().any(|s| s.starts_with("mkdir")), "{rt}: agent answered {answered:?}");
    });
}

#[test]
fn notify_agent_error_reaches_the_container() {
    // crun 1.8 never finishes `create` with this profile (it waits in poll).
    each_runtime_but(&["crun"], "sc_notify_err", |c, rt| {
        let agent =
            Agent::spawn(&c.dir, |req| ScmpNotifResp::new_error(req.id, -libc::ENOSPC, ScmpNotifRespFlags::empty()));
        set_profile(c, notify_profile(&agent, ""));
        let out = c.run_sh(&format!("{MKDIR} 2>&1; echo done"));
        assert!(out.stdout.contains("No space left on device"), "{rt}: {out}");
        assert!(out.stdout.contains("done"), "{rt}: {out}");
        assert!(agent.finish().iter().any(|s| s.starts_with("mkdir")), "{rt}");
    });
}

// exec: the container's filter binds every process in it.

fn exec(c: &Case, args: &[&str]) -> conformance::Out {
    c.rt.cmd().arg("exec").arg(&c.id).args(args.iter().copied()).run()
}

#[test]
fn exec_process_gets_the_containers_filter() {
    each_runtime("sc_exec", |c, rt| {
        set_profile(c, allow_except(json!([mkdir_rule("SCMP_ACT_ERRNO")])));
        c.bundle.set_args(&["sleep", "1000"]);
        c.create().expect_ok(&format!("{rt} create"));
        c.start().expect_ok("start");
        let out = exec(c, &["sh", "-c", &format!("grep '^Seccomp:' /proc/self/status; {MKDIR} 2>&1")]);
        assert!(out.stdout.contains("Seccomp:\t2"), "{rt}: {out}");
        assert!(out.stdout.contains("Operation not permitted"), "{rt}: {out}");
    });
}

#[test]
fn exec_notify_listener_reaches_the_agent_with_the_exec_pid() {
    // crun 1.8 never finishes `create` with a NOTIFY profile (see above).
    each_runtime_but(&["crun"], "sc_exec_notify", |c, rt| {
        let agent = Agent::spawn(&c.dir, |req| ScmpNotifResp::new_val(req.id, 0, ScmpNotifRespFlags::empty()));
        set_profile(c, notify_profile(&agent, "exec-meta"));
        c.bundle.set_args(&["sleep", "1000"]);
        c.create().expect_ok(&format!("{rt} create"));
        let init_state = agent.state();
        c.start().expect_ok("start");
        drop(agent);
        // A second agent on the same path gets the exec'd process's listener.
        let _ = std::fs::remove_file(c.dir.join("agent.sock"));
        let agent =
            Agent::spawn(&c.dir, |req| ScmpNotifResp::new_error(req.id, -libc::EXDEV, ScmpNotifRespFlags::empty()));
        let pidfile = c.dir.join("exec.pid");
        let out =
            c.rt.cmd()
                .arg("exec")
                .arg("--pid-file")
                .arg(&pidfile)
                .arg(&c.id)
                .args(["sh", "-c", &format!("{MKDIR} 2>&1; echo done")])
                .run();
        let state = agent.state();
        assert!(out.stdout.contains("Invalid cross-device link"), "{rt}: {out}");
        let exec_pid: i64 = std::fs::read_to_string(&pidfile).unwrap_or_default().trim().parse().unwrap_or(-1);
        assert_eq!(state["pid"], exec_pid, "{rt}: {state}");
        assert_eq!(state["state"]["pid"], init_state["pid"], "{rt}: {state}");
        assert_eq!(state["state"]["status"], "running", "{rt}: {state}");
        assert_eq!(state["metadata"], "exec-meta", "{rt}: {state}");
    });
}

// B22: bad profiles fail create with one line naming the field, leaving nothing behind.

#[test]
fn b22_unknown_action_operator_arch_flag_name_the_field() {
    let cases = [
        (
            "action",
            allow_except(
                json!([{"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}, {"names": ["mkdir"], "action": "SCMP_ACT_FOO"}]),
            ),
            "linux.seccomp.syscalls[1].action",
        ),
        ("default", json!({"defaultAction": "SCMP_ACT_BAR"}), "linux.seccomp.defaultAction"),
        (
            "op",
            allow_except(
                json!([{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_XX"}]}]),
            ),
            "linux.seccomp.syscalls[0].args[0].op",
        ),
        (
            "arch",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_Z80"]}),
            "linux.seccomp.architectures[1]",
        ),
        (
            "flag",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_NOPE"]}),
            "linux.seccomp.flags[0]",
        ),
        (
            "errno_on_allow",
            allow_except(json!([{"names": ["mkdir"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}])),
            "linux.seccomp.syscalls[0].errnoRet",
        ),
        (
            "notify_default",
            json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/nonexistent.sock"}),
            "linux.seccomp.defaultAction",
        ),
        ("notify_no_path", allow_except(json!([mkdir_rule("SCMP_ACT_NOTIFY")])), "linux.seccomp.syscalls[0].action"),
        (
            "arg_index",
            allow_except(
                json!([{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]),
            ),
            "linux.seccomp.syscalls[0].args[0].index",
        ),
    ];
    for (name, profile, field) in cases {
        let mut c = Case::new(&format!("b22_{name}"));
        set_profile(&mut c, profile);
        let out = c.expect_create_fails(&[field]);
        assert!(out.stderr.contains(field), "{name}: {out}");
    }
}

#[test]
fn b22_unsupported_flag_is_an_error_naming_it() {
    // libseccomp 2.5 cannot set WAIT_KILLABLE_RECV (2.6 can); features says which.
    let features: Value =
        serde_json::from_str(&Case::new("b22_feat").rt.exec(&["features"]).stdout).expect("features JSON");
    let supported = features["linux"]["seccomp"]["supportedFlags"].as_array().cloned().unwrap_or_default();
    let flag = "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV";
    let mut c = Case::new("b22_waitkill");
    let mut p = allow_except(json!([mkdir_rule("SCMP_ACT_ERRNO")]));
    p["flags"] = json!([flag]);
    set_profile(&mut c, p);
    if supported.iter().any(|f| f == flag) {
        c.run_sh("true").expect_ok("a supported flag");
    } else {
        c.expect_create_fails(&["linux.seccomp.flags[0]"]);
    }
}

#[test]
fn b22_listener_path_to_nothing_fails_create_and_leaves_nothing() {
    for (name, path) in [("file", None), ("abstract", Some("@berth-test-nobody-listens"))] {
        let mut c = Case::new(&format!("b22_listener_{name}"));
        let path = path.map(PathBuf::from).unwrap_or_else(|| c.dir.join("nobody.sock"));
        set_profile(
            &mut c,
            json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": path,
            "syscalls": [mkdir_rule("SCMP_ACT_NOTIFY")]}),
        );
        c.expect_create_fails(&["listenerPath", "seccomp agent"]);
    }
}

#[test]
fn features_report_seccomp() {
    let c = Case::new("sc_features");
    let f: Value = serde_json::from_str(&c.rt.exec(&["features"]).stdout).expect("features JSON");
    let s = &f["linux"]["seccomp"];
    assert_eq!(s["enabled"], true, "{s}");
    for a in [
        "SCMP_ACT_ALLOW",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_LOG",
        "SCMP_ACT_NOTIFY",
        "SCMP_ACT_TRACE",
        "SCMP_ACT_TRAP",
    ] {
        assert!(s["actions"].as_array().unwrap().iter().any(|x| x == a), "{a}: {s}");
    }
    assert_eq!(s["operators"].as_array().map(Vec::len), Some(7), "{s}");
    for a in ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"] {
        assert!(s["archs"].as_array().unwrap().iter().any(|x| x == a), "{a}: {s}");
    }
    for f in ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"] {
        assert!(s["supportedFlags"].as_array().unwrap().iter().any(|x| x == f), "{f}: {s}");
        assert!(s["knownFlags"].as_array().unwrap().iter().any(|x| x == f), "{f}: {s}");
    }
}

/// How much of a process's file mappings is resident, in KiB (Rss less the anonymous part;
/// not PSS, which other berth processes mapping the same binary would divide).
fn rss_file_kib(pid: i64) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).expect("smaps_rollup of the init");
    let field = |name: &str| -> u64 {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} in {text}"));
        line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("a number of KiB")
    };
    field("Rss:") - field("Anonymous:")
}

/// berth's created init gives its binary's pages back to the page cache while it waits for
/// `start` (docs/performance.md), with madvise after the container's filter is loaded: it
/// may do so only where the filter allows madvise. Under a profile that kills madvise it
/// keeps its pages, and the container starts and runs as usual.
#[test]
fn a_created_init_releases_its_pages_only_where_the_filter_allows_madvise() {
    let cases = [
        ("sc_release_allowed", allow_except(json!([mkdir_rule("SCMP_ACT_ERRNO")])), true),
        ("sc_release_killed", allow_except(json!([{"names": ["madvise"], "action": "SCMP_ACT_KILL"}])), false),
    ];
    for (name, profile, released) in cases {
        let mut c = Case::new(name);
        set_profile(&mut c, profile);
        c.bundle.set_sh("echo started; grep '^Seccomp:' /proc/self/status");
        c.create().expect_ok("create");
        let pid = c.state()["pid"].as_i64().expect("pid in state");
        let kib = rss_file_kib(pid);
        // ~2 MiB of berth's text is resident after set-up; what faults back in for the
        // wait itself is well under 1 MiB.
        if released {
            assert!(kib < 1024, "{name}: the waiting init still maps {kib} KiB of file pages");
        } else {
            assert!(kib >= 1024, "{name}: only {kib} KiB of file pages: madvise was called under a filter killing it");
        }
        c.start().expect_ok("start");
        c.wait_status(&c.id.clone(), "stopped");
        let out = c.output();
        assert!(out.contains("started") && out.contains("Seccomp:\t2"), "{name}: {out:?}");
    }
}
