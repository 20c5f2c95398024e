//! runtime-spec 1.3 process attributes and the time namespace: personality, scheduler,
//! ioPriority, execCPUAffinity, memoryPolicy, timeOffsets, netDevices, intelRdt, and the
//! bad-input rules (B17/B18) for them.

use conformance::Case;
use serde_json::json;

#[test]
fn personality_linux32_makes_uname_report_i686() {
    let mut c = Case::new("s13_pers32");
    c.config()["linux"]["personality"] = json!({"domain": "LINUX32"});
    assert_eq!(c.sh_ok("uname -m").trim(), "i686");
    c.config()["linux"]["personality"] = json!({"domain": "LINUX"});
    assert_eq!(c.sh_ok("uname -m").trim(), "x86_64");
}

// runc 1.3's personality.bats "with exec for i686".
#[test]
fn personality_applies_to_an_exec_process_too() {
    let mut c = Case::new("s13_pers_exec");
    c.config()["linux"]["personality"] = json!({"domain": "LINUX32"});
    c.bundle.set_args(&["sleep", "1000"]);
    c.create().expect_ok("create");
    c.start().expect_ok("start");
    let out = c.rt.exec(&["exec", &c.id, "uname", "-m"]);
    out.expect_ok("exec uname -m");
    assert_eq!(out.stdout.trim(), "i686");
}

