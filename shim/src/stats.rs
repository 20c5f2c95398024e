//! cgroup v1 metrics for `Stats`, read straight from the controller files of the container's
//! cgroups (no cgroup library: a handful of files, and fewer allocations than a generic one).

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
};

use containerd_shim_protos::cgroups::metrics::{
    CPUStat, CPUUsage, MemoryEntry, MemoryOomControl, MemoryStat, Metrics, PidsStat, Throttle,
};

use crate::error::{io, Result};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// USER_HZ, the unit of cpuacct.stat; 100 on every Linux ABI the shim runs on.
const NANOS_PER_TICK: u64 = 1_000_000_000 / 100;

/// Controller name -> directory of the process's cgroup in that hierarchy.
#[derive(Debug, Default, Clone)]
pub struct CgroupPaths(HashMap<String, PathBuf>);

impl CgroupPaths {
    pub fn of_pid(pid: u32) -> Result<Self> {
        let text = fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .map_err(io(format!("read cgroups of {pid}")))?;
        Ok(Self::parse(&text, Path::new(CGROUP_ROOT)))
    }

    fn parse(text: &str, root: &Path) -> Self {
        let mut map = HashMap::new();
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_), Some(controllers), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if controllers.is_empty() {
                continue; // the v2 unified entry
            }
            let rel = path.trim_start_matches('/');
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
        CgroupPaths(map)
    }

    pub fn get(&self, controller: &str) -> Option<&Path> {
        self.0.get(controller).map(PathBuf::as_path)
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
}
