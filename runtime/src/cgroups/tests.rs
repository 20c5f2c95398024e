//! Tests of the Manager: against a fake cgroup2 tree in a temp dir (pure v2
//! cannot be had on the hybrid test VM), and, as root, against the real
//! cgroup v1 hybrid host. Every root test removes what it made, even when
//! it fails, through `Cleanup`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use oci_spec::runtime::LinuxResources;

use super::*;

fn res(json: &str) -> LinuxResources {
    serde_json::from_str(json).unwrap()
}

static N: AtomicUsize = AtomicUsize::new(0);

fn unique(tag: &str) -> String {
    format!("berth-test-{}-{}-{}", std::process::id(), tag, N.fetch_add(1, Ordering::SeqCst))
}

// ---------------------------------------------------------------- fake v2

struct FakeV2 {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl FakeV2 {
    fn new() -> FakeV2 {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        std::fs::write(root.join("cgroup.controllers"), "cpuset cpu io memory hugetlb pids").unwrap();
        std::fs::write(root.join("cgroup.subtree_control"), "").unwrap();
        std::fs::create_dir(root.join("parent")).unwrap();
        std::fs::write(root.join("parent/cgroup.controllers"), "cpuset cpu io memory hugetlb pids").unwrap();
        std::fs::write(root.join("parent/cgroup.subtree_control"), "").unwrap();
        FakeV2 { _tmp: tmp, root }
    }
    fn manager(&self, id: &str, path: Option<&str>) -> Box<dyn Manager> {
        let mi = format!("30 23 0:26 / {} rw - cgroup2 cgroup2 rw,nsdelegate\n", self.root.display());
        from_sources(id, path, &mi, "0::/parent\n", true).unwrap()
    }
    /// Container c1's manager, created, and its leaf.
    fn created_c1(&self) -> (PathBuf, Box<dyn Manager>) {
        let leaf = self.leaf("parent/c1");
        let m = self.manager("c1", None);
        m.create().unwrap();
        (leaf, m)
    }
    /// A leaf with the interface files a real cgroup2 dir would have.
    fn leaf(&self, rel: &str) -> PathBuf {
        let d = self.root.join(rel);
        std::fs::create_dir_all(&d).unwrap();
        for f in [
            "cgroup.procs",
            "cgroup.freeze",
            "memory.max",
            "memory.swap.max",
            "memory.low",
            "cpu.weight",
            "cpu.max",
            "cpu.max.burst",
            "cpu.idle",
            "cpuset.cpus",
            "cpuset.mems",
            "pids.max",
            "io.weight",
            "io.max",
            "hugetlb.2MB.max",
            "memory.high",
        ] {
            std::fs::write(d.join(f), "").unwrap();
        }
        d
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).trim().to_string()
}

#[test]
fn v2_paths_and_mounts() {
    let f = FakeV2::new();
    let m = f.manager("c1", None);
    assert!(m.is_v2());
    assert_eq!(m.mounts(), vec![CgroupMount { name: String::new(), host_path: f.root.join("parent/c1") }]);
    let m = f.manager("c1", Some("/abs/x"));
    assert_eq!(m.mounts()[0].host_path, f.root.join("abs/x"));
    let m = f.manager("c1", Some("rel"));
    assert_eq!(m.mounts()[0].host_path, f.root.join("parent/rel"));
}

#[test]
fn v2_an_idle_group_gets_no_weight_and_leaves_idle_before_one() {
    // The kernel refuses cpu.weight for an idle group (EINVAL).
    let f = FakeV2::new();
    let (leaf, m) = f.created_c1();
    m.apply(&res(r#"{"cpu":{"shares":1024,"idle":1}}"#)).unwrap();
    assert_eq!(read(&leaf.join("cpu.idle")), "1");
    assert_eq!(read(&leaf.join("cpu.weight")), "", "no weight while idle");
    m.apply(&res(r#"{"cpu":{"shares":1024,"idle":0}}"#)).unwrap();
    assert_eq!(read(&leaf.join("cpu.idle")), "0");
    assert_eq!(read(&leaf.join("cpu.weight")), "39");
}

#[test]
fn v2_apply_writes_the_files() {
    let f = FakeV2::new();
    let (leaf, m) = f.created_c1();
    m.apply(&res(r#"{"memory":{"limit":104857600,"swap":209715200,"reservation":52428800},
            "cpu":{"shares":1024,"quota":50000,"period":100000,"burst":1000,"idle":0,"cpus":"0-1","mems":"0"},
            "pids":{"limit":0},
            "blockIO":{"weight":500,"throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1048576}]},
            "hugepageLimits":[{"pageSize":"2MB","limit":-1}],
            "unified":{"memory.high":"80000000"}}"#))
        .unwrap();
    assert_eq!(read(&leaf.join("memory.max")), "104857600");
    assert_eq!(read(&leaf.join("memory.swap.max")), "104857600");
    assert_eq!(read(&leaf.join("memory.low")), "52428800");
    assert_eq!(read(&leaf.join("cpu.weight")), "39");
    assert_eq!(read(&leaf.join("cpu.max")), "50000 100000");
    assert_eq!(read(&leaf.join("cpu.max.burst")), "1000");
    assert_eq!(read(&leaf.join("cpu.idle")), "0");
    assert_eq!(read(&leaf.join("cpuset.cpus")), "0-1");
    assert_eq!(read(&leaf.join("pids.max")), "1");
    assert_eq!(read(&leaf.join("io.weight")), "default 4950");
    assert_eq!(read(&leaf.join("io.max")), "8:0 rbps=1048576");
    assert_eq!(read(&leaf.join("hugetlb.2MB.max")), "max");
    assert_eq!(read(&leaf.join("memory.high")), "80000000");
    // The parent was asked to delegate its controllers to the leaf.
    assert_eq!(read(&f.root.join("parent/cgroup.subtree_control")), "+cpuset +cpu +io +memory +hugetlb +pids");
}

#[test]
fn v2_open_dir_only_on_v2() {
    let f = FakeV2::new();
    f.leaf("parent/c1");
    let m = f.manager("c1", None);
    assert!(m.open_v2_dir().is_some());
    let gone = f.manager("nope", None);
    assert!(gone.open_v2_dir().is_none());
}

/// Rootless on cgroup v2 without delegation: the driver keeps no directory (open() drops
/// every one the user may not write). The container then runs in berth's own cgroup, as
/// runc's does: nothing to apply without limits, a limit refused by name.
#[test]
fn v2_rootless_without_a_cgroup_applies_nothing_and_refuses_limits_by_name() {
    let f = FakeV2::new();
    let mut st = f.manager("c1", None).state();
    st.hierarchies.clear();
    let m = from_state(&st);
    m.apply(&res(r#"{}"#)).expect("no limits, nothing to write");
    m.apply(&res(r#"{"memory":{},"cpu":{}}"#)).expect("empty members ask for nothing");
    let e = m.apply(&res(r#"{"memory":{"limit":1048576}}"#)).unwrap_err().to_string();
    assert!(e.contains("linux.resources.memory.limit"), "{e}");
    assert!(m.join_dirs(&[]).unwrap().is_empty());
}

#[test]
fn v2_docker_defaults_touch_nothing() {
    let f = FakeV2::new();
    let leaf = f.leaf("parent/c1");
    let m = f.manager("c1", None);
    m.apply(&res(r#"{"memory":{},"cpu":{"shares":0},"blockIO":{"weight":0}}"#)).unwrap();
    for file in ["memory.max", "memory.swap.max", "cpu.weight", "cpu.max", "io.weight"] {
        assert_eq!(read(&leaf.join(file)), "", "{file}");
    }
}

#[test]
fn v2_missing_controller_file_names_field_and_errno() {
    let f = FakeV2::new();
    std::fs::create_dir_all(f.root.join("parent/c1")).unwrap();
    let m = f.manager("c1", None);
    let e = m.apply(&res(r#"{"pids":{"limit":10}}"#)).unwrap_err().to_string();
    assert!(e.starts_with("linux.resources.pids.limit: writing \"10\" to "), "{e}");
    assert!(e.contains("ENOENT") && e.contains("\"pids\" controller"), "{e}");
}

#[test]
fn v2_create_and_destroy_remove_only_what_was_made() {
    let f = FakeV2::new();
    let m = f.manager("c1", Some("a/b/c"));
    m.create().unwrap();
    assert!(f.root.join("parent/a/b/c").is_dir());
    let st = m.state();
    assert_eq!(st.created, vec![f.root.join("parent/a"), f.root.join("parent/a/b"), f.root.join("parent/a/b/c")]);
    // Through state.json, as `delete` would.
    let json = serde_json::to_string(&st).unwrap();
    let back: CgroupState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, st);
    let m2 = from_state(&back);
    assert!(m2.is_v2());
    m2.destroy().unwrap();
    assert!(!f.root.join("parent/a").exists());
    assert!(f.root.join("parent").is_dir());
    // Nothing left to do: a second destroy is fine.
    m2.destroy().unwrap();
}

/// issue 16: the state saved between plan and create names every directory before it
/// exists, so a runtime killed while making them leaves a record that removes them all.
#[test]
fn plan_names_the_directories_before_they_exist() {
    let f = FakeV2::new();
    std::fs::create_dir_all(f.root.join("parent/a")).unwrap();
    let m = f.manager("c1", Some("a/b/c"));
    m.plan().unwrap();
    let planned = vec![f.root.join("parent/a/b"), f.root.join("parent/a/b/c")];
    assert_eq!(m.state().created, planned, "pre-existing parent/a is not ours");
    assert!(!f.root.join("parent/a/b").exists(), "plan makes nothing");
    // Killed half-way: only the first directory was made.
    std::fs::create_dir(f.root.join("parent/a/b")).unwrap();
    let after_crash = from_state(&m.state());
    after_crash.destroy().unwrap();
    assert!(!f.root.join("parent/a/b").exists());
    assert!(f.root.join("parent/a").is_dir());
    // create after plan adds nothing twice.
    m.create().unwrap();
    assert_eq!(m.state().created, planned);
    m.destroy().unwrap();
    assert!(!f.root.join("parent/a/b").exists());
}

#[test]
fn v2_shared_parent_stays_while_in_use() {
    let f = FakeV2::new();
    let a = f.manager("a", Some("/shared/a"));
    let b = f.manager("b", Some("/shared/b"));
    a.create().unwrap();
    b.create().unwrap();
    assert_eq!(a.state().created, vec![f.root.join("shared"), f.root.join("shared/a")]);
    assert_eq!(b.state().created, vec![f.root.join("shared/b")]);
    a.destroy().unwrap();
    assert!(a.state().created.is_empty());
    assert!(f.root.join("shared/b").is_dir());
    b.destroy().unwrap();
    assert!(!f.root.join("shared/b").exists());
}

#[test]
fn v2_b15_non_empty_or_frozen_is_refused_and_kept() {
    let f = FakeV2::new();
    let leaf = f.leaf("parent/c1");
    std::fs::write(leaf.join("cgroup.procs"), "4242\n4243\n").unwrap();
    let m = f.manager("c1", None);
    let e = m.create().unwrap_err().to_string();
    assert!(e.starts_with("container's cgroup is not empty: 2 process(es) found"), "{e}");
    m.destroy().unwrap();
    assert!(leaf.is_dir());

    let leaf = f.leaf("parent/c2");
    std::fs::write(leaf.join("cgroup.freeze"), "1\n").unwrap();
    let m = f.manager("c2", None);
    assert!(matches!(m.create(), Err(CgroupError::Frozen { .. })));
}

#[test]
fn v2_pids_recurse_into_sub_cgroups() {
    let f = FakeV2::new();
    let leaf = f.leaf("parent/c1");
    std::fs::write(leaf.join("cgroup.procs"), "10\n").unwrap();
    std::fs::create_dir(leaf.join("sub")).unwrap();
    std::fs::write(leaf.join("sub/cgroup.procs"), "11\n12\n").unwrap();
    let m = f.manager("c1", None);
    let mut p = m.pids().unwrap();
    p.sort();
    assert_eq!(p, vec![10, 11, 12]);
}

#[test]
fn v2_rejects_v1_only_knobs() {
    let f = FakeV2::new();
    let m = f.manager("c1", None);
    let e = m.validate(&res(r#"{"memory":{"swappiness":10}}"#)).unwrap_err().to_string();
    assert!(e.starts_with("linux.resources.memory.swappiness:"), "{e}");
    let e = m.apply(&res(r#"{"memory":{"disableOOMKiller":true}}"#)).unwrap_err().to_string();
    assert!(e.starts_with("linux.resources.memory.disableOOMKiller:"), "{e}");
}

#[test]
fn systemd_path_is_refused() {
    let f = FakeV2::new();
    let mi = format!("30 23 0:26 / {} rw - cgroup2 cgroup2 rw\n", f.root.display());
    let e = from_sources("c1", Some("system.slice:docker:c1"), &mi, "0::/\n", true).err().unwrap().to_string();
    assert!(e.contains("systemd"), "{e}");
}

// ------------------------------------------------------------ real v1 host

/// Whether the real-host tests can run: root on a v1 (hybrid) host. They are
/// `#[ignore]`d (CI runs them with `--include-ignored`) and fail where it is not.
fn real_v1() -> bool {
    let ok = nix::unistd::geteuid().is_root() && !host_is_unified() && Path::new("/proc/self/mountinfo").exists();
    if !ok {
        eprintln!("not a host for this test: it needs root on a cgroup v1 host");
    }
    ok
}

/// Kills what the test started and removes every directory named `name`
/// under every hierarchy, whatever happened.
struct Cleanup {
    name: String,
    children: Vec<Child>,
    /// Children made without std::process (clone3).
    raw: Vec<i32>,
    /// `cgroup.subtree_control` files of the host and what they held before the test: the
    /// driver enables controllers from the mount's root down, and a controller left enabled
    /// in the hybrid host's unified root makes crun refuse every later container.
    subtree_before: Vec<(PathBuf, String)>,
}

impl Cleanup {
    fn new(name: &str) -> Cleanup {
        Cleanup { name: name.to_string(), children: Vec::new(), raw: Vec::new(), subtree_before: Vec::new() }
    }
    /// Directories left on the host with our name anywhere in any
    /// hierarchy (with their sub-cgroups), deepest first.
    fn leftovers(&self) -> Vec<PathBuf> {
        let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut out = Vec::new();
        for m in cgroupfs::hierarchy::parse_mountinfo(&mi) {
            let mut stack = vec![(m.mount_point.clone(), false)];
            while let Some((d, ours)) = stack.pop() {
                let ours = ours || d.file_name().is_some_and(|n| n == self.name.as_str());
                if ours {
                    out.push(d.clone());
                }
                for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        stack.push((e.path(), ours));
                    }
                }
            }
        }
        out.reverse();
        out
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for &p in &self.raw {
            let p = nix::unistd::Pid::from_raw(p);
            let _ = nix::sys::signal::kill(p, nix::sys::signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(p, None);
        }
        for d in self.leftovers() {
            // A frozen test cgroup must be thawed before it can go.
            let _ = std::fs::write(d.join("freezer.state"), "THAWED");
            let _ = fsutil::rmdir_retry(&d);
        }
        for (file, before) in &self.subtree_before {
            let now = std::fs::read_to_string(file).unwrap_or_default();
            for ctl in now.split_whitespace().filter(|c| !before.split_whitespace().any(|b| b == *c)) {
                let _ = std::fs::write(file, format!("-{ctl}"));
            }
        }
    }
}

fn docker_devices() -> &'static str {
    r#"[{"allow":false,"access":"rwm"},
        {"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"},
        {"allow":true,"type":"c","major":1,"minor":5,"access":"rwm"},
        {"allow":true,"type":"c","major":136,"access":"rwm"},
        {"allow":true,"type":"c","access":"m"},
        {"allow":true,"type":"b","access":"m"}]"#
}

/// A shell that waits for `go` on stdin, then reports what it can open.
fn probe() -> Child {
    Command::new("sh")
        .arg("-c")
        .arg(
            "read go; head -c1 /dev/zero >/dev/null 2>&1 && echo zero-ok || echo zero-denied; \
             head -c1 /dev/urandom >/dev/null 2>&1 && echo urandom-ok || echo urandom-denied; exec sleep 100",
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The manager's directory on the hierarchy of `controller`.
fn d_of(m: &dyn Manager, controller: &str) -> PathBuf {
    m.dir_for(controller).unwrap().to_path_buf()
}

/// Lets the probe run and returns its two report lines.
fn probe_report(c: &mut Child) -> (String, String) {
    use std::io::{BufRead, BufReader, Write};
    c.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let mut r = BufReader::new(c.stdout.take().unwrap());
    let (mut a, mut b) = (String::new(), String::new());
    r.read_line(&mut a).unwrap();
    r.read_line(&mut b).unwrap();
    (a.trim().to_string(), b.trim().to_string())
}

#[test]
#[ignore = "needs root on a cgroup v1 host"]
fn root_v1_lifecycle_apply_add_pids_destroy() {
    assert!(real_v1(), "needs root on a cgroup v1 host");
    let name = unique("life");
    let mut guard = Cleanup::new(&name);
    let m = open("ctr", Some(&format!("/{name}/ctr")), false).unwrap();
    assert!(!m.is_v2());
    m.create().unwrap();
    let mounts = m.mounts();
    assert!(mounts.iter().any(|c| c.name == "memory"));
    assert!(mounts.iter().any(|c| c.name == "name=systemd"));
    for c in &mounts {
        assert!(c.host_path.is_dir(), "{}", c.host_path.display());
        assert!(c.host_path.ends_with(format!("{name}/ctr")));
    }
    // A blkio weight has a file only under an I/O scheduler that weighs (CFQ before 5.0,
    // BFQ since): kernels without BFQ refuse the weight, naming it, as runc does.
    let blkio = d_of(&*m, "blkio");
    let weighs = blkio.join("blkio.weight").exists() || blkio.join("blkio.bfq.weight").exists();
    if !weighs {
        let err = m.apply(&res(r#"{"blockIO":{"weight":300}}"#)).unwrap_err();
        assert!(err.to_string().contains("linux.resources.blockIO.weight"), "{err}");
    }
    let r = format!(
        r#"{{"memory":{{"limit":67108864,"swap":134217728,"reservation":33554432,"swappiness":10}},
             "cpu":{{"shares":512,"quota":20000,"period":100000,"cpus":"0","mems":"0"}},
             "pids":{{"limit":50}},
             "blockIO":{{"weight":{}}},
             "devices":{}}}"#,
        if weighs { 300 } else { 0 },
        docker_devices()
    );
    m.apply(&res(&r)).unwrap();
    let d = |c: &str| d_of(&*m, c);
    assert_eq!(read(&d("memory").join("memory.limit_in_bytes")), "67108864");
    assert_eq!(read(&d("memory").join("memory.memsw.limit_in_bytes")), "134217728");
    assert_eq!(read(&d("memory").join("memory.soft_limit_in_bytes")), "33554432");
    assert_eq!(read(&d("memory").join("memory.swappiness")), "10");
    assert_eq!(read(&d("cpu").join("cpu.shares")), "512");
    assert_eq!(read(&d("cpu").join("cpu.cfs_quota_us")), "20000");
    assert_eq!(read(&d("cpu").join("cpu.cfs_period_us")), "100000");
    assert_eq!(read(&d("cpuset").join("cpuset.cpus")), "0");
    assert_eq!(read(&d("pids").join("pids.max")), "50");
    let list = read(&d("devices").join("devices.list"));
    assert!(list.contains("c 1:3 rwm") && list.contains("c 136:* rwm"), "{list}");
    assert!(!list.contains("a *:* rwm"), "{list}");

    // Applying again (an `update`) with the same values is fine, even with
    // a sub-cgroup (where "deny all" would be refused): the device rules
    // are recognised as already in place.
    std::fs::create_dir(d("devices").join("sub")).unwrap();
    m.apply(&res(&r)).unwrap();
    std::fs::remove_dir(d("devices").join("sub")).unwrap();

    let child = probe();
    let pid = child.id() as i32;
    guard.children.push(child);
    m.add_pid(pid).unwrap();
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let managed = m.state().hierarchies;
    let mut seen = 0;
    for e in cgroupfs::hierarchy::parse_proc_cgroup(&own) {
        // Hierarchies not mounted here (another mount namespace may have
        // mounted e.g. hugetlb as v1) are not ours to manage.
        if managed.iter().any(|h| h.subsystems == e.controllers) {
            assert!(e.path.ends_with(&format!("/{name}/ctr")), "{e:?}");
            seen += 1;
        }
    }
    assert_eq!(seen, managed.len());
    assert_eq!(m.pids().unwrap(), vec![pid]);
    let (zero, urandom) = probe_report(guard.children.last_mut().unwrap());
    assert_eq!(zero, "zero-ok");
    assert_eq!(urandom, "urandom-denied");

    // Pause and resume.
    m.set_frozen(true).unwrap();
    assert!(m.is_frozen().unwrap());
    assert_eq!(read(&d("freezer").join("freezer.state")), "FROZEN");
    m.set_frozen(false).unwrap();
    assert!(!m.is_frozen().unwrap());

    // A destroy while the process lives fails and keeps the record.
    assert!(m.destroy().is_err());
    assert!(!m.state().created.is_empty());

    for c in &mut guard.children {
        c.kill().unwrap();
        c.wait().unwrap();
    }
    guard.children.clear();
    // Sub-cgroups made inside the container's cgroup go with it: the kernel refuses the
    // leaf's own rmdir while they are there.
    std::fs::create_dir_all(d("pids").join("sub/deeper")).unwrap();
    std::fs::create_dir(d("memory").join("sub")).unwrap();
    // Reopened from state, as `delete` does.
    let m2 = from_state(&m.state());
    m2.destroy().unwrap();
    assert!(m2.state().created.is_empty());
    assert!(!d("pids").exists() && !d("memory").exists());
    assert_eq!(guard.leftovers(), Vec::<PathBuf>::new());
}

#[test]
#[ignore = "needs root on a cgroup v1 host"]
fn root_v1_docker_defaults_apply() {
    assert!(real_v1(), "needs root on a cgroup v1 host");
    let name = unique("dock");
    let guard = Cleanup::new(&name);
    let m = open(&name, None, false).unwrap();
    m.create().unwrap();
    let r = format!(
        r#"{{"devices":{},"memory":{{}},"cpu":{{"shares":0}},"blockIO":{{"weight":0}},"pids":{{"limit":-1}}}}"#,
        docker_devices()
    );
    m.apply(&res(&r)).unwrap();
    assert_eq!(read(&m.dir_for("pids").unwrap().join("pids.max")), "max");
    m.destroy().unwrap();
    // Under our own cgroup on each hierarchy: nothing of ours left anywhere.
    for h in m.state().hierarchies {
        assert!(!h.dir.exists(), "{}", h.dir.display());
    }
    assert_eq!(guard.leftovers(), Vec::<PathBuf>::new());
}

#[test]
#[ignore = "needs root on a cgroup v1 host"]
fn root_v1_b15_non_empty_cgroup_is_refused_and_kept() {
    assert!(real_v1(), "needs root on a cgroup v1 host");
    let name = unique("b15");
    let mut guard = Cleanup::new(&name);
    let m = open("ctr", Some(&format!("/{name}")), false).unwrap();
    let mem = m.dir_for("memory").unwrap().to_path_buf();
    std::fs::create_dir(&mem).unwrap();
    let child = Command::new("sleep").arg("100").spawn().unwrap();
    let pid = child.id();
    guard.children.push(child);
    std::fs::write(mem.join("cgroup.procs"), pid.to_string()).unwrap();

    let e = m.create().unwrap_err().to_string();
    assert!(e.starts_with("container's cgroup is not empty: 1 process(es) found"), "{e}");
    // Refused before anything was made anywhere.
    assert_eq!(guard.leftovers(), vec![mem.clone()]);
    m.destroy().unwrap();
    assert!(mem.is_dir());
}

#[test]
#[ignore = "needs root on a cgroup v1 host"]
fn root_v1_b15_frozen_cgroup_is_refused() {
    assert!(real_v1(), "needs root on a cgroup v1 host");
    let name = unique("frz");
    let guard = Cleanup::new(&name);
    let m = open("ctr", Some(&format!("/{name}")), false).unwrap();
    let frz = m.dir_for("freezer").unwrap().to_path_buf();
    std::fs::create_dir(&frz).unwrap();
    std::fs::write(frz.join("freezer.state"), "FROZEN").unwrap();
    assert!(matches!(m.create(), Err(CgroupError::Frozen { .. })));
    assert_eq!(guard.leftovers(), vec![frz]);
}

#[test]
#[ignore = "needs root on a cgroup v1 host"]
fn root_v1_pre_existing_empty_leaf_is_reused_then_removed_as_runc_does() {
    assert!(real_v1(), "needs root on a cgroup v1 host");
    let name = unique("keep");
    let guard = Cleanup::new(&name);
    let m = open("ctr", Some(&format!("/{name}")), false).unwrap();
    let mem = m.dir_for("memory").unwrap().to_path_buf();
    std::fs::create_dir(&mem).unwrap();
    std::fs::create_dir(mem.join("sub")).unwrap();
    m.create().unwrap();
    assert!(!m.state().created.contains(&mem));
    m.destroy().unwrap();
    assert_eq!(guard.leftovers(), Vec::<PathBuf>::new());
}

#[test]
#[ignore = "needs root on a cgroup v1 host"]
fn root_v1_unified_resources_are_refused() {
    assert!(real_v1(), "needs root on a cgroup v1 host");
    let name = unique("uni");
    let _guard = Cleanup::new(&name);
    let m = open("ctr", Some(&format!("/{name}")), false).unwrap();
    let e = m.apply(&res(r#"{"unified":{"memory.max":"10M"}}"#)).unwrap_err().to_string();
    assert!(e.starts_with("linux.resources.unified:"), "{e}");
}

/// The eBPF device filter, loaded into the real kernel and attached to a
/// cgroup2 directory (the hybrid host's unified hierarchy): the verifier
/// accepts the program and it enforces the rules.
#[test]
#[ignore = "needs root on a cgroup v1 hybrid host (a cgroup2 mount beside v1)"]
fn root_ebpf_device_filter_enforces_rules() {
    assert!(real_v1(), "needs root on a cgroup v1 host");
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let Some(uni) = cgroupfs::hierarchy::parse_mountinfo(&mi).into_iter().find(|m| m.v2 && m.root == "/") else {
        panic!("needs a cgroup2 mount (a hybrid host's unified hierarchy)");
    };
    let name = unique("bpf");
    let mut guard = Cleanup::new(&name);
    let dir = uni.mount_point.join(&name);
    std::fs::create_dir(&dir).unwrap();
    let list: Vec<oci_spec::runtime::LinuxDeviceCgroup> = serde_json::from_str(docker_devices()).unwrap();
    let rules = devices::parse_rules(&list).unwrap();
    bpf::apply_device_filter(&dir, &rules).unwrap();
    // A second apply replaces the program rather than stacking another.
    bpf::apply_device_filter(&dir, &rules).unwrap();

    let child = probe();
    let pid = child.id();
    guard.children.push(child);
    std::fs::write(dir.join("cgroup.procs"), pid.to_string()).unwrap();
    let (zero, urandom) = probe_report(guard.children.last_mut().unwrap());
    assert_eq!(zero, "zero-ok");
    assert_eq!(urandom, "urandom-denied");
}

/// The v2 driver on a real cgroup2 filesystem: the hybrid host's unified
/// hierarchy, seen as if it were a pure v2 host. Controllers may be absent
/// there, but directories, cgroup.procs, cgroup.freeze, the eBPF device
/// filter and clone3(CLONE_INTO_CGROUP) are all real.
#[test]
#[ignore = "needs root on a cgroup v1 hybrid host (a cgroup2 mount beside v1)"]
fn root_v2_driver_on_the_real_cgroup2_mount() {
    assert!(real_v1(), "needs root on a cgroup v1 host");
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let Some(line) = mi.lines().find(|l| l.contains(" - cgroup2 ") && l.split(' ').nth(3) == Some("/")) else {
        panic!("needs a cgroup2 mount (a hybrid host's unified hierarchy)");
    };
    let pc = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let v2line: String = pc.lines().filter(|l| l.starts_with("0::")).collect();
    let name = unique("v2");
    let mut guard = Cleanup::new(&name);
    let mount_point = PathBuf::from(line.split(' ').nth(4).unwrap());
    let root_sc = mount_point.join("cgroup.subtree_control");
    guard.subtree_before.push((root_sc.clone(), std::fs::read_to_string(&root_sc).unwrap()));
    let m = from_sources("ctr", Some(&format!("/{name}/ctr")), line, &v2line, true).unwrap();
    assert!(m.is_v2());
    m.create().unwrap();
    let dir = m.mounts()[0].host_path.clone();
    assert!(dir.is_dir());
    let r = format!(r#"{{"devices":{},"memory":{{}},"cpu":{{"shares":0}}}}"#, docker_devices());
    m.apply(&res(&r)).unwrap();

    // Placed at birth, without an attach.
    let fd = m.open_v2_dir().unwrap();
    let pid = clone_into_cgroup(&fd);
    guard.raw.push(pid);
    assert_eq!(m.pids().unwrap(), vec![pid]);
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(own.lines().any(|l| l == format!("0::/{name}/ctr")), "{own}");

    // And by attach.
    let probe = probe();
    let ppid = probe.id() as i32;
    guard.children.push(probe);
    m.add_pid(ppid).unwrap();
    let mut all = m.pids().unwrap();
    all.sort();
    let mut want = vec![pid, ppid];
    want.sort();
    assert_eq!(all, want);
    let (zero, urandom) = probe_report(guard.children.last_mut().unwrap());
    assert_eq!(zero, "zero-ok");
    assert_eq!(urandom, "urandom-denied");

    m.set_frozen(true).unwrap();
    assert!(m.is_frozen().unwrap());
    m.set_frozen(false).unwrap();

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL).unwrap();
    nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap();
    guard.raw.clear();
    for c in &mut guard.children {
        c.kill().unwrap();
        c.wait().unwrap();
    }
    guard.children.clear();
    m.destroy().unwrap();
    assert_eq!(guard.leftovers(), Vec::<PathBuf>::new());
}

/// A child that waits for a signal, born in the cgroup `fd`.
fn clone_into_cgroup(fd: &std::os::fd::OwnedFd) -> i32 {
    use std::os::fd::AsFd;
    // The child only calls pause/_exit, which are async-signal-safe, so the test harness's
    // other threads don't matter.
    match crate::sys::clone3_fork(0, Some(fd.as_fd())).expect("clone3") {
        crate::sys::Forked::Child => {
            nix::unistd::pause();
            crate::sys::exit_now(0)
        }
        crate::sys::Forked::Parent { pid, .. } => pid,
    }
}
