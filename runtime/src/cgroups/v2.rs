//! The cgroup v2 driver: one directory, controllers enabled from the root
//! down, devices through an eBPF program.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};

use super::fsutil::{self, read_trim, write_file};
use super::{
    bpf, convert, devices, oom, stats, v1, validate, CgroupError, CgroupVersion, Dirs, HierarchyState, Manager,
    OomWatch, Stats,
};

#[derive(Debug)]
pub(crate) struct V2 {
    dirs: Dirs,
}

impl V2 {
    pub(crate) fn new(dirs: Dirs) -> V2 {
        V2 { dirs }
    }

    /// The container's one directory.
    fn dir(&self) -> Result<&Path, CgroupError> {
        self.dir_for("").ok_or_else(|| CgroupError::Discovery("no cgroup2 directory".into()))
    }
}

impl Manager for V2 {
    fn version(&self) -> CgroupVersion {
        CgroupVersion::V2
    }

    fn dirs(&self) -> &Dirs {
        &self.dirs
    }

    fn dir_for(&self, _controller: &str) -> Option<&Path> {
        self.dirs.hierarchies().first().map(|h| h.dir.as_path())
    }

    fn validate(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        validate::validate(resources, true)
    }

    fn create(&self) -> Result<(), CgroupError> {
        self.dirs.create(&|h| self.left_frozen(h), &|_, _, _| Ok(()))?;
        for h in self.dirs.hierarchies() {
            enable_controllers(&h.mount_point, &h.dir);
        }
        Ok(())
    }

    fn apply(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        self.validate(resources)?;
        match self.dir_for("") {
            Some(d) => apply(d, resources),
            // Rootless without a cgroup the user may write (no delegation): the container
            // runs in berth's own, as runc's does; a limit has nowhere to go and is refused
            // by name.
            None => crate::rootless::check_resources(resources, &|_| false)
                .map(drop)
                .map_err(|e| CgroupError::Discovery(e.to_string())),
        }
    }

    fn join_dirs(&self, sub: &[String]) -> Result<Vec<PathBuf>, CgroupError> {
        self.dirs.join_dirs(sub, false)
    }

    fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        Dirs::pids_in(self.dir_for(""))
    }

    fn is_frozen(&self) -> Result<bool, CgroupError> {
        events_frozen(self.dir()?)
    }

    fn freezer(&self, frozen: bool) -> Result<(PathBuf, &'static str, &'static str), CgroupError> {
        Ok((self.dir()?.to_path_buf(), "cgroup.freeze", if frozen { "1" } else { "0" }))
    }

    fn left_frozen(&self, h: &HierarchyState) -> bool {
        read_trim(&h.dir.join("cgroup.freeze")).is_ok_and(|v| v == "1")
    }

    fn stats(&self) -> Result<Stats, CgroupError> {
        Ok(stats::v2(self.dir()?))
    }

    fn oom_watch(&self) -> Result<OomWatch, CgroupError> {
        oom::watch_v2(self.dir_for("memory").ok_or_else(oom::no_memory_cgroup)?)
    }

    fn open_v2_dir(&self) -> Option<OwnedFd> {
        let h = self.dirs.hierarchies().first()?;
        nix::fcntl::open(
            &h.dir,
            nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .ok()
    }

    /// As runc does for a container with its own user and cgroup namespaces and a writable
    /// cgroup mount: the directory and the files the kernel lists in
    /// /sys/kernel/cgroup/delegate.
    fn delegate(&self, uid: u32, gid: u32) -> Result<(), CgroupError> {
        let Some(h) = self.dirs.hierarchies().first() else { return Ok(()) };
        let listed = std::fs::read_to_string("/sys/kernel/cgroup/delegate")
            .unwrap_or_else(|_| "cgroup.procs\ncgroup.threads\ncgroup.subtree_control\n".into());
        let chown = |p: &Path| {
            std::os::unix::fs::lchown(p, Some(uid), Some(gid)).map_err(|e| CgroupError::Io {
                path: p.to_path_buf(),
                op: "chown to the container's root",
                source: e,
            })
        };
        chown(&h.dir)?;
        for name in listed.lines().map(str::trim).filter(|n| !n.is_empty()) {
            let p = h.dir.join(name);
            if p.exists() {
                chown(&p)?;
            }
        }
        Ok(())
    }
}

