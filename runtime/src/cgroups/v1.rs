//! The cgroup v1 driver: one directory per controller hierarchy (and on a hybrid host the
//! cgroup2 one next to them, which only holds the processes).

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};

use super::fsutil::{read_trim, set, set_each};
use super::{
    convert, devices, oom, stats, validate, CgroupError, CgroupVersion, Dirs, HierarchyState, Manager, OomWatch, Stats,
};

#[derive(Debug)]
pub(crate) struct V1 {
    dirs: Dirs,
}

impl V1 {
    pub(crate) fn new(dirs: Dirs) -> V1 {
        V1 { dirs }
    }
}

impl Manager for V1 {
    fn version(&self) -> CgroupVersion {
        CgroupVersion::V1
    }

    fn dirs(&self) -> &Dirs {
        &self.dirs
    }

    fn dir_for(&self, controller: &str) -> Option<&Path> {
        self.dirs.hierarchies().iter().find(|h| h.has(controller)).map(|h| h.dir.as_path())
    }

    fn validate(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        validate::validate(resources, false)
    }

    fn create(&self) -> Result<(), CgroupError> {
        self.dirs.create(&|h| self.left_frozen(h), &|h, parent, dir| {
            // Every level, not only the ones made here: a pre-existing ancestor with empty
            // cpus or mems (made by hand, or by a runtime killed before it filled them)
            // would make joining the container's cgroup fail with ENOSPC. runc fills them
            // the same way on the way down.
            if h.has("cpuset") {
                cpuset_copy_down(parent, dir)?;
            }
            Ok(())
        })
    }

    fn apply(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        self.validate(resources)?;
        apply(self, resources)
    }

    fn join_dirs(&self, sub: &[String]) -> Result<Vec<PathBuf>, CgroupError> {
        self.dirs.join_dirs(sub, true)
    }

    fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let dir = ["pids", "freezer", "memory", "devices"]
            .iter()
            .find_map(|c| self.dir_for(c))
            .or_else(|| self.dirs.hierarchies().first().map(|h| h.dir.as_path()));
        Dirs::pids_in(dir)
    }

    fn is_frozen(&self) -> Result<bool, CgroupError> {
        let (dir, _, _) = self.freezer(true)?;
        state_frozen(&dir)
    }

    fn freezer(&self, frozen: bool) -> Result<(PathBuf, &'static str, &'static str), CgroupError> {
        let d = self
            .dir_for("freezer")
            .ok_or_else(|| CgroupError::Discovery("no cgroup v1 freezer hierarchy is mounted".into()))?;
        Ok((d.to_path_buf(), "freezer.state", if frozen { "FROZEN" } else { "THAWED" }))
    }

    fn left_frozen(&self, h: &HierarchyState) -> bool {
        h.has("freezer") && read_trim(&h.dir.join("freezer.state")).is_ok_and(|v| v != "THAWED")
    }

    fn stats(&self) -> Result<Stats, CgroupError> {
        Ok(stats::v1(|c| self.dir_for(c)))
    }

    fn oom_watch(&self) -> Result<OomWatch, CgroupError> {
        oom::watch_v1(self.dir_for("memory").ok_or_else(oom::no_memory_cgroup)?)
    }
}

fn need<'a>(m: &'a V1, controller: &str, field: &str) -> Result<&'a Path, CgroupError> {
    m.dir_for(controller).ok_or_else(|| {
        CgroupError::invalid(
            format!("linux.resources.{field}"),
            format!("no cgroup v1 \"{controller}\" hierarchy is mounted on this host"),
        )
    })
}

/// A new cpuset cgroup starts with empty cpus and mems, and no task can
/// join it until they are set: inherit the parent's.
pub(crate) fn cpuset_copy_down(parent: &Path, child: &Path) -> Result<(), CgroupError> {
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let cur =
            read_trim(&child.join(f)).map_err(|e| CgroupError::Io { path: child.join(f), op: "read", source: e })?;
        if !cur.is_empty() {
            continue;
        }
        let p =
            read_trim(&parent.join(f)).map_err(|e| CgroupError::Io { path: parent.join(f), op: "read", source: e })?;
        if !p.is_empty() {
            set(&format!("{f} (inherited from the parent cgroup)"), child, f, &p)?;
        }
    }
    Ok(())
}