#[test]
fn scheduler_batch_policy_and_nice_are_applied() {
    let mut c = Case::new("s13_sched");
    c.config()["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7});
    // /proc/self/stat: field 19 is nice, 41 the policy (comm has no spaces here).
    let out = c.sh_ok("cut -d' ' -f19,41 /proc/self/stat");
    assert_eq!(out.trim(), "7 3", "nice 7, SCHED_BATCH (3)");
}

// runc 1.3's scheduler.bats: the flags under runtime-spec's names, seen by the host's chrt.
#[test]
fn scheduler_flags_are_read_under_runtime_specs_names() {
    let mut c = Case::new("s13_sched_flags");
    c.config()["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "flags": ["SCHED_FLAG_RESET_ON_FORK"]});
    c.bundle.set_args(&["sleep", "1000"]);
    c.create().expect_ok("create with SCHED_FLAG_RESET_ON_FORK");
    c.start().expect_ok("start");
    let pid = c.state()["pid"].as_i64().unwrap().to_string();
    let out = std::process::Command::new("chrt").args(["-p", &pid]).output().expect("chrt");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("scheduling policy: SCHED_BATCH|SCHED_RESET_ON_FORK"), "{text}");
}

// scheduler.bats "scheduler vs cpus": SCHED_DEADLINE in a cpuset of fewer CPUs than the
// host's fails in runc's words.
#[test]
fn deadline_scheduler_with_a_cpuset_fails_in_runcs_words() {
    let mut c = Case::new("s13_sched_cpus");
    c.config()["linux"]["resources"]["cpu"] = json!({"cpus": "0", "mems": "0"});
    c.config()["process"]["scheduler"] =
        json!({"policy": "SCHED_DEADLINE", "runtime": 42000, "deadline": 1000000, "period": 1000000});
    let out = c.expect_create_fails(&["process.scheduler"]);
    assert!(out.stderr.contains("process scheduler can't be used together with AllowedCPUs"), "{out}");
}

#[test]
fn real_time_policy_without_rt_runtime_in_the_cgroup_fails_naming_the_field() {
    // On cgroup v1 a new cpu cgroup has cpu.rt_runtime_us = 0, so the kernel refuses
    // SCHED_FIFO inside it (runc fails the same way); the error must name the field.
    let mut c = Case::new("s13_fifo");
    c.config()["process"]["scheduler"] = json!({"policy": "SCHED_FIFO", "priority": 10});
    c.expect_create_fails(&["process.scheduler"]);
}

#[test]
fn io_priority_class_and_level_are_applied() {
    let mut c = Case::new("s13_ioprio");
    c.config()["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0});
    assert_eq!(c.sh_ok("ionice -p $$").trim(), "idle");
    c.config()["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 6});
    assert_eq!(c.sh_ok("ionice -p $$").trim(), "best-effort: prio 6");
}

fn cpus_allowed(status: &str) -> String {
    status.lines().find(|l| l.starts_with("Cpus_allowed_list")).unwrap().to_string()
}

/// A running `sleep` container with `process.execCPUAffinity` set to `affinity`.
fn sleeper_with_exec_affinity(name: &str, affinity: serde_json::Value) -> Case {
    let mut c = Case::new(name);
    c.config()["process"]["execCPUAffinity"] = affinity;
    c.bundle.set_args(&["sleep", "1000"]);
    c.create().expect_ok("create");
    c.start().expect_ok("start");
    c
}

fn exec_ok(c: &Case, args: &[&str]) -> String {
    let mut all = vec!["exec", c.id.as_str()];
    all.extend_from_slice(args);
    let out = c.rt.exec(&all);
    out.expect_ok(&format!("exec {args:?}"));
    out.stdout
}

#[test]
fn exec_cpu_affinity_final_pins_an_exec_process_and_not_the_init() {
    let host = cpus_allowed(&std::fs::read_to_string("/proc/self/status").unwrap());
    let c = sleeper_with_exec_affinity("s13_affinity", json!({"initial": "0", "final": "1"}));
    let exec = exec_ok(&c, &["grep", "Cpus_allowed_list", "/proc/self/status"]);
    assert_eq!(exec.trim(), "Cpus_allowed_list:\t1", "the exec'd process");
    let init = exec_ok(&c, &["grep", "Cpus_allowed_list", "/proc/1/status"]);
    assert_eq!(init.trim(), host, "runtime-spec: execCPUAffinity does not apply to the init");
}

#[test]
fn exec_cpu_affinity_initial_alone_stays_with_an_exec_process() {
    // runtime-spec: without `final` the runtime does not change the affinity after the move
    // into the cgroup (runc 1.3 leaves `initial`).
    let c = sleeper_with_exec_affinity("s13_affinity_init", json!({"initial": "1"}));
    let exec = exec_ok(&c, &["grep", "Cpus_allowed_list", "/proc/self/status"]);
    assert_eq!(exec.trim(), "Cpus_allowed_list:\t1");
}

/// Pins the calling thread, and so the runtime it spawns, to CPU 0 until dropped.
struct PinnedToCpu0(nix::sched::CpuSet);

impl PinnedToCpu0 {
    fn new() -> PinnedToCpu0 {
        use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
        let this_thread = nix::unistd::Pid::from_raw(0);
        let saved = sched_getaffinity(this_thread).expect("sched_getaffinity");
        let mut cpu0 = CpuSet::new();
        cpu0.set(0).unwrap();
        sched_setaffinity(this_thread, &cpu0).expect("sched_setaffinity");
        PinnedToCpu0(saved)
    }
}

impl Drop for PinnedToCpu0 {
    fn drop(&mut self) {
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &self.0);
    }
}

// runc 1.3's cpu_affinity.bats "CPU affinity should reset" and "default CPU affinity
// should reset": without execCPUAffinity, neither the init's process nor an exec'd one
// keeps the CPUs the runtime was started on (a pinned shim, `taskset`).
#[test]
fn without_exec_cpu_affinity_processes_do_not_keep_the_runtimes_cpus() {
    let host = cpus_allowed(&std::fs::read_to_string("/proc/self/status").unwrap());
    assert_ne!(host, "Cpus_allowed_list:\t0", "this test needs a second CPU to tell the two apart");
    let mut c = Case::new("s13_affinity_reset");
    let _pinned = PinnedToCpu0::new();
    let out = c.sh_ok("grep Cpus_allowed_list /proc/self/status");
    assert_eq!(out.trim(), host, "run under taskset -c 0");
    c.bundle.set_args(&["sleep", "1000"]);
    c.create().expect_ok("create");
    c.start().expect_ok("start");
    let exec = exec_ok(&c, &["grep", "Cpus_allowed_list", "/proc/self/status"]);
    assert_eq!(exec.trim(), host, "exec under taskset -c 0");
}

#[test]
fn memory_policy_bind_shows_in_numa_maps() {
    let mut c = Case::new("s13_mempolicy");
    c.config()["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "0"});
    let out = c.sh_ok("grep -c 'bind:0' /proc/self/numa_maps");
    assert!(out.trim().parse::<u32>().unwrap() > 0, "{out}");
    c.config()["linux"]["memoryPolicy"] = json!({"mode": "MPOL_INTERLEAVE", "nodes": "0"});
    let out = c.sh_ok("grep -c 'interleave:0' /proc/self/numa_maps");
    assert!(out.trim().parse::<u32>().unwrap() > 0, "{out}");
}

#[test]
fn intel_rdt_without_resctrl_is_an_error_naming_the_field() {
    assert!(!std::path::Path::new("/sys/fs/resctrl").exists(), "this test expects a host without resctrl");
    let mut c = Case::new("s13_rdt");
    c.config()["linux"]["intelRdt"] = json!({"closID": "x"});
    c.expect_create_fails(&["intelRdt: resctrl is not available on this host"]);
}

// B17: process attributes out of range.

#[test]
fn b17_scheduler_out_of_range_is_refused() {
    for (n, sched, needle) in [
        ("nice", json!({"policy": "SCHED_OTHER", "nice": 20}), "process.scheduler.nice"),
        ("prio_other", json!({"policy": "SCHED_OTHER", "priority": 5}), "process.scheduler.priority"),
        ("prio_fifo", json!({"policy": "SCHED_FIFO", "priority": 100}), "process.scheduler.priority"),
        ("deadline", json!({"policy": "SCHED_BATCH", "runtime": 100}), "process.scheduler"),
    ] {
        let mut c = Case::new(&format!("b17_sched_{n}"));
        c.config()["process"]["scheduler"] = sched;
        c.expect_create_fails(&[needle]);
    }
}

#[test]
fn b17_io_priority_out_of_range_is_refused() {
    let mut c = Case::new("b17_ioprio");
    c.config()["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 8});
    c.expect_create_fails(&["process.ioPriority.priority"]);
}

#[test]
fn b17_bad_memory_policy_and_personality_flag_are_refused() {
    let mut c = Case::new("b17_mempol");
    c.config()["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND"});
    c.expect_create_fails(&["linux.memoryPolicy.nodes"]);
    c.config()["linux"]["memoryPolicy"] = json!({"mode": "MPOL_DEFAULT", "nodes": "0"});
    c.expect_create_fails(&["linux.memoryPolicy.nodes"]);
    c.config()["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "zero"});
    c.expect_create_fails(&["linux.memoryPolicy.nodes"]);
    c.config()["linux"].as_object_mut().unwrap().remove("memoryPolicy");
    c.config()["linux"]["personality"] = json!({"domain": "LINUX", "flags": ["NO_SUCH_FLAG"]});
    c.expect_create_fails(&["linux.personality.flags[0]"]);
}

#[test]
fn b17_bad_cpu_list_is_refused() {
    let mut c = Case::new("b17_cpus");
    c.config()["process"]["execCPUAffinity"] = json!({"final": "1-0"});
    c.expect_create_fails(&["execCPUAffinity"]);
}

fn uptime_secs(text: &str) -> f64 {
    text.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn time_namespace_offsets_shift_boottime_and_monotonic() {
    let mut c = Case::new("s13_timens");
    c.config()["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "time"}));
    c.config()["linux"]["timeOffsets"] = json!({
        "boottime": {"secs": 864000, "nanosecs": 0},
        "monotonic": {"secs": 3600, "nanosecs": 500}
    });
    let before = uptime_secs(&std::fs::read_to_string("/proc/uptime").unwrap());
    let out = c.sh_ok("cat /proc/uptime; readlink /proc/self/ns/time");
    let after = uptime_secs(&std::fs::read_to_string("/proc/uptime").unwrap());
    let inside = uptime_secs(&out);
    assert!(inside >= before + 864000.0 && inside <= after + 864000.0, "inside {inside}, host {before}..{after}");
    let host_ns = std::fs::read_link("/proc/self/ns/time").unwrap();
    assert_ne!(out.lines().nth(1).unwrap(), host_ns.to_str().unwrap(), "a new time namespace");
}

// B18: settings that need a namespace the config does not create.

#[test]
fn b18_time_offsets_without_a_time_namespace_are_refused() {
    let mut c = Case::new("b18_timeoffsets");
    c.config()["linux"]["timeOffsets"] = json!({"boottime": {"secs": 1}});
    c.expect_create_fails(&["linux.timeOffsets"]);
    c.config()["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "time"}));
    c.config()["linux"]["timeOffsets"] = json!({"realtime": {"secs": 1}});
    c.expect_create_fails(&["linux.timeOffsets"]);
}

fn host_link_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

/// A veth pair on the host (this kernel has no dummy driver), deleted at the end of the
/// test if still there.
fn veth(c: &mut Case, name: &str, peer: &str) {
    let st = std::process::Command::new("ip")
        .args(["link", "add", name, "type", "veth", "peer", "name", peer])
        .status()
        .expect("ip");
    assert!(st.success(), "ip link add {name}");
    let n = name.to_string();
    c.on_cleanup(move || {
        let _ = std::process::Command::new("ip").args(["link", "del", &n]).status();
    });
}

#[test]
fn net_device_is_moved_in_renamed_and_gone_with_the_container() {
    let mut c = Case::new("s13_netdev");
    let host = format!("bv{}", std::process::id() % 100_000);
    let peer = format!("bp{}", std::process::id() % 100_000);
    veth(&mut c, &host, &peer);
    c.config()["linux"]["netDevices"] = json!({ host.clone(): {"name": "ctr0"} });
    c.bundle.set_sh("ip -o link show ctr0 && sleep 100");
    c.create().expect_ok("create");
    assert!(!host_link_exists(&host), "{host} left the host while the container exists");
    c.start().expect_ok("start");
    conformance::util::poll_until("ip output", std::time::Duration::from_secs(10), || {
        c.output().contains("ctr0").then_some(())
    });
    assert!(c.output().contains("ctr0"), "{}", c.output());
    c.rt.delete_force(&c.id).expect_ok("delete");
    // A virtual device dies with the namespace (kernel behaviour, as with runc), and a
    // veth takes its peer along. The kernel tears a dead namespace down from a workqueue,
    // so the pair goes a little after delete returns.
    conformance::util::poll_until("the veth pair is destroyed", std::time::Duration::from_secs(30), || {
        (!host_link_exists(&host) && !host_link_exists(&peer)).then_some(())
    });
}

#[test]
fn b18_net_devices_without_a_network_namespace_or_unknown_are_refused() {
    let mut c = Case::new("b18_netdev");
    c.config()["linux"]["netDevices"] = json!({"no-such-if0": {}});
    c.expect_create_fails(&["linux.netDevices[\"no-such-if0\"]: no such interface"]);
    c.config()["linux"]["netDevices"] = json!({"lo": {"name": "a/b"}});
    c.expect_create_fails(&["linux.netDevices[\"lo\"].name"]);
    c.bundle.remove_namespace("network");
    c.config()["linux"]["netDevices"] = json!({"lo": {}});
    c.expect_create_fails(&["linux.netDevices"]);
}