/// Enables in every ancestor of `leaf` the controllers its parent offers,
/// so the leaf gets their files. Best effort like runc: an ancestor that
/// holds processes is skipped (no internal processes), and then the missing
/// files are reported by `apply` for the field that needs them.
pub(crate) fn enable_controllers(mount_point: &Path, leaf: &Path) {
    let Ok(rel) = leaf.strip_prefix(mount_point) else {
        return;
    };
    let mut cur = mount_point.to_path_buf();
    let comps: Vec<_> = rel.components().collect();
    for comp in comps {
        // Such a cgroup refuses the domain controllers (EBUSY) but accepts
        // the threaded ones (cpu, cpuset, pids) one by one, and with those
        // enabled while it holds processes it becomes a thread root: no
        // domain cgroup below it can take a process any more, and clone3
        // into the container's cgroup fails with EOPNOTSUPP.
        if holds_processes_below_root(&cur) {
            cur.push(comp);
            continue;
        }
        let avail = read_trim(&cur.join("cgroup.controllers")).unwrap_or_default();
        let enabled = read_trim(&cur.join("cgroup.subtree_control")).unwrap_or_default();
        let missing: Vec<String> = avail
            .split_whitespace()
            .filter(|c| !enabled.split_whitespace().any(|e| e == *c))
            .map(|c| format!("+{c}"))
            .collect();
        if !missing.is_empty() {
            let sc = cur.join("cgroup.subtree_control");
            if write_file(&sc, &missing.join(" ")).is_err() {
                for c in &missing {
                    let _ = write_file(&sc, c);
                }
            }
        }
        cur.push(comp);
    }
}

/// A non-root cgroup (only the root lacks cgroup.type) with processes of
/// its own. The root is exempt from the no-internal-process rule.
fn holds_processes_below_root(d: &Path) -> bool {
    d.join("cgroup.type").exists() && read_trim(&d.join("cgroup.procs")).is_ok_and(|p| !p.is_empty())
}

/// Like fsutil::set, but a missing file (ENOENT) is explained: on v2 it
/// nearly always means the controller is not enabled for this cgroup.
fn set(field: &str, d: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    fsutil::set(field, d, file, value).map_err(|e| match e {
        CgroupError::Write { field, path, value, source } if source.kind() == std::io::ErrorKind::NotFound => {
            let ctrl = file.split('.').next().unwrap_or(file);
            CgroupError::invalid(
                field,
                format!(
                    "writing {value:?} to {}: ENOENT: the \"{ctrl}\" controller is not enabled for this cgroup \
                     (see cgroup.subtree_control of its parent; a parent holding processes cannot delegate)",
                    path.display()
                ),
            )
        }
        e => e,
    })
}

/// Writes `resources` into directory `d` (the systemd driver's unit directory too).
pub(crate) fn apply(d: &Path, r: &LinuxResources) -> Result<(), CgroupError> {
    if let Some(mem) = r.memory() {
        memory(d, mem)?;
    }
    if let Some(c) = r.cpu() {
        cpu(d, c)?;
    }
    if let Some(p) = r.pids() {
        set("linux.resources.pids.limit", d, "pids.max", &convert::pids_max(p.limit()))?;
    }
    if let Some(list) = r.devices().as_ref().filter(|l| !l.is_empty()) {
        let rules = devices::parse_rules(list)?;
        bpf::apply_device_filter(d, &rules)?;
    }
    if let Some(b) = r.block_io() {
        io(d, b)?;
    }
    for (i, h) in r.hugepage_limits().iter().flatten().enumerate() {
        let field = format!("linux.resources.hugepageLimits[{i}]");
        let file = format!("hugetlb.{}.max", h.page_size());
        if !d.join(&file).exists() {
            return Err(CgroupError::invalid(
                format!("{field}.pageSize"),
                format!("{:?}: no {file} (not a huge page size of this host, or hugetlb not enabled)", h.page_size()),
            ));
        }
        let v = if h.limit() == -1 { "max".to_string() } else { h.limit().to_string() };
        set(&format!("{field}.limit"), d, &file, &v)?;
    }
    if let Some(rdma) = r.rdma() {
        for (dev, lim) in rdma {
            if let Some(line) = v1::rdma_line(dev, lim.hca_handles(), lim.hca_objects()) {
                set(&format!("linux.resources.rdma.{dev}"), d, "rdma.max", &line)?;
            }
        }
    }
    // Last, so that an explicit unified value wins over a converted one.
    if let Some(u) = r.unified() {
        // Sorted, so that a failure is reproducible from the same config.
        let mut kv: Vec<(&String, &String)> = u.iter().collect();
        kv.sort();
        for (k, v) in kv {
            set(&format!("linux.resources.unified.{k:?}"), d, k, v)?;
        }
    }
    Ok(())
}

