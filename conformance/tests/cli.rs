//! The global flags and the do-nothing subcommands: what Docker, containerd
//! and conmon parse.

use conformance::{Case, Runtime};
use std::fs;

#[test]
fn version_prints_and_exits_zero() {
    let c = Case::new("version");
    let out = c.rt.exec(&["--version"]);
    out.expect_ok("--version");
    assert!(out.stdout.to_lowercase().contains("version"), "{out}");
    assert!(out.stdout.contains("spec:"), "runc prints a `spec: <version>` line: {out}");
}

#[test]
fn features_reports_runtime_spec_1_3_0() {
    let c = Case::new("features");
    let out = c.rt.exec(&["features"]);
    out.expect_ok("features");
    let v = out.json();
    assert_eq!(v["ociVersionMin"], "1.0.0", "{v}");
    assert_eq!(v["ociVersionMax"], "1.3.0", "{v}");
    let ns = v["linux"]["namespaces"].as_array().expect("linux.namespaces listed");
    for n in ["pid", "mount", "uts", "ipc", "network", "cgroup"] {
        assert!(ns.iter().any(|x| x == n), "namespace {n} missing from features: {v}");
    }
    assert!(v["hooks"].as_array().map(|h| h.len() >= 6).unwrap_or(false), "{v}");
    assert!(v["mountOptions"].as_array().map(|m| m.iter().any(|o| o == "nosuid")).unwrap_or(false));
}

#[test]
fn spec_writes_default_config() {
    let c = Case::new("spec_default");
    let d = c.dir.join("specdir");
    fs::create_dir_all(&d).unwrap();
    c.rt.cmd().arg("spec").cwd(&d).run().expect_ok("spec");
    let v: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(d.join("config.json")).expect("config.json written")).unwrap();
    assert_eq!(v["process"]["args"], serde_json::json!(["sh"]));
    assert_eq!(v["root"]["path"], "rootfs");
    assert!(v["ociVersion"].as_str().unwrap_or("").starts_with("1."));
    // CVE-2022-29162: the generated spec hands out no inheritable capabilities.
    assert!(v["process"]["capabilities"].get("inheritable").is_none(), "{v}");
    let ns: Vec<&str> =
        v["linux"]["namespaces"].as_array().unwrap().iter().filter_map(|n| n["type"].as_str()).collect();
    for n in ["pid", "network", "ipc", "uts", "mount"] {
        assert!(ns.contains(&n), "{n} missing: {ns:?}");
    }
}

#[test]
fn spec_adds_a_cgroup_namespace_only_on_a_cgroup_v2_host() {
    // runc's `spec` adds one only when /sys/fs/cgroup is cgroup2 alone; on a v1 or hybrid
    // host it would give `exec` a 0::/ view and clash with a test adding its own.
    let unified = nix::sys::statfs::statfs("/sys/fs/cgroup")
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC);
    conformance::each_runtime("spec_cgroupns", |c, rt| {
        let d = c.dir.join("specdir");
        fs::create_dir_all(&d).unwrap();
        c.rt.cmd().arg("spec").cwd(&d).run().expect_ok(rt);
        let v: serde_json::Value = serde_json::from_str(&fs::read_to_string(d.join("config.json")).unwrap()).unwrap();
        let has = v["linux"]["namespaces"].as_array().unwrap().iter().any(|n| n["type"] == "cgroup");
        assert_eq!(
            has,
            unified,
            "{rt}: cgroup namespace in `spec` on a {} host",
            if unified { "v2" } else { "v1/hybrid" }
        );
    });
}

#[test]
fn spec_bundle_flag_writes_into_bundle() {
    let c = Case::new("spec_bundle");
    let d = c.dir.join("other");
    fs::create_dir_all(&d).unwrap();
    c.rt.cmd().args(["spec", "--bundle"]).arg(&d).run().expect_ok("spec --bundle");
    assert!(d.join("config.json").exists());
}

