//! linux.cgroupsPath and linux.resources on this cgroup v1 host: the values
//! land in /sys/fs/cgroup/<controller>/<path>, delete removes the cgroups,
//! kill --all reaches every process.

use conformance::leak::cgroup_dirs_containing;
use conformance::{each_runtime_but, poll_until, Case, Out};
use serde_json::json;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The v1 cgroup path of `pid` for `controller`, from /proc/<pid>/cgroup.
fn cgroup_of(pid: i64, controller: &str) -> String {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/cgroup (has the container exited?): {e}"));
    text.lines()
        .find_map(|l| {
            let mut it = l.splitn(3, ':');
            let (_, ctls, path) = (it.next()?, it.next()?, it.next()?);
            ctls.split(',').any(|c| c == controller).then(|| path.to_string())
        })
        .unwrap_or_else(|| panic!("{controller} not in /proc/{pid}/cgroup:\n{text}"))
}

fn knob(controller: &str, path: &str, file: &str) -> String {
    let p = PathBuf::from("/sys/fs/cgroup").join(controller).join(path.trim_start_matches('/')).join(file);
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())).trim().to_string()
}

/// Whether the host mounts a cgroup v1 hierarchy carrying `controller` (from mountinfo: a
/// directory under /sys/fs/cgroup may exist without anything mounted on it).
fn v1_hierarchy_mounted(controller: &str) -> bool {
    let mi = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    mi.lines().filter_map(|l| l.split_once(" - ")).any(|(_, fs_part)| {
        let f: Vec<&str> = fs_part.split(' ').collect();
        f.first() == Some(&"cgroup") && f.get(2).is_some_and(|o| o.split(',').any(|o| o == controller))
    })
}

fn init_pid(c: &Case) -> i64 {
    c.state()["pid"].as_i64().expect("state.pid")
}

#[test]
fn default_cgroups_path_is_named_after_the_id() {
    let c = Case::new("cg_default_path");
    c.create().expect_ok("create");
    let pid = init_pid(&c);
    for ctl in ["memory", "pids", "cpu", "devices", "freezer"] {
        let p = cgroup_of(pid, ctl);
        assert!(p.ends_with(&format!("/{}", c.id)), "{ctl}: {p} should end with the id");
    }
}

#[test]
fn cgroups_path_is_used() {
    let mut c = Case::new("cg_path");
    // A nested path whose parent the runtime creates but (like runc) need not
    // remove; the test removes it before the leak check, which then proves
    // the runtime removed the leaf in every hierarchy.
    let parent = format!("{}-parent", c.id);
    let path = format!("/{parent}/{}", c.id);
    c.on_cleanup(move || {
        for d in cgroup_dirs_containing(&parent) {
            let _ = fs::remove_dir(d);
        }
    });
    c.config()["linux"]["cgroupsPath"] = path.clone().into();
    c.create().expect_ok("create");
    let pid = init_pid(&c);
    for ctl in ["memory", "pids", "cpu"] {
        assert_eq!(cgroup_of(pid, ctl), path, "{ctl}");
    }
    c.rt.delete_force(&c.id).expect_ok("delete");
    for ctl in ["memory", "pids", "cpu"] {
        assert!(!PathBuf::from(format!("/sys/fs/cgroup/{ctl}{path}")).exists(), "{ctl} leaf left behind");
    }
}