fn apply(m: &V1, r: &LinuxResources) -> Result<(), CgroupError> {
    if let Some(mem) = r.memory() {
        memory(m, mem)?;
    }
    if let Some(c) = r.cpu() {
        cpu(m, c)?;
        cpuset(m, c)?;
    }
    if let Some(p) = r.pids() {
        let dir = need(m, "pids", "pids.limit")?;
        set("linux.resources.pids.limit", dir, "pids.max", &convert::pids_max(p.limit()))?;
    }
    if let Some(list) = r.devices().as_ref().filter(|l| !l.is_empty()) {
        devices_v1(m, list)?;
    }
    if let Some(b) = r.block_io() {
        blkio(m, b)?;
    }
    for (i, h) in r.hugepage_limits().iter().flatten().enumerate() {
        let field = format!("linux.resources.hugepageLimits[{i}]");
        let dir = need(m, "hugetlb", "hugepageLimits")?;
        let file = format!("hugetlb.{}.limit_in_bytes", h.page_size());
        if !dir.join(&file).exists() {
            return Err(CgroupError::invalid(
                format!("{field}.pageSize"),
                format!("{:?} is not a huge page size of this host", h.page_size()),
            ));
        }
        set(&format!("{field}.limit"), dir, &file, &h.limit().to_string())?;
    }
    if let Some(n) = r.network() {
        if let Some(c) = n.class_id().filter(|c| *c != 0) {
            let dir = need(m, "net_cls", "network.classID")?;
            set("linux.resources.network.classID", dir, "net_cls.classid", &c.to_string())?;
        }
        for (i, p) in n.priorities().iter().flatten().enumerate() {
            let dir = need(m, "net_prio", "network.priorities")?;
            set(
                &format!("linux.resources.network.priorities[{i}]"),
                dir,
                "net_prio.ifpriomap",
                &format!("{} {}", p.name(), p.priority()),
            )?;
        }
    }
    if let Some(rdma) = r.rdma() {
        for (dev, lim) in rdma {
            if let Some(line) = rdma_line(dev, lim.hca_handles(), lim.hca_objects()) {
                let dir = need(m, "rdma", "rdma")?;
                set(&format!("linux.resources.rdma.{dev}"), dir, "rdma.max", &line)?;
            }
        }
    }
    // `unified` on v1 was refused by validate (B16).
    Ok(())
}

fn devices_v1(m: &V1, list: &[oci_spec::runtime::LinuxDeviceCgroup]) -> Result<(), CgroupError> {
    let rules = devices::parse_rules(list)?;
    let dir = need(m, "devices", "devices")?;
    let writes = devices::v1_writes(&rules);
    // Re-applying the same rules (an update of other resources) must not
    // pass through "deny all" under a running container, and the kernel
    // refuses "deny all" once the cgroup has children: skip when the
    // kernel already shows exactly the result.
    let current = read_trim(&dir.join("devices.list")).ok();
    if let (Some(want), Some(cur)) =
        (devices::v1_expected_list(&writes), current.as_deref().and_then(devices::parse_v1_list))
    {
        if want == cur {
            return Ok(());
        }
    }
    set_each("linux.resources.devices", dir, &writes)
}

pub(crate) fn rdma_line(dev: &str, handles: Option<u32>, objects: Option<u32>) -> Option<String> {
    let mut line = dev.to_string();
    if let Some(h) = handles {
        line.push_str(&format!(" hca_handle={h}"));
    }
    if let Some(o) = objects {
        line.push_str(&format!(" hca_object={o}"));
    }
    (handles.is_some() || objects.is_some()).then_some(line)
}

