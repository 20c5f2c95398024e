//! Metrics for `Stats`, read straight from the controller files of the container's cgroups (no
//! cgroup library: a handful of files, and fewer allocations than a generic one). cgroup v1
//! gives containerd's `io.containerd.cgroups.v1.Metrics`, the unified hierarchy
//! `io.containerd.cgroups.v2.Metrics`; which one is decided by `/proc/<pid>/cgroup`.

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
};

use containerd_shim_protos::cgroups::metrics::{
    CPUStat, CPUUsage, MemoryEntry, MemoryOomControl, MemoryStat, Metrics, PidsStat, Throttle,
};
use containerd_shim_protos::cgroups_v2::metrics as v2;

use crate::error::{io, Result};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// USER_HZ, the unit of cpuacct.stat; 100 on every Linux ABI the shim runs on.
const NANOS_PER_TICK: u64 = 1_000_000_000 / 100;

/// Controller name -> directory of the process's cgroup in that hierarchy, and the directory
/// in the unified hierarchy (`0::` line).
#[derive(Debug, Default, Clone)]
pub struct CgroupPaths {
    v1: HashMap<String, PathBuf>,
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
        let text = fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .map_err(io(format!("read cgroups of {pid}")))?;
        Ok(Self::parse(&text, Path::new(CGROUP_ROOT)))
    }

    fn parse(text: &str, root: &Path) -> Self {
        let mut map = HashMap::new();
        let mut unified = None;
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_), Some(controllers), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let rel = path.trim_start_matches('/');
            if controllers.is_empty() {
                unified = Some(root.join(rel));
                continue;
            }
            let joint = root.join(controllers);
            for c in controllers.split(',') {
                let c = c.trim_start_matches("name=");
                // Co-mounted controllers live under their joint directory ("cpu,cpuacct"),
                // separately mounted ones under their own name.
                let base = if joint.exists() {
                    joint.clone()
                } else {
                    root.join(c)
                };
                map.insert(c.to_string(), base.join(rel));
            }
        }
        CgroupPaths { v1: map, unified }
    }

    pub fn get(&self, controller: &str) -> Option<&Path> {
        self.v1.get(controller).map(PathBuf::as_path)
    }

    /// Pure cgroup v2 (no v1 controller hierarchy): the unified directory. On a hybrid host
    /// the unified hierarchy carries no controllers, so v1 is what holds the limits.
    pub fn unified(&self) -> Option<&Path> {
        if self.v1.keys().any(|c| c != "systemd") {
            None
        } else {
            self.unified.as_deref()
        }
    }

    /// Where the memory controller of this process is, in whichever hierarchy has it.
    pub fn memory(&self) -> Option<Cgroup> {
        match self.unified() {
            Some(dir) => Some(Cgroup::V2(dir.to_path_buf())),
            None => self
                .get("memory")
                .map(|d| Cgroup::V1Memory(d.to_path_buf())),
        }
    }
}