/// The init and an exec'd process are in the container's cgroup on every hierarchy the host
/// mounts: each v1 one, the named systemd one, and the hybrid host's cgroup2 one (berth's
/// child moves itself into the v1 ones and is cloned into the cgroup2 one; runc writes
/// pids into cgroup.procs), all while the init was single-threaded.
#[test]
fn init_and_exec_are_in_the_cgroup_on_every_hierarchy() {
    // crun 1.8 refuses a cgroupsPath on this hybrid host.
    each_runtime_but(&["crun"], "cg_every_hier", |c, rt| {
        let path = format!("/{}", c.id);
        c.config()["linux"]["cgroupsPath"] = path.clone().into();
        c.config()["process"]["args"] = json!(["sleep", "1000"]);
        c.create().expect_ok("create");
        c.start().expect_ok("start");
        let init = init_pid(c);
        let pidfile = c.dir.join("exec.pid");
        c.rt.exec(&["exec", "--detach", "--pid-file", pidfile.to_str().unwrap(), &c.id, "sleep", "1000"])
            .expect_ok("exec --detach");
        let exec_pid: i64 = fs::read_to_string(&pidfile).expect("pid file").trim().parse().expect("pid");
        let mounted: usize = fs::read_to_string("/proc/self/cgroup")
            .expect("/proc/self/cgroup")
            .lines()
            .filter(|l| !l.is_empty())
            .count();
        for pid in [init, exec_pid] {
            let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("/proc/<pid>/cgroup");
            let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
            assert_eq!(lines.len(), mounted, "{rt}: pid {pid}: one line per hierarchy:\n{text}");
            for l in lines {
                assert!(
                    l.ends_with(&format!(":{path}")),
                    "{rt}: pid {pid} is not in {path} on every hierarchy: {l}\n{text}"
                );
            }
        }
    });
}

#[test]
fn memory_limit_is_applied() {
    let mut c = Case::new("cg_memory");
    c.config()["linux"]["resources"]["memory"] = json!({"limit": 64 * 1024 * 1024, "reservation": 32 * 1024 * 1024});
    c.create().expect_ok("create");
    let p = cgroup_of(init_pid(&c), "memory");
    assert_eq!(knob("memory", &p, "memory.limit_in_bytes"), (64 * 1024 * 1024).to_string());
    assert_eq!(knob("memory", &p, "memory.soft_limit_in_bytes"), (32 * 1024 * 1024).to_string());
}

#[test]
fn cpu_shares_quota_period_are_applied() {
    let mut c = Case::new("cg_cpu");
    c.config()["linux"]["resources"]["cpu"] = json!({"shares": 512, "quota": 50000, "period": 100000});
    c.create().expect_ok("create");
    let p = cgroup_of(init_pid(&c), "cpu");
    assert_eq!(knob("cpu", &p, "cpu.shares"), "512");
    assert_eq!(knob("cpu", &p, "cpu.cfs_quota_us"), "50000");
    assert_eq!(knob("cpu", &p, "cpu.cfs_period_us"), "100000");
}

#[test]
fn pids_limit_is_applied_and_enforced() {
    let mut c = Case::new("cg_pids");
    c.config()["linux"]["resources"]["pids"] = json!({"limit": 5});
    c.create().expect_ok("create");
    let p = cgroup_of(init_pid(&c), "pids");
    assert_eq!(knob("pids", &p, "pids.max"), "5");
    c.rt.delete_force(&c.id).expect_ok("delete");
    // Enforced: the 6th process cannot be forked.
    let out = c.run_sh("for i in 1 2 3 4 5 6 7 8; do sleep 100 & done 2>&1; echo forked");
    assert!(
        out.stdout.contains("can't fork")
            || out.stdout.contains("Resource temporarily unavailable")
            || out.stderr.contains("fork"),
        "{out}"
    );
}

#[test]
fn container_sees_its_own_limit() {
    let mut c = Case::new("cg_inside");
    c.config()["linux"]["resources"]["memory"] = json!({"limit": 48 * 1024 * 1024});
    let out = c.sh_ok("cat /sys/fs/cgroup/memory/memory.limit_in_bytes");
    assert_eq!(out.trim(), (48 * 1024 * 1024).to_string());
}

#[test]
fn delete_removes_cgroups_in_every_hierarchy() {
    let mut c = Case::new("cg_delete");
    c.bundle.set_args(&["sleep", "1000"]);
    c.create().expect_ok("create");
    c.start().expect_ok("start");
    assert!(!cgroup_dirs_containing(&c.id).is_empty(), "container has no cgroup at all");
    c.rt.kill(&c.id, "KILL").expect_ok("kill");
    c.wait_status(&c.id, "stopped");
    c.rt.delete(&c.id).expect_ok("delete");
    assert_eq!(cgroup_dirs_containing(&c.id), Vec::<PathBuf>::new());
}