#[test]
fn spec_refuses_to_overwrite_existing_config() {
    let c = Case::new("spec_exists");
    let d = c.dir.join("specdir");
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join("config.json"), "keep").unwrap();
    c.rt.cmd().arg("spec").cwd(&d).run().expect_fail("spec over an existing config.json");
    assert_eq!(fs::read_to_string(d.join("config.json")).unwrap(), "keep");
}

#[test]
fn spec_rootless_adds_user_namespace() {
    let c = Case::new("spec_rootless");
    let d = c.dir.join("specdir");
    fs::create_dir_all(&d).unwrap();
    c.rt.cmd().args(["spec", "--rootless"]).cwd(&d).run().expect_ok("spec --rootless");
    let v: serde_json::Value = serde_json::from_str(&fs::read_to_string(d.join("config.json")).unwrap()).unwrap();
    let ns = v["linux"]["namespaces"].as_array().unwrap();
    assert!(ns.iter().any(|n| n["type"] == "user"), "{v}");
    assert!(v["linux"]["uidMappings"].as_array().map(|a| !a.is_empty()).unwrap_or(false));
    assert!(ns.iter().all(|n| n["type"] != "network"), "rootless spec shares the host network");
}

#[test]
fn log_flag_writes_log_file_with_debug() {
    let mut c = Case::new("log_text");
    let log = c.dir.join("rt.log");
    c.rt.globals = vec!["--log".into(), log.to_str().unwrap().into(), "--debug".into()];
    let out = c.run_sh("true");
    out.expect_ok("run with --log --debug");
    let text = fs::read_to_string(&log).expect("--log file created");
    assert!(!text.trim().is_empty(), "--debug must log something to --log");
}

/// `--debug` names the steps of the init and exec handshakes in runc's words, which
/// scripts written for runc (and runc's own debug.bats and exec.bats) look for.
#[test]
fn debug_log_names_the_handshake_steps_in_runcs_words() {
    // Not crun: its debug log has words of its own.
    conformance::each_runtime_but(&["crun"], "log_steps", |c, rt| {
        let log = c.dir.join("rt.log");
        c.bundle.set_args(&["sleep", "1000"]);
        c.rt.globals = vec!["--log".into(), log.to_str().unwrap().into(), "--debug".into()];
        c.create().expect_ok(rt);
        c.start().expect_ok(rt);
        let text = fs::read_to_string(&log).expect("--log file created");
        for step in ["nsexec container setup", "child process in init()", "init: closing the pipe to signal completion"]
        {
            assert!(text.contains(step), "{rt}: create's debug log lacks {step:?}:\n{text}");
        }
        fs::write(&log, "").unwrap();
        c.rt.exec(&["exec", &c.id, "true"]).expect_ok(rt);
        let text = fs::read_to_string(&log).expect("--log file");
        for step in ["nsexec container setup", "child process in init()", "setns_init: about to exec"] {
            assert!(text.contains(step), "{rt}: exec's debug log lacks {step:?}:\n{text}");
        }
    });
}

#[test]
fn log_format_json_lines_have_level_msg_time() {
    let mut c = Case::new("log_json");
    let log = c.dir.join("rt.json.log");
    c.rt.globals =
        vec!["--log".into(), log.to_str().unwrap().into(), "--log-format".into(), "json".into(), "--debug".into()];
    c.run_sh("true").expect_ok("run with --log-format json");
    let text = fs::read_to_string(&log).expect("--log file created");
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "no log lines");
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        for k in ["level", "msg", "time"] {
            assert!(v.get(k).is_some(), "log line lacks {k}: {l}");
        }
    }
}

#[test]
fn errors_go_to_json_log_for_containerd() {
    // containerd's shim reads the last `level=error` line of --log to report failures.
    let mut c = Case::new("log_json_error");
    let log = c.dir.join("rt.json.log");
    c.rt.globals = vec!["--log".into(), log.to_str().unwrap().into(), "--log-format".into(), "json".into()];
    c.rt.start("no-such-container").expect_fail("start of unknown id");
    let text = fs::read_to_string(&log).expect("--log file created");
    let has_error = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .any(|v| v["level"] == "error" && v["msg"].as_str().map(|m| !m.is_empty()).unwrap_or(false));
    assert!(has_error, "no level=error line in the json log: {text}");
}