fn read_u64(dir: &Path, file: &str) -> u64 {
    fs::read_to_string(dir.join(file))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn read_kv(dir: &Path, file: &str) -> HashMap<String, u64> {
    fs::read_to_string(dir.join(file))
        .map(|s| parse_kv(&s))
        .unwrap_or_default()
}

fn parse_kv(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

fn memory_entry(dir: &Path, prefix: &str) -> MemoryEntry {
    MemoryEntry {
        usage: read_u64(dir, &format!("{prefix}.usage_in_bytes")),
        max: read_u64(dir, &format!("{prefix}.max_usage_in_bytes")),
        limit: read_u64(dir, &format!("{prefix}.limit_in_bytes")),
        failcnt: read_u64(dir, &format!("{prefix}.failcnt")),
        ..Default::default()
    }
}

pub fn collect_v1(paths: &CgroupPaths) -> Metrics {
    let mut m = Metrics::new();
    if let Some(dir) = paths.get("pids") {
        let limit = fs::read_to_string(dir.join("pids.max"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        m.pids = protobuf::MessageField::some(PidsStat {
            current: read_u64(dir, "pids.current"),
            limit,
            ..Default::default()
        });
    }
    let mut cpu = CPUStat::new();
    if let Some(dir) = paths.get("cpuacct") {
        let stat = read_kv(dir, "cpuacct.stat");
        let per_cpu = fs::read_to_string(dir.join("cpuacct.usage_percpu"))
            .map(|s| {
                s.split_whitespace()
                    .filter_map(|v| v.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        cpu.usage = protobuf::MessageField::some(CPUUsage {
            total: read_u64(dir, "cpuacct.usage"),
            user: stat.get("user").copied().unwrap_or(0) * NANOS_PER_TICK,
            kernel: stat.get("system").copied().unwrap_or(0) * NANOS_PER_TICK,
            per_cpu,
            ..Default::default()
        });
    }
    if let Some(dir) = paths.get("cpu") {
        let stat = read_kv(dir, "cpu.stat");
        let g = |k: &str| stat.get(k).copied().unwrap_or(0);
        cpu.throttling = protobuf::MessageField::some(Throttle {
            periods: g("nr_periods"),
            throttled_periods: g("nr_throttled"),
            throttled_time: g("throttled_time"),
            ..Default::default()
        });
    }
    m.cpu = protobuf::MessageField::some(cpu);
    if let Some(dir) = paths.get("memory") {
        let s = read_kv(dir, "memory.stat");
        let g = |k: &str| s.get(k).copied().unwrap_or(0);
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
            usage: protobuf::MessageField::some(memory_entry(dir, "memory")),
            swap: protobuf::MessageField::some(memory_entry(dir, "memory.memsw")),
            kernel: protobuf::MessageField::some(memory_entry(dir, "memory.kmem")),
            kernel_tcp: protobuf::MessageField::some(memory_entry(dir, "memory.kmem.tcp")),
            ..Default::default()
        });
        let oom = read_kv(dir, "memory.oom_control");
        let g = |k: &str| oom.get(k).copied().unwrap_or(0);
        m.memory_oom_control = protobuf::MessageField::some(MemoryOomControl {
            oom_kill_disable: g("oom_kill_disable"),
            under_oom: g("under_oom"),
            oom_kill: g("oom_kill"),
            ..Default::default()
        });
    }
    m
}

/// A v2 limit file: a number, or "max" for none (containerd reports "max" as u64::MAX).
fn read_limit(dir: &Path, file: &str) -> u64 {
    fs::read_to_string(dir.join(file))
        .ok()
        .and_then(|s| parse_limit(s.trim()))
        .unwrap_or(0)
}

fn parse_limit(s: &str) -> Option<u64> {
    if s == "max" {
        Some(u64::MAX)
    } else {
        s.parse().ok()
    }
}

/// The `key=value` words after a line's first word (`io.stat`, `rdma.*`), with the first word.
fn keyed_line(line: &str) -> Option<(&str, impl Iterator<Item = (&str, &str)>)> {
    let mut words = line.split_whitespace();
    let first = words.next()?;
    Some((first, words.filter_map(|w| w.split_once('='))))
}

/// `io.stat`: one line per device, `MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=.. dbytes=.. dios=..`.
fn parse_io_stat(text: &str) -> Vec<v2::IOEntry> {
    text.lines()
        .filter_map(|line| {
            let (dev, values) = keyed_line(line)?;
            let (major, minor) = dev.split_once(':')?;
            let mut e = v2::IOEntry {
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
                ..Default::default()
            };
            for (k, v) in values {
                let v = v.parse().unwrap_or(0);
                match k {
                    "rbytes" => e.rbytes = v,
                    "wbytes" => e.wbytes = v,
                    "rios" => e.rios = v,
                    "wios" => e.wios = v,
                    _ => {}
                }
            }
            Some(e)
        })
        .collect()
}

/// `rdma.current` / `rdma.max`: `DEVICE hca_handle=N hca_object=N` ("max" counts as u32::MAX).
fn parse_rdma(text: &str) -> Vec<v2::RdmaEntry> {
    text.lines()
        .filter_map(|line| {
            let (device, values) = keyed_line(line)?;
            let mut e = v2::RdmaEntry {
                device: device.to_string(),
                ..Default::default()
            };
            for (k, v) in values {
                let v = if v == "max" {
                    u32::MAX
                } else {
                    v.parse().unwrap_or(0)
                };
                match k {
                    "hca_handle" => e.hca_handles = v,
                    "hca_object" => e.hca_objects = v,
                    _ => {}
                }
            }
            Some(e)
        })
        .collect()
}

/// One entry per huge page size the kernel offers (`hugetlb.<size>.current` files).
fn hugetlb_v2(dir: &Path) -> Vec<v2::HugeTlbStat> {
    let mut sizes: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| {
                    let name = e.ok()?.file_name().into_string().ok()?;
                    let size = name.strip_prefix("hugetlb.")?.strip_suffix(".current")?;
                    (!size.contains('.')).then(|| size.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    sizes.sort();
    sizes
        .into_iter()
        .map(|size| v2::HugeTlbStat {
            current: read_u64(dir, &format!("hugetlb.{size}.current")),
            max: read_limit(dir, &format!("hugetlb.{size}.max")),
            failcnt: read_kv(dir, &format!("hugetlb.{size}.events"))
                .get("max")
                .copied()
                .unwrap_or(0),
            pagesize: size,
            ..Default::default()
        })
        .collect()
}

/// Every sub-message is present (zero when its controller is not enabled): ctr prints the
/// fields of pids, cpu and memory without checking them for nil.
pub fn collect_v2(dir: &Path) -> v2::Metrics {
    let mut m = v2::Metrics::new();
    m.pids = protobuf::MessageField::some(v2::PidsStat {
        current: read_u64(dir, "pids.current"),
        limit: read_limit(dir, "pids.max"),
        ..Default::default()
    });
    let cpu = read_kv(dir, "cpu.stat");
    let g = |k: &str| cpu.get(k).copied().unwrap_or(0);
    m.cpu = protobuf::MessageField::some(v2::CPUStat {
        usage_usec: g("usage_usec"),
        user_usec: g("user_usec"),
        system_usec: g("system_usec"),
        nr_periods: g("nr_periods"),
        nr_throttled: g("nr_throttled"),
        throttled_usec: g("throttled_usec"),
        nr_bursts: g("nr_bursts"),
        burst_usec: g("burst_usec"),
        ..Default::default()
    });
    let mem = read_kv(dir, "memory.stat");
    let g = |k: &str| mem.get(k).copied().unwrap_or(0);
    // Kernels since 5.9 split the workingset counters by anon/file; the proto has one each.
    let either = |k: &str| {
        mem.get(k)
            .copied()
            .unwrap_or_else(|| g(&format!("{k}_anon")) + g(&format!("{k}_file")))
    };
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
        usage: read_u64(dir, "memory.current"),
        usage_limit: read_limit(dir, "memory.max"),
        swap_usage: read_u64(dir, "memory.swap.current"),
        swap_limit: read_limit(dir, "memory.swap.max"),
        max_usage: read_u64(dir, "memory.peak"),
        swap_max_usage: read_u64(dir, "memory.swap.peak"),
        ..Default::default()
    });
    let ev = read_kv(dir, "memory.events");
    let g = |k: &str| ev.get(k).copied().unwrap_or(0);
    m.memory_events = protobuf::MessageField::some(v2::MemoryEvents {
        low: g("low"),
        high: g("high"),
        max: g("max"),
        oom: g("oom"),
        oom_kill: g("oom_kill"),
        oom_group_kill: g("oom_group_kill"),
        ..Default::default()
    });
    let read = |f: &str| fs::read_to_string(dir.join(f)).unwrap_or_default();
    m.rdma = protobuf::MessageField::some(v2::RdmaStat {
        current: parse_rdma(&read("rdma.current")),
        limit: parse_rdma(&read("rdma.max")),
        ..Default::default()
    });
    m.io = protobuf::MessageField::some(v2::IOStat {
        usage: parse_io_stat(&read("io.stat")),
        ..Default::default()
    });
    m.hugetlb = hugetlb_v2(dir);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_cgroup_lines_map_to_controller_dirs() {
        let p = CgroupPaths::parse(
            "4:memory:/default/c1\n3:cpu,cpuacct:/default/c1\n9:name=systemd:/x\n0::/\n",
            Path::new("/nonexistent"),
        );
        assert_eq!(
            p.get("memory"),
            Some(Path::new("/nonexistent/memory/default/c1"))
        );
        assert_eq!(
            p.get("cpuacct"),
            Some(Path::new("/nonexistent/cpuacct/default/c1"))
        );
        assert_eq!(p.get("systemd"), Some(Path::new("/nonexistent/systemd/x")));
        assert_eq!(p.get(""), None);
    }

    #[test]
    fn key_value_files_parse() {
        let kv = parse_kv("oom_kill_disable 0\nunder_oom 0\noom_kill 3\nbad\n");
        assert_eq!(kv.get("oom_kill"), Some(&3));
        assert_eq!(kv.len(), 3);
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
                (
                    "memory.events",
                    "low 0\nhigh 0\nmax 37\noom 1\noom_kill 1\noom_group_kill 0\n",
                ),
                (
                    "io.stat",
                    "254:0 rbytes=1327104 wbytes=0 rios=31 wios=0 dbytes=0 dios=0\n",
                ),
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
        assert_eq!(
            (m.cpu.nr_periods, m.cpu.nr_throttled, m.cpu.throttled_usec),
            (12, 2, 4711)
        );
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
        assert_eq!(
            (io.major, io.minor, io.rbytes, io.rios),
            (254, 0, 1327104, 31)
        );
        assert!(m.rdma.current.is_empty());
        assert_eq!(m.rdma.limit[0].device, "mlx5_0");
        assert_eq!(
            (m.rdma.limit[0].hca_handles, m.rdma.limit[0].hca_objects),
            (2, u32::MAX)
        );
        let pages: Vec<_> = m
            .hugetlb
            .iter()
            .map(|h| (h.pagesize.as_str(), h.max, h.failcnt))
            .collect();
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
        let v2 = CgroupPaths::parse("0::/default/c1\n", Path::new("/nonexistent"));
        assert_eq!(v2.unified(), Some(Path::new("/nonexistent/default/c1")));
        assert_eq!(
            v2.memory(),
            Some(Cgroup::V2(PathBuf::from("/nonexistent/default/c1")))
        );
        let hybrid = CgroupPaths::parse(
            "4:memory:/default/c1\n1:name=systemd:/x\n0::/x\n",
            Path::new("/nonexistent"),
        );
        assert_eq!(hybrid.unified(), None);
        assert_eq!(
            hybrid.memory(),
            Some(Cgroup::V1Memory(PathBuf::from(
                "/nonexistent/memory/default/c1"
            )))
        );
    }
}