fn memory(d: &Path, mem: &LinuxMemory) -> Result<(), CgroupError> {
    if mem.kernel().is_some() || mem.kernel_tcp().is_some() {
        eprintln!("berth: warning: linux.resources.memory.kernel/kernelTCP are deprecated and ignored");
    }
    let limit = mem.limit().unwrap_or(0);
    let swap = mem.swap().unwrap_or(0);
    if mem.check_before_update() == Some(true) && limit > 0 {
        v1::check_usage_below(d, "memory.current", limit)?;
    }
    // Swap first: memory.max may only grow once swap no longer needs the
    // room (both are independent on v2, but this keeps runc's order).
    if let Some(s) = convert::v2_swap_max(swap, limit) {
        let p = d.join("memory.swap.max");
        if p.exists() {
            set("linux.resources.memory.swap", d, "memory.swap.max", &s)?;
        } else if swap > 0 && swap != limit {
            return Err(CgroupError::invalid(
                "linux.resources.memory.swap",
                "swap accounting is not enabled on this host (no memory.swap.max)",
            ));
        }
    }
    if let Some(v) = convert::v2_limit(limit) {
        set("linux.resources.memory.limit", d, "memory.max", &v)?;
    }
    if let Some(v) = convert::v2_limit(mem.reservation().unwrap_or(0)) {
        set("linux.resources.memory.reservation", d, "memory.low", &v)?;
    }
    Ok(())
}

/// cpu.max for quota/period, runc's way: quota <= 0 is "max"; None means
/// neither is set.
pub(crate) fn cpu_max(quota: i64, period: u64) -> Option<String> {
    if quota == 0 && period == 0 {
        return None;
    }
    let mut s = if quota > 0 { quota.to_string() } else { "max".to_string() };
    if period != 0 {
        s.push_str(&format!(" {period}"));
    }
    Some(s)
}

fn cpu(d: &Path, c: &LinuxCpu) -> Result<(), CgroupError> {
    // An idle group has the kernel's own weight and refuses cpu.weight (EINVAL): it leaves
    // idle before the weight is written, and while idle no weight is written.
    let idle = c.idle();
    if idle == Some(0) {
        set("linux.resources.cpu.idle", d, "cpu.idle", "0")?;
    }
    let w = convert::shares_to_weight(c.shares().unwrap_or(0));
    if w != 0 && idle != Some(1) {
        set("linux.resources.cpu.shares", d, "cpu.weight", &w.to_string())?;
    }
    if let Some(v) = cpu_max(c.quota().unwrap_or(0), c.period().unwrap_or(0)) {
        set("linux.resources.cpu.quota", d, "cpu.max", &v)?;
    }
    if let Some(b) = c.burst() {
        set("linux.resources.cpu.burst", d, "cpu.max.burst", &b.to_string())?;
    }
    if idle == Some(1) {
        set("linux.resources.cpu.idle", d, "cpu.idle", "1")?;
    }
    if let Some(s) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
        set("linux.resources.cpu.cpus", d, "cpuset.cpus", s)?;
    }
    if let Some(s) = c.mems().as_deref().filter(|s| !s.is_empty()) {
        set("linux.resources.cpu.mems", d, "cpuset.mems", s)?;
    }
    Ok(())
}