/// With --systemd-cgroup, cgroupsPath must be "slice:prefix:name" (as in runc), checked
/// first; on a host without systemd (this one) even a good path (or none: the default
/// system.slice:berth:<id>) is refused naming the flag, leaving nothing behind.
#[test]
fn systemd_cgroup_flag_takes_the_systemd_path_form() {
    let mut c = Case::new("systemd_cgroup");
    c.rt.globals = vec!["--systemd-cgroup".into()];
    c.bundle.set_args(&["sleep", "1000"]);
    c.config()["linux"]["cgroupsPath"] = "/plain/path".into();
    let out = c.create();
    out.expect_fail("a cgroupfs path with --systemd-cgroup");
    let lines = out.stderr_lines();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].contains("linux.cgroupsPath") && lines[0].contains("slice:prefix:name"), "{out}");
    c.assert_no_leaks("after the refused path");
    if std::path::Path::new("/run/systemd/system").is_dir() {
        eprintln!("systemd runs on this host: the rest is the systemd guest test's");
        return;
    }
    c.config()["linux"].as_object_mut().expect("linux").remove("cgroupsPath");
    let out = c.create();
    out.expect_fail("--systemd-cgroup without systemd");
    let lines = out.stderr_lines();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].contains("--systemd-cgroup"), "{out}");
    c.assert_no_leaks("after the refused create");
}

#[test]
fn unknown_flag_is_an_error() {
    let c = Case::new("unknown_flag");
    let out = c.rt.exec(&["create", "--definitely-not-a-flag", "x"]);
    out.expect_fail("unknown flag");
    assert!(!out.stderr.trim().is_empty(), "{out}");
}

#[test]
fn state_of_unknown_id_fails_naming_it() {
    let c = Case::new("state_unknown");
    let out = c.rt.state("no-such-ctr");
    out.expect_fail("state of unknown id");
    assert!(out.stderr.contains("no-such-ctr"), "{out}");
}

#[test]
fn start_kill_delete_of_unknown_id_fail() {
    let c = Case::new("unknown_id_ops");
    for args in [vec!["start", "nope-1"], vec!["kill", "nope-1", "KILL"], vec!["delete", "nope-1"]] {
        let out = c.rt.exec(&args);
        out.expect_fail(&format!("{args:?} of unknown id"));
        assert!(out.stderr.contains("nope-1"), "error should name the id: {out}");
    }
}

#[test]
fn delete_force_of_unknown_id_succeeds() {
    let c = Case::new("delete_force_unknown");
    c.rt.delete_force("nope-2").expect_ok("delete --force of unknown id (runc: not an error)");
}

#[test]
fn kill_with_bad_signal_fails_and_container_survives() {
    let mut c = Case::new("kill_bad_signal");
    c.bundle.set_args(&["sleep", "1000"]);
    c.create().expect_ok("create");
    c.start().expect_ok("start");
    for sig in ["FOO", "999", "SIGBANANA"] {
        let out = c.rt.kill(&c.id, sig);
        out.expect_fail(&format!("kill {sig}"));
        assert!(out.stderr.contains(sig) || out.stderr.to_lowercase().contains("signal"), "{out}");
    }
    assert_eq!(c.state()["status"], "running");
}

#[test]
fn pid_file_in_missing_dir_fails_cleanly() {
    let mut c = Case::new("pid_file_bad_dir");
    c.bundle.set_args(&["true"]);
    let pf = c.dir.join("no/such/dir/pid");
    let out = c.create_with(&["--pid-file", pf.to_str().unwrap()]);
    c.expect_clean_failure(&out, &["pid", "no/such/dir"]);
}

#[test]
fn no_new_keyring_and_preserve_fds_zero_are_accepted() {
    let mut c = Case::new("create_flags");
    c.bundle.set_sh("echo ok");
    c.create_with(&["--no-new-keyring", "--preserve-fds", "0"]).expect_ok("create with containerd's flags");
    c.start().expect_ok("start");
    c.wait_status(&c.id, "stopped");
    assert_eq!(c.output(), "ok\n");
}

