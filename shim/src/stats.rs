//! Metrics for `Stats`: the `cgroupfs` crate finds the container's cgroups (from mountinfo and
//! `/proc/<pid>/cgroup`) and reads their controllers; this maps the readings to containerd's
//! `io.containerd.cgroups.v1.Metrics`, or `io.containerd.cgroups.v2.Metrics` when no v1
//! hierarchy carries a controller.

use std::path::{Path, PathBuf};

use cgroupfs::hierarchy::Hierarchy;
use cgroupfs::{v1 as cg1, v2 as cg2};
use containerd_shim_protos::cgroups::metrics::{
    CPUStat, CPUUsage, MemoryEntry, MemoryOomControl, MemoryStat, Metrics, PidsStat, Throttle,
};
use containerd_shim_protos::cgroups_v2::metrics as v2;

use crate::error::{Error, Result};

/// The directories of a process's cgroup: per v1 hierarchy (with its controllers), and in the
/// unified hierarchy.
#[derive(Debug, Default, Clone)]
pub struct CgroupPaths {
    v1: Vec<(Vec<String>, PathBuf)>,
    unified: Option<PathBuf>,
}

/// The cgroup a container's metrics and OOM events come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cgroup {
    /// The v1 memory controller's directory (other controllers are looked up in `CgroupPaths`).
    V1Memory(PathBuf),
    /// The container's directory in the unified hierarchy.
    V2(PathBuf),
}

impl CgroupPaths {
    pub fn of_pid(pid: u32) -> Result<Self> {
        let hs = cgroupfs::hierarchy::of_process(Some(pid)).map_err(|e| match e {
            cgroupfs::Error::Io { source, .. } => Error::Io { context: format!("read cgroups of {pid}"), source },
            e => e.into(),
        })?;
        Ok(Self::from_hierarchies(hs))
    }

    fn from_hierarchies(hs: Vec<Hierarchy>) -> Self {
        let mut paths = CgroupPaths::default();
        for h in hs {
            if h.is_v1() {
                let dir = h.dir();
                paths.v1.push((h.subsystems, dir));
            } else {
                paths.unified = Some(h.dir());
            }
        }
        paths
    }

    /// The directory of the v1 hierarchy carrying `controller` ("memory"; "systemd" for the
    /// named name=systemd one).
    pub fn get(&self, controller: &str) -> Option<&Path> {
        self.v1
            .iter()
            .find(|(subsystems, _)| subsystems.iter().any(|s| s.trim_start_matches("name=") == controller))
            .map(|(_, dir)| dir.as_path())
    }

    /// Pure cgroup v2 (no v1 controller hierarchy): the unified directory. On a hybrid host
    /// the unified hierarchy carries no controllers, so v1 is what holds the limits.
    pub fn unified(&self) -> Option<&Path> {
        let v1_controllers = self.v1.iter().flat_map(|(s, _)| s).any(|s| s != "name=systemd");
        if v1_controllers {
            None
        } else {
            self.unified.as_deref()
        }
    }

    /// Where the memory controller of this process is, in whichever hierarchy has it.
    pub fn memory(&self) -> Option<Cgroup> {
        match self.unified() {
            Some(dir) => Some(Cgroup::V2(dir.to_path_buf())),
            None => self.get("memory").map(|d| Cgroup::V1Memory(d.to_path_buf())),
        }
    }
}

fn memory_entry(e: cg1::MemoryEntry) -> MemoryEntry {
    MemoryEntry { usage: e.usage, max: e.max_usage, limit: e.limit, failcnt: e.failcnt, ..Default::default() }
}