fn io(d: &Path, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    // BFQ takes the v1 scale directly; io.weight has its own 1..10000 one.
    let bfq = d.join("io.bfq.weight").exists();
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        if bfq {
            set("linux.resources.blockIO.weight", d, "io.bfq.weight", &w.to_string())?;
        } else {
            let v = convert::blkio_to_io_weight(w);
            set("linux.resources.blockIO.weight", d, "io.weight", &format!("default {v}"))?;
        }
    }
    for (i, wd) in b.weight_device().iter().flatten().enumerate() {
        if let Some(w) = wd.weight().filter(|w| *w != 0) {
            let field = format!("linux.resources.blockIO.weightDevice[{i}]");
            if bfq {
                set(&field, d, "io.bfq.weight", &format!("{}:{} {w}", wd.major(), wd.minor()))?;
            } else {
                let v = convert::blkio_to_io_weight(w);
                set(&field, d, "io.weight", &format!("{}:{} {v}", wd.major(), wd.minor()))?;
            }
        }
    }
    for (name, key, list) in [
        ("throttleReadBpsDevice", "rbps", b.throttle_read_bps_device()),
        ("throttleWriteBpsDevice", "wbps", b.throttle_write_bps_device()),
        ("throttleReadIOPSDevice", "riops", b.throttle_read_iops_device()),
        ("throttleWriteIOPSDevice", "wiops", b.throttle_write_iops_device()),
    ] {
        for (i, t) in list.iter().flatten().enumerate() {
            // v1 treats a rate of 0 as "no limit"; on v2 that is spelled "max".
            let rate = if t.rate() == 0 { "max".to_string() } else { t.rate().to_string() };
            set(
                &format!("linux.resources.blockIO.{name}[{i}]"),
                d,
                "io.max",
                &format!("{}:{} {key}={rate}", t.major(), t.minor()),
            )?;
        }
    }
    Ok(())
}

/// Whether the cgroup2 directory `dir` is frozen, by its `cgroup.events`.
pub(super) fn events_frozen(dir: &Path) -> Result<bool, CgroupError> {
    let p = dir.join("cgroup.events");
    let t =
        crate::sys::small_file::read_to_string(&p).map_err(|e| CgroupError::Io { path: p, op: "read", source: e })?;
    Ok(t.lines().any(|l| l.trim() == "frozen 1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_max_strings() {
        assert_eq!(cpu_max(0, 0), None);
        assert_eq!(cpu_max(50000, 100000).as_deref(), Some("50000 100000"));
        assert_eq!(cpu_max(-1, 100000).as_deref(), Some("max 100000"));
        assert_eq!(cpu_max(20000, 0).as_deref(), Some("20000"));
        assert_eq!(cpu_max(-1, 0).as_deref(), Some("max"));
    }

    /// Builds a fake cgroup dir: its controllers, an empty subtree_control,
    /// and (below the root) cgroup.type and the given cgroup.procs.
    fn fake_cgroup(d: &Path, root: bool, procs: &str) {
        std::fs::create_dir_all(d).expect("mkdir");
        std::fs::write(d.join("cgroup.controllers"), "cpu memory pids\n").expect("controllers");
        std::fs::write(d.join("cgroup.subtree_control"), "").expect("subtree_control");
        if !root {
            std::fs::write(d.join("cgroup.type"), "domain\n").expect("type");
            std::fs::write(d.join("cgroup.procs"), procs).expect("procs");
        }
    }

    #[test]
    fn a_parent_holding_processes_is_left_alone() {
        let t = tempfile::tempdir().expect("tempdir");
        let root = t.path();
        fake_cgroup(root, true, "");
        fake_cgroup(&root.join("outer"), false, "42\n");
        fake_cgroup(&root.join("outer/inner"), false, "");
        enable_controllers(root, &root.join("outer/inner"));
        let sc = |p: &str| std::fs::read_to_string(root.join(p).join("cgroup.subtree_control")).expect("read");
        assert_eq!(sc(""), "+cpu +memory +pids");
        assert_eq!(sc("outer"), "", "a populated non-root cgroup must not get controllers");

        fake_cgroup(&root.join("empty"), false, "");
        enable_controllers(root, &root.join("empty/leaf"));
        assert_eq!(sc("empty"), "+cpu +memory +pids");
    }
}
