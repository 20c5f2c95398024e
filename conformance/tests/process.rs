//! config.json `process`: args, env, cwd, user, umask, rlimits, capabilities,
//! noNewPrivileges, oomScoreAdj.

use conformance::console::{runtime_cmdline, under_script};
use conformance::util::status_field;
use conformance::Case;
use serde_json::json;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

fn cap_bit(name: &str) -> u64 {
    let n = match name {
        "CAP_CHOWN" => 0,
        "CAP_KILL" => 5,
        "CAP_SETUID" => 7,
        "CAP_NET_BIND_SERVICE" => 10,
        "CAP_NET_RAW" => 13,
        "CAP_SYS_ADMIN" => 21,
        "CAP_AUDIT_WRITE" => 29,
        other => panic!("add {other} to cap_bit"),
    };
    1u64 << n
}

fn mask(names: &[&str]) -> String {
    format!("{:016x}", names.iter().map(|n| cap_bit(n)).fold(0, |a, b| a | b))
}

#[test]
fn args_are_passed_verbatim() {
    let mut c = Case::new("proc_args");
    c.bundle.set_args(&["sh", "-c", "for a in \"$@\"; do echo \"[$a]\"; done", "argv0", "a b", "", "*"]);
    let out = c.run();
    out.expect_ok("run");
    assert_eq!(out.stdout, "[a b]\n[]\n[*]\n");
}

#[test]
fn env_is_exactly_the_configured_one() {
    let mut c = Case::new("proc_env");
    c.config()["process"]["env"] = json!(["PATH=/bin", "FOO=bar baz", "EMPTY="]);
    let out = c.sh_ok("env | sort");
    // busybox sh adds PWD/SHLVL itself; runc adds HOME from /etc/passwd when
    // the config has none (Docker relies on it); the rest is the config's.
    let vars: Vec<&str> = out.lines().filter(|l| !l.starts_with("PWD=") && !l.starts_with("SHLVL=")).collect();
    assert_eq!(vars, vec!["EMPTY=", "FOO=bar baz", "HOME=/root", "PATH=/bin"], "{out}");
}

#[test]
fn cwd_is_applied_and_created() {
    let mut c = Case::new("proc_cwd");
    c.config()["process"]["cwd"] = "/home/user".into();
    assert_eq!(c.sh_ok("pwd").trim(), "/home/user");
    // The spec lets the runtime create a missing cwd (runc does).
    c.config()["root"]["readonly"] = false.into();
    c.config()["process"]["cwd"] = "/does/not/exist/yet".into();
    assert_eq!(c.sh_ok("pwd").trim(), "/does/not/exist/yet");
}

#[test]
fn user_uid_gid_and_additional_gids() {
    let mut c = Case::new("proc_user");
    c.config()["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [10, 20]});
    let out = c.sh_ok("id -u; id -g; id -G; grep -E '^(Uid|Gid|Groups):' /proc/self/status");
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], "1000");
    assert_eq!(l[1], "1000");
    let mut groups: Vec<&str> = l[2].split_whitespace().collect();
    groups.sort();
    assert_eq!(groups, vec!["10", "1000", "20"], "{out}");
    assert!(out.contains("Uid:\t1000\t1000\t1000\t1000"), "{out}");
}

#[test]
fn user_uid_without_passwd_entry_is_used_as_is() {
    let mut c = Case::new("proc_user_raw");
    c.config()["process"]["user"] = json!({"uid": 4242, "gid": 4343});
    assert_eq!(c.sh_ok("id -u; id -g"), "4242\n4343\n");
}

#[test]
fn umask_is_applied() {
    let mut c = Case::new("proc_umask");
    c.config()["process"]["user"]["umask"] = json!(0o027);
    assert_eq!(c.sh_ok("umask").trim(), "0027");
}

#[test]
fn default_umask_is_0022() {
    let mut c = Case::new("proc_umask_default");
    assert_eq!(c.sh_ok("umask").trim(), "0022");
}