pub fn collect_v1(paths: &CgroupPaths) -> Metrics {
    let mut m = Metrics::new();
    if let Some(dir) = paths.get("pids") {
        let p = cg1::pids(dir);
        m.pids = protobuf::MessageField::some(PidsStat {
            current: p.current,
            // containerd's v1 reader: 0 for "max".
            limit: if p.limit == u64::MAX { 0 } else { p.limit },
            ..Default::default()
        });
    }
    let mut cpu = CPUStat::new();
    if let Some(dir) = paths.get("cpuacct") {
        let c = cg1::cpuacct(dir);
        cpu.usage = protobuf::MessageField::some(CPUUsage {
            total: c.usage,
            user: c.user,
            kernel: c.system,
            per_cpu: c.usage_percpu,
            ..Default::default()
        });
    }
    if let Some(dir) = paths.get("cpu") {
        let c = cg1::cpu(dir);
        cpu.throttling = protobuf::MessageField::some(Throttle {
            periods: c.nr_periods,
            throttled_periods: c.nr_throttled,
            throttled_time: c.throttled_time,
            ..Default::default()
        });
    }
    m.cpu = protobuf::MessageField::some(cpu);
    if let Some(dir) = paths.get("memory") {
        let mem = cg1::memory(dir);
        let g = |k: &str| mem.stat.get(k).copied().unwrap_or(0);
        m.memory = protobuf::MessageField::some(MemoryStat {
            cache: g("cache"),
            rss: g("rss"),
            rss_huge: g("rss_huge"),
            mapped_file: g("mapped_file"),
            dirty: g("dirty"),
            writeback: g("writeback"),
            pg_pg_in: g("pgpgin"),
            pg_pg_out: g("pgpgout"),
            pg_fault: g("pgfault"),
            pg_maj_fault: g("pgmajfault"),
            inactive_anon: g("inactive_anon"),
            active_anon: g("active_anon"),
            inactive_file: g("inactive_file"),
            active_file: g("active_file"),
            unevictable: g("unevictable"),
            hierarchical_memory_limit: g("hierarchical_memory_limit"),
            hierarchical_swap_limit: g("hierarchical_memsw_limit"),
            total_cache: g("total_cache"),
            total_rss: g("total_rss"),
            total_rss_huge: g("total_rss_huge"),
            total_mapped_file: g("total_mapped_file"),
            total_dirty: g("total_dirty"),
            total_writeback: g("total_writeback"),
            total_pg_pg_in: g("total_pgpgin"),
            total_pg_pg_out: g("total_pgpgout"),
            total_pg_fault: g("total_pgfault"),
            total_pg_maj_fault: g("total_pgmajfault"),
            total_inactive_anon: g("total_inactive_anon"),
            total_active_anon: g("total_active_anon"),
            total_inactive_file: g("total_inactive_file"),
            total_active_file: g("total_active_file"),
            total_unevictable: g("total_unevictable"),
            usage: protobuf::MessageField::some(memory_entry(mem.usage.clone())),
            // Without swap accounting there are no memsw files: zeros.
            swap: protobuf::MessageField::some(memory_entry(mem.swap.clone().unwrap_or_default())),
            kernel: protobuf::MessageField::some(memory_entry(mem.kernel.clone())),
            kernel_tcp: protobuf::MessageField::some(memory_entry(mem.kernel_tcp.clone())),
            ..Default::default()
        });
        let oom = cg1::oom_control(dir);
        m.memory_oom_control = protobuf::MessageField::some(MemoryOomControl {
            oom_kill_disable: oom.oom_kill_disable,
            under_oom: oom.under_oom,
            oom_kill: oom.oom_kill,
            ..Default::default()
        });
    }
    m
}

fn rdma_entries(entries: Vec<cg2::RdmaEntry>) -> Vec<v2::RdmaEntry> {
    entries
        .into_iter()
        .map(|e| v2::RdmaEntry {
            device: e.device,
            hca_handles: e.hca_handles,
            hca_objects: e.hca_objects,
            ..Default::default()
        })
        .collect()
}