#[test]
fn kill_all_signals_every_process_in_the_cgroup() {
    let mut c = Case::new("cg_kill_all");
    // Without a pid namespace, killing init alone would orphan the sleeps.
    c.bundle.remove_namespace("pid");
    c.bundle.set_sh("sleep 1001 & sleep 1002 & echo ready; wait");
    c.create().expect_ok("create");
    c.start().expect_ok("start");
    poll_until("container ready", Duration::from_secs(20), || c.output().contains("ready").then_some(()));
    let st = c.state();
    assert_eq!(st["status"], "running", "container died early; its stdout: {:?}", c.output());
    let p = cgroup_of(st["pid"].as_i64().unwrap(), "pids");
    let procs = || knob("pids", &p, "cgroup.procs").lines().count();
    poll_until("3 processes in the cgroup", Duration::from_secs(20), || (procs() >= 3).then_some(()));
    c.rt.exec(&["kill", "--all", &c.id, "KILL"]).expect_ok("kill --all");
    poll_until("cgroup empty", Duration::from_secs(20), || (procs() == 0).then_some(()));
    c.wait_status(&c.id, "stopped");
    c.rt.delete(&c.id).expect_ok("delete");
}

#[test]
fn devices_cgroup_denies_unlisted_devices() {
    let mut c = Case::new("cg_devices");
    c.bundle.remove_mount("/dev");
    c.config()["linux"]["devices"] =
        json!([{"path": "/dev/loopx", "type": "b", "major": 7, "minor": 201, "fileMode": 0o600}]);
    c.config()["root"]["readonly"] = false.into();
    let out = c.sh_ok("head -c1 /dev/loopx 2>&1; echo; head -c 1 /dev/zero | wc -c");
    assert!(out.contains("Operation not permitted") || out.contains("No such device"), "{out}");
}

#[test]
fn zero_valued_resources_as_docker_sends_them_are_accepted() {
    // dockerd 20.10 always sends these zero/false values (captured from a
    // real `docker run`); treating them as "unsupported" would break Docker.
    let mut c = Case::new("cg_docker_zeroes");
    c.config()["linux"]["resources"] = json!({
        "devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}],
        "memory": {"disableOOMKiller": false},
        "cpu": {"shares": 0},
        "blockIO": {"weight": 0}
    });
    c.config()["process"]["user"]["additionalGids"] = json!([0]);
    c.config()["linux"]["sysctl"] =
        json!({"net.ipv4.ip_unprivileged_port_start": "0", "net.ipv4.ping_group_range": "0 2147483647"});
    let out = c.sh_ok("cat /proc/sys/net/ipv4/ip_unprivileged_port_start");
    assert_eq!(out.trim(), "0");
}

#[test]
fn update_resources_changes_the_live_cgroup() {
    let mut c = Case::new("cg_update");
    c.bundle.set_args(&["sleep", "1000"]);
    c.create().expect_ok("create");
    c.start().expect_ok("start");
    let p = cgroup_of(init_pid(&c), "memory");
    let res = c.dir.join("resources.json");
    fs::write(&res, json!({"memory": {"limit": 32 * 1024 * 1024}, "pids": {"limit": 50}}).to_string()).unwrap();
    c.rt.exec(&["update", "--resources", res.to_str().unwrap(), &c.id]).expect_ok("update --resources");
    assert_eq!(knob("memory", &p, "memory.limit_in_bytes"), (32 * 1024 * 1024).to_string());
    assert_eq!(knob("pids", &cgroup_of(init_pid(&c), "pids"), "pids.max"), "50");
    let out = c.rt.cmd().args(["update", "-r", "-", &c.id]).stdin(b"{not json").run();
    out.expect_fail("update with malformed JSON");
    assert_eq!(knob("memory", &p, "memory.limit_in_bytes"), (32 * 1024 * 1024).to_string(), "nothing changed");
}