#[test]
fn rlimits_are_applied() {
    let mut c = Case::new("proc_rlimits");
    let mut cur = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit fills the struct we own.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut cur) };
    // Stay below the current hard limits: raising one needs CAP_SYS_RESOURCE,
    // which this host's bounding set lacks.
    let hard = cur.rlim_max.min(4096);
    c.config()["process"]["rlimits"] = json!([
        {"type": "RLIMIT_NOFILE", "soft": 321, "hard": hard},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
        {"type": "RLIMIT_NPROC", "soft": 1111, "hard": 2222}
    ]);
    let out = c.sh_ok("ulimit -n; ulimit -Hn; ulimit -c; cat /proc/self/limits");
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], "321");
    assert_eq!(l[1], hard.to_string());
    assert_eq!(l[2], "0");
    let nproc = out.lines().find(|x| x.starts_with("Max processes")).expect("limits has Max processes");
    assert!(nproc.contains("1111") && nproc.contains("2222"), "{nproc}");
}

#[test]
fn default_capabilities_are_exactly_the_configured_sets() {
    let mut c = Case::new("proc_caps_default");
    let out = c.sh_ok("cat /proc/self/status");
    let want = mask(&["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    assert_eq!(status_field(&out, "CapBnd"), want);
    assert_eq!(status_field(&out, "CapEff"), want);
    assert_eq!(status_field(&out, "CapPrm"), want);
    assert_eq!(status_field(&out, "CapInh"), "0000000000000000");
    assert_eq!(status_field(&out, "CapAmb"), "0000000000000000");
}

#[test]
fn all_five_capability_sets_are_applied() {
    let mut c = Case::new("proc_caps_five");
    c.config()["process"]["noNewPrivileges"] = false.into();
    c.config()["process"]["capabilities"] = json!({
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SETUID"],
        "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"],
        "effective": ["CAP_CHOWN", "CAP_KILL"],
        "inheritable": ["CAP_NET_RAW"],
        "ambient": ["CAP_NET_RAW"]
    });
    let out = c.sh_ok("cat /proc/self/status");
    assert_eq!(status_field(&out, "CapBnd"), mask(&["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SETUID"]));
    // sh was exec'd: effective = permitted ∪ ambient semantics for uid 0 keep
    // the configured permitted set.
    assert_eq!(status_field(&out, "CapInh"), mask(&["CAP_NET_RAW"]));
    assert_eq!(status_field(&out, "CapAmb"), mask(&["CAP_NET_RAW"]));
    let prm = u64::from_str_radix(&status_field(&out, "CapPrm"), 16).unwrap();
    assert_eq!(
        prm & !u64::from_str_radix(&mask(&["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SETUID"]), 16).unwrap(),
        0,
        "permitted exceeds bounding"
    );
    assert_ne!(prm & cap_bit("CAP_CHOWN"), 0);
}

#[test]
fn non_root_user_gets_ambient_caps_only_when_asked() {
    let mut c = Case::new("proc_caps_nonroot");
    c.config()["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    let out = c.sh_ok("cat /proc/self/status");
    assert_eq!(status_field(&out, "CapEff"), "0000000000000000", "uid 1000 without ambient caps has none");
    c.config()["process"]["noNewPrivileges"] = false.into();
    let k = json!(["CAP_KILL"]);
    c.config()["process"]["capabilities"] =
        json!({"bounding": k, "permitted": k, "effective": k, "inheritable": k, "ambient": k});
    let out = c.sh_ok("cat /proc/self/status");
    assert_eq!(status_field(&out, "CapEff"), mask(&["CAP_KILL"]));
}

#[test]
fn no_new_privileges_is_set() {
    let mut c = Case::new("proc_nnp");
    let out = c.sh_ok("cat /proc/self/status");
    assert_eq!(status_field(&out, "NoNewPrivs"), "1");
    c.config()["process"]["noNewPrivileges"] = false.into();
    let out = c.sh_ok("cat /proc/self/status");
    assert_eq!(status_field(&out, "NoNewPrivs"), "0");
}

#[test]
fn oom_score_adj_is_applied() {
    let mut c = Case::new("proc_oom");
    let ours: i32 = std::fs::read_to_string("/proc/self/oom_score_adj").unwrap().trim().parse().unwrap();
    // Only raise: lowering needs CAP_SYS_RESOURCE, absent here.
    let want = (ours + 123).min(1000);
    c.config()["process"]["oomScoreAdj"] = json!(want);
    assert_eq!(c.sh_ok("cat /proc/self/oom_score_adj").trim(), want.to_string());
}

#[test]
fn exec_of_missing_binary_fails_with_one_error_line() {
    let mut c = Case::new("proc_enoent");
    c.bundle.set_args(&["/no/such/binary"]);
    let out = c.run();
    out.expect_fail("run of a missing binary");
    assert!(out.stderr.contains("/no/such/binary"), "{out}");
}

/// runc's order: the first chdir to `cwd` happens as root, before the switch to the
/// process's user, so a cwd under a directory only root may search (0700 root) works.
#[test]
fn cwd_under_a_directory_only_root_can_search_works_for_another_user() {
    conformance::each_runtime("proc_cwd_0700", |c, rt| {
        let secret = c.bundle.rootfs.host_path("/secret");
        std::fs::create_dir_all(secret.join("work")).unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o700)).unwrap();
        c.config()["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        c.config()["process"]["cwd"] = "/secret/work".into();
        let out = c.run_sh("pwd; id -u; ls /secret >/dev/null 2>&1 || echo no-search");
        out.expect_ok(rt);
        assert_eq!(out.stdout, "/secret/work\n1000\nno-search\n", "{rt}: {out}");
    });
}

/// runc's fixStdioPermissions: fds 0-2 become the process user's (so it can reopen
/// /dev/stdout), except /dev/null, which must stay root's on the host.
#[test]
fn stdio_is_handed_to_the_process_user_but_dev_null_is_not() {
    // Not crun: crun 1.8 chowns the host's /dev/null too when it is the process's stdin.
    conformance::each_runtime_but(&["crun"], "proc_stdio_owner", |c, rt| {
        c.config()["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        // The harness's stdin is the host's /dev/null (runc puts pipes of its own in
        // between), stdout and stderr are root's 0600 files.
        let out = c.run_sh("stat -L -c %u /proc/self/fd/1 /proc/self/fd/2; echo reopened >>/proc/self/fd/1");
        out.expect_ok(rt);
        assert_eq!(out.stdout, "1000\n1000\nreopened\n", "{rt}: {out}");
        let null = std::fs::metadata("/dev/null").unwrap();
        assert_eq!((null.uid(), null.gid()), (0, 0), "{rt}: the host's /dev/null changed owner");
    });
}

/// A terminal the runtime was started from, inherited as the process's stdio without
/// `terminal`, stays its owner's: a container uid owning it could read it and push input
/// into it (TIOCSTI). runc puts pipes of its own in between in the foreground.
#[test]
fn host_terminal_inherited_as_stdio_is_not_handed_to_the_container_user() {
    // Not crun: crun 1.8 chowns whatever its stdio is (even the host's /dev/null).
    conformance::each_runtime_but(&["crun"], "proc_host_tty", |c, rt| {
        c.config()["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        c.bundle.set_args(&["true"]);
        c.write();
        let run = runtime_cmdline(c, &["run", "--bundle", c.bundle.dir.to_str().unwrap(), &c.id]);
        let out = under_script(&format!("{run}; echo rc=$?; stat -L -c 'owner %u' /proc/self/fd/0"));
        let text = out.stdout.replace(['\r', '\0'], "").replace("^@", "");
        assert!(text.contains("rc=0\nowner 0"), "{rt}: {text:?}");
    });
}