fn memory(m: &V1, mem: &LinuxMemory) -> Result<(), CgroupError> {
    if mem.kernel().is_some() {
        eprintln!("berth: warning: linux.resources.memory.kernel is deprecated and ignored");
    }
    let limit = mem.limit().unwrap_or(0);
    let mut swap = mem.swap().unwrap_or(0);
    let reservation = mem.reservation().unwrap_or(0);
    let oom_off = mem.disable_oom_killer() == Some(true);
    let tcp = mem.kernel_tcp().unwrap_or(0);
    if limit == 0
        && swap == 0
        && reservation == 0
        && tcp == 0
        && mem.swappiness().is_none()
        && mem.use_hierarchy().is_none()
        && !oom_off
    {
        return Ok(());
    }
    let dir = need(m, "memory", "memory")?;
    if mem.check_before_update() == Some(true) && limit > 0 {
        check_usage_below(dir, "memory.usage_in_bytes", limit)?;
    }
    if let Some(h) = mem.use_hierarchy() {
        set("linux.resources.memory.useHierarchy", dir, "memory.use_hierarchy", if h { "1" } else { "0" })?;
    }
    if tcp != 0 {
        // Kernels since 5.x dropped kmem accounting limits; runc ignores the field then.
        if dir.join("memory.kmem.tcp.limit_in_bytes").exists() {
            set("linux.resources.memory.kernelTCP", dir, "memory.kmem.tcp.limit_in_bytes", &tcp.to_string())?;
        } else {
            eprintln!("berth: warning: linux.resources.memory.kernelTCP: not supported by this kernel, ignored");
        }
    }
    let has_memsw = dir.join("memory.memsw.limit_in_bytes").exists();
    if limit == -1 && swap == 0 {
        swap = -1;
    }
    if swap > 0 && !has_memsw {
        return Err(CgroupError::invalid(
            "linux.resources.memory.swap",
            "swap accounting is not enabled on this host (no memory.memsw.limit_in_bytes)",
        ));
    }
    let swap = if has_memsw { swap } else { 0 };
    const LIMIT: &str = "memory.limit_in_bytes";
    const MEMSW: &str = "memory.memsw.limit_in_bytes";
    if limit != 0 && swap != 0 {
        // The kernel keeps limit <= memsw at every step, so the order of the
        // two writes depends on whether the limit grows or shrinks.
        let cur: i128 = read_trim(&dir.join(LIMIT)).ok().and_then(|v| v.parse().ok()).unwrap_or(i128::MAX);
        if swap == -1 || cur < i128::from(swap) {
            set("linux.resources.memory.swap", dir, MEMSW, &swap.to_string())?;
            set("linux.resources.memory.limit", dir, LIMIT, &limit.to_string())?;
        } else {
            set("linux.resources.memory.limit", dir, LIMIT, &limit.to_string())?;
            set("linux.resources.memory.swap", dir, MEMSW, &swap.to_string())?;
        }
    } else if limit != 0 {
        set("linux.resources.memory.limit", dir, LIMIT, &limit.to_string())?;
    } else if swap != 0 {
        set("linux.resources.memory.swap", dir, MEMSW, &swap.to_string())?;
    }
    if reservation != 0 {
        set("linux.resources.memory.reservation", dir, "memory.soft_limit_in_bytes", &reservation.to_string())?;
    }
    if let Some(s) = mem.swappiness() {
        set("linux.resources.memory.swappiness", dir, "memory.swappiness", &s.to_string())?;
    }
    if oom_off {
        set("linux.resources.memory.disableOOMKiller", dir, "memory.oom_control", "1")?;
    }
    Ok(())
}

/// memory.checkBeforeUpdate: refuse a limit below what the cgroup already uses (the
/// kernel would reclaim, or OOM-kill, to get there).
pub(crate) fn check_usage_below(dir: &Path, usage_file: &str, limit: i64) -> Result<(), CgroupError> {
    let usage: i64 = read_trim(&dir.join(usage_file)).ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    if usage > limit {
        return Err(CgroupError::invalid(
            "linux.resources.memory.limit",
            format!("{limit} is below the current usage {usage} (memory.checkBeforeUpdate)"),
        ));
    }
    Ok(())
}

fn cpu(m: &V1, c: &LinuxCpu) -> Result<(), CgroupError> {
    let shares = c.shares().unwrap_or(0);
    let quota = c.quota().unwrap_or(0);
    let period = c.period().unwrap_or(0);
    let rt_period = c.realtime_period().unwrap_or(0);
    let rt_runtime = c.realtime_runtime().unwrap_or(0);
    let idle = c.idle();
    if shares == 0
        && quota == 0
        && period == 0
        && rt_period == 0
        && rt_runtime == 0
        && idle.is_none()
        && c.burst().is_none()
    {
        return Ok(());
    }
    let dir = need(m, "cpu", "cpu")?;
    // An idle group has the kernel's own weight and refuses cpu.shares (EINVAL): it leaves
    // idle before the shares are written, and while idle no shares are written.
    if idle == Some(0) {
        set("linux.resources.cpu.idle", dir, "cpu.idle", "0")?;
    }
    if shares != 0 && idle != Some(1) {
        set("linux.resources.cpu.shares", dir, "cpu.shares", &shares.to_string())?;
    }
    let mut period_pending = false;
    if period != 0 {
        if let Err(e) = set("linux.resources.cpu.period", dir, "cpu.cfs_period_us", &period.to_string()) {
            // A shorter period can be refused against the old quota (the
            // quota/period ratio would exceed the parent's); it goes in
            // after the quota then.
            match &e {
                CgroupError::Write { source, .. } if source.raw_os_error() == Some(libc::EINVAL) && quota != 0 => {
                    period_pending = true;
                }
                _ => return Err(e),
            }
        }
    }
    if quota != 0 {
        set("linux.resources.cpu.quota", dir, "cpu.cfs_quota_us", &quota.to_string())?;
        if period_pending {
            set("linux.resources.cpu.period", dir, "cpu.cfs_period_us", &period.to_string())?;
        }
    }
    if let Some(b) = c.burst() {
        set("linux.resources.cpu.burst", dir, "cpu.cfs_burst_us", &b.to_string())?;
    }
    rt_sched(dir, rt_period, rt_runtime)?;
    if idle == Some(1) {
        set("linux.resources.cpu.idle", dir, "cpu.idle", "1")?;
    }
    Ok(())
}