/// `--systemd-cgroup` on a host without systemd (this one: no /run/systemd/system, no system
/// bus, cgroup v1 hybrid): refused before anything is made, in one line naming the flag, as
/// runc refuses it. The systemd driver itself is tested in the trixie guest
/// (`systemd_guest.rs`).
#[test]
fn systemd_cgroup_without_systemd_is_refused_leaving_nothing() {
    if Path::new("/run/systemd/system").is_dir() {
        eprintln!("skipped: systemd runs on this host (the systemd guest test covers the driver)");
        return;
    }
    let mut c = Case::new("cg_systemd");
    let slice = format!("bt{}", std::process::id());
    c.config()["linux"]["cgroupsPath"] = format!("{slice}-a.slice:pfx:{}", c.id).into();
    c.config()["linux"]["resources"]["pids"] = json!({"limit": 9});
    c.rt.globals.push("--systemd-cgroup".into());
    let out = c.create();
    out.expect_fail("create --systemd-cgroup without systemd");
    let lines = out.stderr_lines();
    assert_eq!(lines.len(), 1, "expected one error line\n{out}");
    assert!(lines[0].contains("--systemd-cgroup"), "the error names the flag\n{out}");
    c.assert_no_leaks("after the refused create");
    for ctl in ["memory", "pids", "cpu"] {
        let top = PathBuf::from(format!("/sys/fs/cgroup/{ctl}/{slice}.slice"));
        assert!(!top.exists(), "{} made for a refused create", top.display());
    }
    c.rt.globals.retain(|g| g != "--systemd-cgroup");
    c.config()["linux"].as_object_mut().expect("linux").remove("cgroupsPath");
    c.create().expect_ok("the same id without the flag");
    c.rt.delete_force(&c.id).expect_ok("delete");
}

#[test]
fn systemd_form_without_the_flag_is_refused_naming_it() {
    let mut c = Case::new("cg_systemd_noflag");
    c.config()["linux"]["cgroupsPath"] = "system.slice:pfx:x".into();
    let out = c.expect_create_fails(&["linux.cgroupsPath", "--systemd-cgroup"]);
    assert_eq!(out.stderr_lines().len(), 1, "{out}");
}

/// The rest of linux.resources on v1: swap, swappiness, OOM killer, kernelTCP, CFS burst,
/// realtime, cpuset, blkio throttling, huge pages; each lands in its file.
#[test]
fn remaining_v1_resources_are_applied() {
    let mut c = Case::new("cg_more_v1");
    let vda = fs::read_to_string("/sys/block/vda/dev").unwrap_or_else(|_| "7:0".into());
    let (maj, min) = vda.trim().split_once(':').expect("MAJ:MIN");
    let (maj, min): (i64, i64) = (maj.parse().expect("major"), min.parse().expect("minor"));
    c.config()["linux"]["resources"] = json!({
        "memory": {"limit": 64 << 20, "swap": 128 << 20, "swappiness": 10, "disableOOMKiller": true,
                   "kernelTCP": 32 << 20, "useHierarchy": true},
        "cpu": {"quota": 50000, "period": 100000, "burst": 20000, "realtimePeriod": 1000000,
                "realtimeRuntime": 10000, "cpus": "0", "mems": "0"},
        "blockIO": {"throttleReadBpsDevice": [{"major": maj, "minor": min, "rate": 1048576}],
                    "throttleWriteIOPSDevice": [{"major": maj, "minor": min, "rate": 100}]}
    });
    c.create().expect_ok("create");
    let pid = init_pid(&c);
    let k = |ctl: &str, file: &str| knob(ctl, &cgroup_of(pid, ctl), file);
    assert_eq!(k("memory", "memory.memsw.limit_in_bytes"), (128u64 << 20).to_string());
    assert_eq!(k("memory", "memory.swappiness"), "10");
    assert!(k("memory", "memory.oom_control").contains("oom_kill_disable 1"));
    assert_eq!(k("memory", "memory.kmem.tcp.limit_in_bytes"), (32u64 << 20).to_string());
    assert_eq!(k("memory", "memory.use_hierarchy"), "1");
    assert_eq!(k("cpu", "cpu.cfs_burst_us"), "20000");
    assert_eq!(k("cpu", "cpu.rt_period_us"), "1000000");
    assert_eq!(k("cpu", "cpu.rt_runtime_us"), "10000");
    assert_eq!(k("cpuset", "cpuset.cpus"), "0");
    assert_eq!(k("cpuset", "cpuset.mems"), "0");
    assert_eq!(k("blkio", "blkio.throttle.read_bps_device"), format!("{maj}:{min} 1048576"));
    assert_eq!(k("blkio", "blkio.throttle.write_iops_device"), format!("{maj}:{min} 100"));
}