#[test]
fn preserve_fds_passes_extra_fd() {
    let mut c = Case::new("preserve_fds");
    let f = c.dir.join("fd3.txt");
    fs::write(&f, "from-fd-3\n").unwrap();
    c.bundle.set_sh("cat <&3");
    c.write();
    // fd 3 in the runtime process = the first leaked path; --preserve-fds 1 keeps it.
    let out =
        c.rt.cmd().args(["run", "--preserve-fds", "1", "--bundle"]).arg(&c.bundle.dir).arg(&c.id).leak_fds(&[f]).run();
    out.expect_ok("run --preserve-fds 1");
    assert_eq!(out.stdout, "from-fd-3\n", "{out}");
}

#[test]
fn list_on_fresh_root_is_not_an_error() {
    let c = Case::new("list_fresh_root");
    let rt = Runtime::new(&c.dir.join("never-created"));
    let out = rt.list(&["-q"]);
    out.expect_ok("list with a root that does not exist yet");
    assert_eq!(out.stdout.trim(), "");
}

#[test]
fn root_flag_holds_the_state_and_is_private() {
    let mut c = Case::new("root_flag");
    c.bundle.set_args(&["sleep", "1000"]);
    c.create().expect_ok("create");
    let entry = c.rt.root.join(&c.id);
    assert!(entry.exists(), "no state under --root {}", c.rt.root.display());
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(&c.rt.root).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & 0o077, 0, "--root must not be group/world accessible (CVE-2024-25621 class): {mode:o}");
    // Another root does not see the container.
    let other = Runtime::new(&c.dir.join("other-root"));
    assert!(!other.list(&["-q"]).stdout.contains(&c.id));
}

/// Signal 0 probes the init, with or without --all; once the container has stopped the
/// probe fails without --all, while `kill --all` (containerd's after an exit) is not an
/// error: runc 1.1 and 1.3 alike.
#[test]
fn kill_signal_zero_probes_and_kill_all_of_a_stopped_container_succeeds() {
    conformance::each_runtime_but(&["crun"], "kill_probe", |c, rt| {
        c.bundle.set_args(&["sleep", "1000"]);
        c.create().expect_ok(rt);
        c.start().expect_ok(rt);
        let id = c.id.clone();
        c.rt.exec(&["kill", &id, "0"]).expect_ok(&format!("{rt}: kill 0"));
        c.rt.exec(&["kill", "--all", &id, "0"]).expect_ok(&format!("{rt}: kill --all 0"));
        assert_eq!(c.state()["status"], "running", "{rt}: signal 0 is no signal");
        c.rt.exec(&["kill", &id, "KILL"]).expect_ok(&format!("{rt}: kill KILL"));
        c.wait_status(&id, "stopped");
        c.rt.exec(&["kill", &id, "0"]).expect_fail(&format!("{rt}: kill 0 of a stopped container"));
        let out = c.rt.exec(&["kill", &id, "KILL"]);
        out.expect_fail(&format!("{rt}: kill of a stopped container"));
        assert!(out.stderr.contains("not running"), "{rt}: {out}");
        for sig in ["0", "KILL", "TERM"] {
            c.rt.exec(&["kill", "--all", &id, sig])
                .expect_ok(&format!("{rt}: kill --all {sig} of a stopped container"));
        }
    });
}

/// `--debug` without `--log`: the debug lines go to stderr (runc's logrus default).
#[test]
fn debug_without_log_prints_debug_lines_to_stderr() {
    // crun prints no debug lines.
    conformance::each_runtime_but(&["crun"], "debug_stderr", |c, rt| {
        c.rt.globals = vec!["--debug".into()];
        let out = c.run_sh("true");
        out.expect_ok(rt);
        assert!(out.stderr.lines().any(|l| l.contains("level=debug")), "{rt}: {out}");
    });
}