/// cpu.rt_period_us and cpu.rt_runtime_us are checked against each other (runtime <=
/// period, and the group's share within its parent's) at every write, so either order can
/// be refused with EINVAL depending on the current values: shrinking both needs runtime
/// first, growing both needs period first. Period first, and on EINVAL runtime then period,
/// as runc does.
pub(crate) fn rt_sched(dir: &Path, rt_period: u64, rt_runtime: i64) -> Result<(), CgroupError> {
    const PERIOD: (&str, &str) = ("linux.resources.cpu.realtimePeriod", "cpu.rt_period_us");
    const RUNTIME: (&str, &str) = ("linux.resources.cpu.realtimeRuntime", "cpu.rt_runtime_us");
    let mut period_pending = false;
    if rt_period != 0 {
        if let Err(e) = set(PERIOD.0, dir, PERIOD.1, &rt_period.to_string()) {
            match &e {
                CgroupError::Write { source, .. } if source.raw_os_error() == Some(libc::EINVAL) && rt_runtime != 0 => {
                    period_pending = true;
                }
                _ => return Err(e),
            }
        }
    }
    if rt_runtime != 0 {
        set(RUNTIME.0, dir, RUNTIME.1, &rt_runtime.to_string())?;
        if period_pending {
            set(PERIOD.0, dir, PERIOD.1, &rt_period.to_string())?;
        }
    }
    Ok(())
}

fn cpuset(m: &V1, c: &LinuxCpu) -> Result<(), CgroupError> {
    let cpus = c.cpus().as_deref().filter(|s| !s.is_empty());
    let mems = c.mems().as_deref().filter(|s| !s.is_empty());
    if cpus.is_none() && mems.is_none() {
        return Ok(());
    }
    let dir = need(m, "cpuset", "cpu.cpus")?;
    if let Some(s) = cpus {
        set("linux.resources.cpu.cpus", dir, "cpuset.cpus", s)?;
    }
    if let Some(s) = mems {
        set("linux.resources.cpu.mems", dir, "cpuset.mems", s)?;
    }
    Ok(())
}

fn blkio(m: &V1, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    let weight = b.weight().unwrap_or(0);
    let leaf = b.leaf_weight().unwrap_or(0);
    let throttles = [
        ("throttleReadBpsDevice", "blkio.throttle.read_bps_device", b.throttle_read_bps_device()),
        ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device", b.throttle_write_bps_device()),
        ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device", b.throttle_read_iops_device()),
        ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device", b.throttle_write_iops_device()),
    ];
    let any_list = b.weight_device().as_ref().is_some_and(|l| !l.is_empty())
        || throttles.iter().any(|(_, _, l)| l.as_ref().is_some_and(|l| !l.is_empty()));
    if weight == 0 && leaf == 0 && !any_list {
        return Ok(());
    }
    let dir = need(m, "blkio", "blockIO")?;
    // CFQ had blkio.weight; since 5.0 only BFQ's blkio.bfq.weight exists.
    let (wfile, wdfile) = if dir.join("blkio.weight").exists() {
        ("blkio.weight", "blkio.weight_device")
    } else {
        ("blkio.bfq.weight", "blkio.bfq.weight_device")
    };
    if weight != 0 {
        set("linux.resources.blockIO.weight", dir, wfile, &weight.to_string())?;
    }
    if leaf != 0 {
        set("linux.resources.blockIO.leafWeight", dir, "blkio.leaf_weight", &leaf.to_string())?;
    }
    for (i, wd) in b.weight_device().iter().flatten().enumerate() {
        if let Some(w) = wd.weight().filter(|w| *w != 0) {
            set(
                &format!("linux.resources.blockIO.weightDevice[{i}]"),
                dir,
                wdfile,
                &format!("{}:{} {w}", wd.major(), wd.minor()),
            )?;
        }
    }
    for (name, file, list) in throttles {
        for (i, t) in list.iter().flatten().enumerate() {
            set(
                &format!("linux.resources.blockIO.{name}[{i}]"),
                dir,
                file,
                &format!("{}:{} {}", t.major(), t.minor(), t.rate()),
            )?;
        }
    }
    Ok(())
}

/// Whether the v1 freezer cgroup `dir` is frozen (or freezing).
pub(super) fn state_frozen(dir: &Path) -> Result<bool, CgroupError> {
    let p = dir.join("freezer.state");
    // One read: `list` asks this of every container.
    let t = crate::sys::small_file::read_record(&p).map_err(|e| CgroupError::Io { path: p, op: "read", source: e })?;
    Ok(t.trim() == "FROZEN")
}