/// hugepageLimits on a v1 host: written where the host mounts a v1 hugetlb hierarchy; where it
/// does not (some VM kinds boot with hugetlb left to the hybrid unified hierarchy), refused
/// naming the field, as runc refuses it, with nothing left behind.
#[test]
fn hugepage_limits_are_applied_or_refused_naming_the_missing_hierarchy() {
    let mut c = Case::new("cg_hugetlb");
    c.config()["linux"]["resources"]["hugepageLimits"] = json!([{"pageSize": "2MB", "limit": 4 << 20}]);
    if v1_hierarchy_mounted("hugetlb") {
        c.create().expect_ok("create");
        let pid = init_pid(&c);
        assert_eq!(knob("hugetlb", &cgroup_of(pid, "hugetlb"), "hugetlb.2MB.limit_in_bytes"), (4u64 << 20).to_string());
    } else {
        c.expect_create_fails(&["linux.resources.hugepageLimits"]);
    }
}

/// net_cls/net_prio are not mounted on this host: the field is named and nothing stays.
#[test]
fn network_class_id_without_a_net_cls_hierarchy_is_refused() {
    let mut c = Case::new("cg_net_cls");
    if v1_hierarchy_mounted("net_cls") {
        panic!("this host mounts net_cls; the test expects the VM's layout without it");
    }
    c.config()["linux"]["resources"]["network"] = json!({"classID": 1048577});
    let out = c.expect_create_fails(&["linux.resources.network.classID", "net_cls"]);
    assert_eq!(out.stderr_lines().len(), 1, "{out}");
}

/// Removes `/<top>` and everything below it (deepest first) in every hierarchy.
fn remove_cgroup_tree(top: &str) {
    fn rm(d: &Path) {
        for e in fs::read_dir(d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                rm(&e.path());
            }
        }
        let _ = fs::remove_dir(d);
    }
    for h in fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
        let d = h.path().join(top);
        if d.is_dir() {
            rm(&d);
        }
    }
}

/// A pre-existing cpuset cgroup on the way to the container's (made by hand, or by a
/// runtime killed before it filled it) starts with empty cpus and mems; a task cannot join
/// a cgroup below it (ENOSPC) until they are set. The runtime fills every empty ancestor
/// on the way down, not only the directories it makes, as runc does.
#[test]
fn empty_cpuset_in_a_pre_existing_ancestor_is_filled() {
    // crun 1.8 refuses a cgroupsPath on this hybrid host ("cgroups in hybrid mode not
    // supported, drop all controllers from cgroupv2").
    each_runtime_but(&["crun"], "cg_cpuset_fill", |c, rt| {
        let top = format!("{}-pre", c.id);
        c.on_cleanup({
            let top = top.clone();
            move || remove_cgroup_tree(&top)
        });
        let cpuset = Path::new("/sys/fs/cgroup/cpuset");
        let mid = cpuset.join(&top).join("mid");
        fs::create_dir_all(&mid).unwrap_or_else(|e| panic!("mkdir {}: {e}", mid.display()));
        for d in [cpuset.join(&top), mid.clone()] {
            assert_eq!(
                knob("cpuset", &d.strip_prefix(cpuset).unwrap().to_string_lossy(), "cpuset.cpus"),
                "",
                "{rt}: a new cpuset starts empty"
            );
        }
        let path = format!("/{top}/mid/{}", c.id);
        c.config()["linux"]["cgroupsPath"] = path.clone().into();
        let out = c.run_sh("grep Cpus_allowed_list /proc/self/status");
        out.expect_ok(&format!("{rt}: run under a pre-existing ancestor with an empty cpuset"));
        let want = knob("cpuset", "/", "cpuset.cpus");
        for rel in [format!("/{top}"), format!("/{top}/mid")] {
            assert_eq!(knob("cpuset", &rel, "cpuset.cpus"), want, "{rt}: {rel} cpus");
            assert_eq!(knob("cpuset", &rel, "cpuset.mems"), knob("cpuset", "/", "cpuset.mems"), "{rt}: {rel} mems");
        }
    });
}