/// Every sub-message is present (zero when its controller is not enabled): ctr prints the
/// fields of pids, cpu and memory without checking them for nil.
pub fn collect_v2(dir: &Path) -> v2::Metrics {
    let mut m = v2::Metrics::new();
    let p = cg2::pids(dir);
    m.pids = protobuf::MessageField::some(v2::PidsStat { current: p.current, limit: p.limit, ..Default::default() });
    let c = cg2::cpu(dir);
    m.cpu = protobuf::MessageField::some(v2::CPUStat {
        usage_usec: c.usage_usec,
        user_usec: c.user_usec,
        system_usec: c.system_usec,
        nr_periods: c.nr_periods,
        nr_throttled: c.nr_throttled,
        throttled_usec: c.throttled_usec,
        nr_bursts: c.nr_bursts,
        burst_usec: c.burst_usec,
        ..Default::default()
    });
    let mem = cg2::memory(dir);
    let g = |k: &str| mem.stat.get(k).copied().unwrap_or(0);
    // Kernels since 5.9 split the workingset counters by anon/file; the proto has one each.
    let either =
        |k: &str| mem.stat.get(k).copied().unwrap_or_else(|| g(&format!("{k}_anon")) + g(&format!("{k}_file")));
    m.memory = protobuf::MessageField::some(v2::MemoryStat {
        anon: g("anon"),
        file: g("file"),
        kernel_stack: g("kernel_stack"),
        slab: g("slab"),
        sock: g("sock"),
        shmem: g("shmem"),
        file_mapped: g("file_mapped"),
        file_dirty: g("file_dirty"),
        file_writeback: g("file_writeback"),
        anon_thp: g("anon_thp"),
        inactive_anon: g("inactive_anon"),
        active_anon: g("active_anon"),
        inactive_file: g("inactive_file"),
        active_file: g("active_file"),
        unevictable: g("unevictable"),
        slab_reclaimable: g("slab_reclaimable"),
        slab_unreclaimable: g("slab_unreclaimable"),
        pgfault: g("pgfault"),
        pgmajfault: g("pgmajfault"),
        workingset_refault: either("workingset_refault"),
        workingset_activate: either("workingset_activate"),
        workingset_nodereclaim: g("workingset_nodereclaim"),
        pgrefill: g("pgrefill"),
        pgscan: g("pgscan"),
        pgsteal: g("pgsteal"),
        pgactivate: g("pgactivate"),
        pgdeactivate: g("pgdeactivate"),
        pglazyfree: g("pglazyfree"),
        pglazyfreed: g("pglazyfreed"),
        thp_fault_alloc: g("thp_fault_alloc"),
        thp_collapse_alloc: g("thp_collapse_alloc"),
        usage: mem.current,
        usage_limit: mem.max,
        swap_usage: mem.swap_current,
        swap_limit: mem.swap_max.unwrap_or(0),
        max_usage: mem.peak,
        swap_max_usage: mem.swap_peak,
        ..Default::default()
    });
    let ev = &mem.events;
    m.memory_events = protobuf::MessageField::some(v2::MemoryEvents {
        low: ev.low,
        high: ev.high,
        max: ev.max,
        oom: ev.oom,
        oom_kill: ev.oom_kill,
        oom_group_kill: ev.oom_group_kill,
        ..Default::default()
    });
    let rdma = cg2::rdma(dir);
    m.rdma = protobuf::MessageField::some(v2::RdmaStat {
        current: rdma_entries(rdma.current),
        limit: rdma_entries(rdma.max),
        ..Default::default()
    });
    m.io = protobuf::MessageField::some(v2::IOStat {
        usage: cg2::io(dir)
            .into_iter()
            .map(|e| v2::IOEntry {
                major: e.major,
                minor: e.minor,
                rbytes: e.rbytes.unwrap_or(0),
                wbytes: e.wbytes.unwrap_or(0),
                rios: e.rios.unwrap_or(0),
                wios: e.wios.unwrap_or(0),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    });
    m.hugetlb = cg2::hugetlb(dir)
        .into_iter()
        .map(|(size, h)| v2::HugeTlbStat {
            current: h.current,
            max: h.max,
            failcnt: h.failcnt,
            pagesize: size,
            ..Default::default()
        })
        .collect();
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A host's cgroup mounts under /nonexistent: memory alone, cpu and cpuacct co-mounted,
    /// name=systemd, and the hybrid cgroup2.
    const MOUNTINFO: &str = "\
32 31 0:29 / /nonexistent/memory rw - cgroup cgroup rw,memory
33 31 0:30 / /nonexistent/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /nonexistent/systemd rw - cgroup cgroup rw,name=systemd
35 31 0:32 / /nonexistent/unified rw - cgroup2 cgroup2 rw
";

    fn paths(proc_cgroup: &str, pure_v2: bool) -> CgroupPaths {
        let mi = if pure_v2 { "30 23 0:26 / /nonexistent rw - cgroup2 cgroup2 rw\n" } else { MOUNTINFO };
        CgroupPaths::from_hierarchies(cgroupfs::hierarchy::discover(mi, proc_cgroup, pure_v2).unwrap())
    }

    #[test]
    fn proc_cgroup_lines_map_to_controller_dirs() {
        let p = paths("4:memory:/default/c1\n3:cpu,cpuacct:/default/c1\n9:name=systemd:/x\n0::/\n", false);
        assert_eq!(p.get("memory"), Some(Path::new("/nonexistent/memory/default/c1")));
        assert_eq!(p.get("cpuacct"), Some(Path::new("/nonexistent/cpu,cpuacct/default/c1")));
        assert_eq!(p.get("cpu"), Some(Path::new("/nonexistent/cpu,cpuacct/default/c1")));
        assert_eq!(p.get("systemd"), Some(Path::new("/nonexistent/systemd/x")));
        assert_eq!(p.get(""), None);
    }

    /// Writes cgroup v2 files as a Debian 6.1 kernel lays them out into a temporary directory.
    fn v2_dir(name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("berth-stats-{name}-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        for (f, text) in files {
            fs::write(dir.join(f), text).unwrap();
        }
        dir
    }

    const MEMORY_STAT_6_1: &str = "anon 143360\nfile 8192\nkernel 262144\nkernel_stack 16384\n\
pagetables 40960\nsec_pagetables 0\npercpu 3712\nsock 0\nvmalloc 0\nshmem 0\nzswap 0\n\
zswapped 0\nfile_mapped 0\nfile_dirty 0\nfile_writeback 4096\nswapcached 0\nanon_thp 0\n\
file_thp 0\nshmem_thp 0\ninactive_anon 139264\nactive_anon 4096\ninactive_file 8192\n\
active_file 0\nunevictable 0\nslab_reclaimable 56784\nslab_unreclaimable 120216\n\
slab 177000\nworkingset_refault_anon 3\nworkingset_refault_file 5\n\
workingset_activate_anon 1\nworkingset_activate_file 2\nworkingset_restore_anon 0\n\
workingset_restore_file 0\nworkingset_nodereclaim 0\npgscan 262\npgsteal 228\n\
pgscan_kswapd 0\npgscan_direct 262\npgsteal_kswapd 0\npgsteal_direct 228\npgfault 1517\n\
pgmajfault 7\npgrefill 19\npgactivate 4\npgdeactivate 19\npglazyfree 0\npglazyfreed 0\n\
thp_fault_alloc 0\nthp_collapse_alloc 0\n";

    #[test]
    fn v2_metrics_come_from_unified_files() {
        let dir = v2_dir(
            "full",
            &[
                ("pids.current", "3\n"),
                ("pids.max", "64\n"),
                (
                    "cpu.stat",
                    "usage_usec 20417\nuser_usec 6872\nsystem_usec 13545\n\
nr_periods 12\nnr_throttled 2\nthrottled_usec 4711\nnr_bursts 0\nburst_usec 0\n",
                ),
                ("memory.current", "442368\n"),
                ("memory.max", "16777216\n"),
                ("memory.swap.current", "0\n"),
                ("memory.swap.max", "max\n"),
                ("memory.peak", "16773120\n"),
                ("memory.stat", MEMORY_STAT_6_1),
                ("memory.events", "low 0\nhigh 0\nmax 37\noom 1\noom_kill 1\noom_group_kill 0\n"),
                ("io.stat", "254:0 rbytes=1327104 wbytes=0 rios=31 wios=0 dbytes=0 dios=0\n"),
                ("rdma.current", ""),
                ("rdma.max", "mlx5_0 hca_handle=2 hca_object=max\n"),
                ("hugetlb.2MB.current", "0\n"),
                ("hugetlb.2MB.max", "max\n"),
                ("hugetlb.2MB.events", "max 0\n"),
                ("hugetlb.2MB.events.local", "max 0\n"),
                ("hugetlb.2MB.rsvd.current", "0\n"),
                ("hugetlb.1GB.current", "0\n"),
                ("hugetlb.1GB.max", "0\n"),
                ("hugetlb.1GB.events", "max 2\n"),
            ],
        );
        let m = collect_v2(&dir);
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!((m.pids.current, m.pids.limit), (3, 64));
        assert_eq!(m.cpu.usage_usec, 20417);
        assert_eq!(m.cpu.user_usec, 6872);
        assert_eq!(m.cpu.system_usec, 13545);
        assert_eq!((m.cpu.nr_periods, m.cpu.nr_throttled, m.cpu.throttled_usec), (12, 2, 4711));
        assert_eq!(m.memory.usage, 442368);
        assert_eq!(m.memory.usage_limit, 16777216);
        assert_eq!(m.memory.swap_limit, u64::MAX);
        assert_eq!(m.memory.max_usage, 16773120);
        assert_eq!((m.memory.anon, m.memory.file), (143360, 8192));
        assert_eq!(m.memory.file_writeback, 4096);
        assert_eq!(m.memory.slab, 177000);
        assert_eq!(m.memory.workingset_refault, 8);
        assert_eq!(m.memory.workingset_activate, 3);
        assert_eq!((m.memory.pgfault, m.memory.pgmajfault), (1517, 7));
        assert_eq!(m.memory_events.max, 37);
        assert_eq!(m.memory_events.oom_kill, 1);
        assert_eq!(m.io.usage.len(), 1);
        let io = &m.io.usage[0];
        assert_eq!((io.major, io.minor, io.rbytes, io.rios), (254, 0, 1327104, 31));
        assert!(m.rdma.current.is_empty());
        assert_eq!(m.rdma.limit[0].device, "mlx5_0");
        assert_eq!((m.rdma.limit[0].hca_handles, m.rdma.limit[0].hca_objects), (2, u32::MAX));
        let pages: Vec<_> = m.hugetlb.iter().map(|h| (h.pagesize.as_str(), h.max, h.failcnt)).collect();
        assert_eq!(pages, [("1GB", 0, 2), ("2MB", u64::MAX, 0)]);
    }

    #[test]
    fn v2_metrics_without_controllers_are_zero_not_missing() {
        // A cgroup whose parent enabled no controller has only the core files.
        let dir = v2_dir("bare", &[("cgroup.procs", "1\n")]);
        let m = collect_v2(&dir);
        fs::remove_dir_all(&dir).unwrap();
        assert!(m.pids.is_some() && m.cpu.is_some() && m.memory.is_some());
        assert!(m.memory_events.is_some() && m.io.is_some());
        assert_eq!(m.memory.usage, 0);
    }

    #[test]
    fn pure_v2_is_recognised_and_hybrid_is_not() {
        let v2 = paths("0::/default/c1\n", true);
        assert_eq!(v2.unified(), Some(Path::new("/nonexistent/default/c1")));
        assert_eq!(v2.memory(), Some(Cgroup::V2(PathBuf::from("/nonexistent/default/c1"))));
        let hybrid = paths("4:memory:/default/c1\n1:name=systemd:/x\n0::/x\n", false);
        assert_eq!(hybrid.unified(), None);
        assert_eq!(hybrid.memory(), Some(Cgroup::V1Memory(PathBuf::from("/nonexistent/memory/default/c1"))));
        // Only the named systemd hierarchy on v1 (cgroup_no_v1=all under a hybrid systemd):
        // the controllers are all on the unified hierarchy.
        let named_only = paths("1:name=systemd:/x\n0::/default/c1\n", false);
        assert_eq!(named_only.unified(), Some(Path::new("/nonexistent/unified/default/c1")));
    }
}