fn rt_knobs(pid: i64) -> (String, String) {
    let p = cgroup_of(pid, "cpu");
    (knob("cpu", &p, "cpu.rt_period_us"), knob("cpu", &p, "cpu.rt_runtime_us"))
}

/// `update --cpu-rt-period/--cpu-rt-runtime`: the kernel checks the two against each other
/// at every write (runtime <= period), so shrinking both is refused period first and
/// growing both is refused runtime first; the runtime writes them in the order that works.
#[test]
fn update_rt_period_and_runtime_in_the_order_the_kernel_accepts() {
    assert!(
        Path::new("/sys/fs/cgroup/cpu/cpu.rt_period_us").exists(),
        "this kernel has no RT group scheduling (CONFIG_RT_GROUP_SCHED); the test needs it"
    );
    // runc 1.1.5 writes the period first and gives up on EINVAL (the retry came in a later
    // 1.1 release: 1.1.15 and 1.2+ have it; compared from 1.3, the version checked); crun
    // 1.8 refuses resources on this hybrid host ("cgroups in hybrid mode not supported").
    each_runtime_but(&["runc<1.3", "crun"], "cg_rt_update", |c, rt| {
        c.bundle.set_args(&["sleep", "1000"]);
        c.config()["linux"]["resources"]["cpu"] = json!({"realtimePeriod": 1000000, "realtimeRuntime": 100000});
        c.create().expect_ok(rt);
        c.start().expect_ok(rt);
        let pid = init_pid(c);
        assert_eq!(rt_knobs(pid), ("1000000".into(), "100000".into()), "{rt}: after create");
        // Period first would give runtime 100000 > period 50000: EINVAL.
        c.rt.exec(&["update", "--cpu-rt-period", "50000", "--cpu-rt-runtime", "20000", &c.id])
            .expect_ok(&format!("{rt}: update shrinking both"));
        assert_eq!(rt_knobs(pid), ("50000".into(), "20000".into()), "{rt}: after shrinking");
        // Runtime first would give runtime 300000 > period 50000: EINVAL.
        c.rt.exec(&["update", "--cpu-rt-period", "1000000", "--cpu-rt-runtime", "300000", &c.id])
            .expect_ok(&format!("{rt}: update growing both"));
        assert_eq!(rt_knobs(pid), ("1000000".into(), "300000".into()), "{rt}: after growing");
        // The JSON form takes the same path.
        let out =
            c.rt.cmd()
                .args(["update", "-r", "-", &c.id])
                .stdin(json!({"cpu": {"realtimePeriod": 40000, "realtimeRuntime": 10000}}).to_string().as_bytes())
                .run();
        out.expect_ok(&format!("{rt}: update -r - shrinking both"));
        assert_eq!(rt_knobs(pid), ("40000".into(), "10000".into()), "{rt}: after update -r");
    });
}

/// update.bats "update cgroup cpu.idle": an idle group refuses cpu.shares, so turning
/// idle off, and updating anything else of a container with shares while it is idle, must
/// not write the shares into an idle group.
#[test]
fn update_cpu_idle_on_and_off_with_shares_set() {
    // v1 here, pure v2 in the forky guest, where this test is compared with runc 1.3 too.
    let pid_cpu_idle = |c: &Case| {
        let pid = init_pid(c);
        if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("/proc/<pid>/cgroup");
            let path = text.lines().find_map(|l| l.strip_prefix("0::")).expect("a cgroup v2 line");
            knob("", path, "cpu.idle")
        } else {
            knob("cpu", &cgroup_of(pid, "cpu"), "cpu.idle")
        }
    };
    each_runtime_but(&["runc<1.3", "crun"], "cg_idle_update", |c, rt| {
        in_a_cgroup_of_the_root(c);
        c.bundle.set_args(&["sleep", "1000"]);
        c.config()["linux"]["resources"]["cpu"] = json!({"shares": 100, "quota": 500000, "period": 1000000});
        c.create().expect_ok(rt);
        c.start().expect_ok(rt);
        assert_eq!(pid_cpu_idle(c), "0", "{rt}: after create");
        for idle in [1, 0, 1] {
            let out =
                c.rt.cmd()
                    .args(["update", "-r", "-", &c.id])
                    .stdin(json!({"cpu": {"idle": idle}}).to_string().as_bytes())
                    .run();
            out.expect_ok(&format!("{rt}: update cpu.idle to {idle}"));
            assert_eq!(pid_cpu_idle(c), idle.to_string(), "{rt}: after the update to {idle}");
        }
        for idle in ["0", "1"] {
            c.rt.exec(&["update", "--cpu-idle", idle, &c.id]).expect_ok(&format!("{rt}: update --cpu-idle {idle}"));
            assert_eq!(pid_cpu_idle(c), idle, "{rt}: after --cpu-idle {idle}");
        }
        c.rt.exec(&["update", "--cpu-idle", "2", &c.id]).expect_fail(&format!("{rt}: update --cpu-idle 2"));
        c.rt.exec(&["update", "--cpu-period", "900000", &c.id])
            .expect_ok(&format!("{rt}: update of the period while idle"));
        assert_eq!(pid_cpu_idle(c), "1", "{rt}: another field's update leaves cpu.idle");
    });
}

/// An absolute `linux.cgroupsPath` named after the case: a cgroup of the hierarchy's root,
/// where the controllers are delegated on a systemd host too (in the forky guest the tests
/// run inside a service, whose own cgroup holds processes and delegates nothing).
fn in_a_cgroup_of_the_root(c: &mut Case) {
    let path = format!("/{}", c.id);
    c.config()["linux"]["cgroupsPath"] = json!(path);
}

/// The `major:minor` of a whole disk of this machine (blkio throttles take no partition).
fn a_disk() -> String {
    let mut disks: Vec<String> = fs::read_dir("/sys/block")
        .expect("/sys/block")
        .flatten()
        .filter(|e| {
            !["loop", "ram", "zram", "dm-", "nbd"].iter().any(|p| e.file_name().to_string_lossy().starts_with(p))
        })
        .filter_map(|e| fs::read_to_string(e.path().join("dev")).ok())
        .map(|d| d.trim().to_string())
        .collect();
    disks.sort();
    disks.into_iter().next().expect("this test needs a disk in /sys/block (vd*, sd*, nvme*)")
}

/// update.bats "update per-device iops/bps values": a device named by `update` gets its
/// rates, the one the config listed twice included.
#[test]
fn update_block_io_throttles_per_device() {
    let dev = a_disk();
    let (major, minor) = dev.split_once(':').unwrap();
    let (major, minor): (i64, i64) = (major.parse().unwrap(), minor.parse().unwrap());
    let unified = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    each_runtime_but(&["runc<1.3", "crun"], "cg_blkio_update", |c, rt| {
        in_a_cgroup_of_the_root(c);
        c.bundle.set_args(&["sleep", "1000"]);
        let twice =
            json!([{"major": major, "minor": minor, "rate": 485760}, {"major": major, "minor": minor, "rate": 485760}]);
        c.config()["linux"]["resources"]["blockIO"] = json!({"throttleReadBpsDevice": twice});
        c.create().expect_ok(rt);
        c.start().expect_ok(rt);
        let one = |rate: u64| json!([{"major": major, "minor": minor, "rate": rate}]);
        let change = json!({"blockIO": {
            "throttleReadBpsDevice": one(10485760), "throttleWriteBpsDevice": one(9437184),
            "throttleReadIOPSDevice": one(1000), "throttleWriteIOPSDevice": one(900)}});
        let out = c.rt.cmd().args(["update", "-r", "-", &c.id]).stdin(change.to_string().as_bytes()).run();
        out.expect_ok(&format!("{rt}: update of the throttles"));
        let pid = init_pid(c);
        if unified {
            let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("/proc/<pid>/cgroup");
            let path = text.lines().find_map(|l| l.strip_prefix("0::")).expect("a cgroup v2 line");
            let max = knob("", path, "io.max");
            assert!(
                max.lines().any(|l| l == format!("{dev} rbps=10485760 wbps=9437184 riops=1000 wiops=900")),
                "{rt}: io.max:\n{max}"
            );
        } else {
            let blkio = cgroup_of(pid, "blkio");
            for (file, rate) in
                [("read_bps", 10485760), ("write_bps", 9437184), ("read_iops", 1000), ("write_iops", 900)]
            {
                let text = knob("blkio", &blkio, &format!("blkio.throttle.{file}_device"));
                assert_eq!(text, format!("{dev} {rate}"), "{rt}: blkio.throttle.{file}_device");
            }
        }
    });
}

/// The 1-based positions, among this command's mkdir(2) calls, of those under /sys/fs/cgroup,
/// from a traced run of `create` (strace's `-o` log).
fn cgroup_mkdir_positions(log: &str) -> Vec<usize> {
    log.lines()
        .filter(|l| l.starts_with("mkdir("))
        .enumerate()
        .filter(|(_, l)| l.starts_with("mkdir(\"/sys/fs/cgroup/"))
        .map(|(i, _)| i + 1)
        .collect()
}

/// `berth create` under strace, SIGKILLed at its `n`th mkdir (None: only traced, log to `log`).
fn traced_create(c: &Case, n: Option<usize>, log: &Path) -> Out {
    c.write();
    let mut strace = conformance::runtime::Invocation::new(Path::new("/usr/bin/strace"))
        .args(["-qq", "-e", "trace=mkdir,mkdirat", "-o"])
        .arg(log);
    if let Some(n) = n {
        strace = strace.args(["-e", &format!("inject=mkdir:signal=KILL:when={n}")]);
    }
    strace
        .arg(&c.rt.bin)
        .arg("--root")
        .arg(&c.rt.root)
        .args(c.rt.globals.iter().cloned())
        .args(["create", "--bundle"])
        .arg(&c.bundle.dir)
        .arg(&c.id)
        .stdio_to(&c.stdio)
        .run()
}

/// issue 16: `create` killed (SIGKILL) at each of its cgroup mkdirs, in every hierarchy, for
/// a nested cgroupsPath whose parent it makes too. `delete --force` then removes every
/// directory it made (the state names them before they exist), and the id is reusable.
/// berth only: it is a walk over berth's own steps (runc makes its cgroups on other threads
/// of a Go process, which strace's counting does not single out).
#[test]
fn create_killed_at_each_cgroup_mkdir_leaves_nothing_after_delete_force() {
    assert!(Path::new("/usr/bin/strace").exists(), "strace is missing (make deps installs it)");
    let mut c = Case::new("cg_kill_mkdir");
    let parent = format!("{}-p", c.id);
    c.on_cleanup({
        let parent = parent.clone();
        move || remove_cgroup_tree(&parent)
    });
    c.config()["linux"]["cgroupsPath"] = format!("/{parent}/{}", c.id).into();
    let log = c.dir.join("mkdir.log");
    traced_create(&c, None, &log).expect_ok("traced create");
    c.rt.delete_force(&c.id).expect_ok("delete of the traced create");
    assert_eq!(cgroup_dirs_containing(&c.id), Vec::<PathBuf>::new(), "after a complete create and delete");
    let text = fs::read_to_string(&log).expect("strace log");
    let positions = cgroup_mkdir_positions(&text);
    assert!(positions.len() >= 4, "create made fewer cgroup directories than expected:\n{text}");
    for n in positions {
        let out = traced_create(&c, Some(n), &c.dir.join("kill.log"));
        // strace ends itself with the signal that ended its tracee.
        assert_eq!(out.signal, Some(9), "create was not killed at mkdir #{n}: {out}");
        c.rt.delete_force(&c.id).expect_ok(&format!("delete --force after a kill at mkdir #{n}"));
        assert_eq!(
            cgroup_dirs_containing(&c.id),
            Vec::<PathBuf>::new(),
            "cgroup directories left after a kill at mkdir #{n} and delete --force"
        );
        assert!(!c.rt.list(&["-q"]).stdout.lines().any(|l| l == c.id), "still listed after a kill at mkdir #{n}");
        c.create().expect_ok(&format!("re-create after a kill at mkdir #{n}"));
        c.rt.delete_force(&c.id).expect_ok("delete of the re-create");
        assert_eq!(cgroup_dirs_containing(&c.id), Vec::<PathBuf>::new(), "after re-create and delete (kill at #{n})");
    }
}
