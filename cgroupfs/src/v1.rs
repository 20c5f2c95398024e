//! What the cgroup v1 controllers report, one function per controller, each given the
//! cgroup's directory in that controller's hierarchy.

use std::collections::BTreeMap;
use std::path::Path;

use crate::{file, host, parse};

pub use crate::pids::{pids, Pids};

/// cpuacct: usage in nanoseconds.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cpuacct {
    /// cpuacct.usage.
    pub usage: u64,
    /// cpuacct.usage_percpu.
    pub usage_percpu: Vec<u64>,
    /// cpuacct.usage_all, per cpu (empty on kernels without it).
    pub usage_percpu_user: Vec<u64>,
    pub usage_percpu_system: Vec<u64>,
    /// cpuacct.stat, converted from clock ticks.
    pub user: u64,
    pub system: u64,
}

pub fn cpuacct(dir: &Path) -> Cpuacct {
    let mut c = Cpuacct {
        usage: file::value(dir, "cpuacct.usage"),
        usage_percpu: file::text(dir, "cpuacct.usage_percpu")
            .map(|t| t.split_whitespace().map(|v| parse::value(v).unwrap_or(0)).collect())
            .unwrap_or_default(),
        ..Default::default()
    };
    // "cpu user system" then one line per cpu, in nanoseconds.
    if let Some(t) = file::text(dir, "cpuacct.usage_all") {
        for l in t.lines().skip(1) {
            let f: Vec<u64> = l.split_whitespace().map(|v| parse::value(v).unwrap_or(0)).collect();
            if let [_, user, system] = f[..] {
                c.usage_percpu_user.push(user);
                c.usage_percpu_system.push(system);
            }
        }
    }
    let st = file::flat_keyed(dir, "cpuacct.stat");
    c.user = host::ticks_to_ns(file::get(&st, "user"));
    c.system = host::ticks_to_ns(file::get(&st, "system"));
    c
}

/// cpu: CFS throttling (cpu.stat).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cpu {
    pub nr_periods: u64,
    pub nr_throttled: u64,
    /// Nanoseconds.
    pub throttled_time: u64,
}

pub fn cpu(dir: &Path) -> Cpu {
    let st = file::flat_keyed(dir, "cpu.stat");
    Cpu {
        nr_periods: file::get(&st, "nr_periods"),
        nr_throttled: file::get(&st, "nr_throttled"),
        throttled_time: file::get(&st, "throttled_time"),
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cpuset {
    pub cpus: Vec<u16>,
    pub mems: Vec<u16>,
    pub cpu_exclusive: u64,
    pub mem_hardwall: u64,
    pub mem_exclusive: u64,
    pub memory_migrate: u64,
    pub memory_spread_page: u64,
    pub memory_spread_slab: u64,
    pub memory_pressure: u64,
    pub sched_load_balance: u64,
    pub sched_relax_domain_level: i64,
}

pub fn cpuset(dir: &Path) -> Cpuset {
    let list = |f: &str| file::text(dir, f).map(|t| parse::cpu_list(t.trim())).unwrap_or_default();
    let v = |f: &str| file::value(dir, f);
    Cpuset {
        cpus: list("cpuset.cpus"),
        mems: list("cpuset.mems"),
        cpu_exclusive: v("cpuset.cpu_exclusive"),
        mem_hardwall: v("cpuset.mem_hardwall"),
        mem_exclusive: v("cpuset.mem_exclusive"),
        memory_migrate: v("cpuset.memory_migrate"),
        memory_spread_page: v("cpuset.memory_spread_page"),
        memory_spread_slab: v("cpuset.memory_spread_slab"),
        memory_pressure: v("cpuset.memory_pressure"),
        sched_load_balance: v("cpuset.sched_load_balance"),
        sched_relax_domain_level: file::text(dir, "cpuset.sched_relax_domain_level")
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0),
    }
}

/// One `<prefix>.{limit_in_bytes,usage_in_bytes,max_usage_in_bytes,failcnt}` group.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MemoryEntry {
    pub limit: u64,
    pub usage: u64,
    pub max_usage: u64,
    pub failcnt: u64,
}

fn memory_entry(dir: &Path, prefix: &str) -> MemoryEntry {
    MemoryEntry {
        limit: file::value(dir, &format!("{prefix}.limit_in_bytes")),
        usage: file::value(dir, &format!("{prefix}.usage_in_bytes")),
        max_usage: file::value(dir, &format!("{prefix}.max_usage_in_bytes")),
        failcnt: file::value(dir, &format!("{prefix}.failcnt")),
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Memory {
    /// memory.stat, every key.
    pub stat: BTreeMap<String, u64>,
    /// memory.*.
    pub usage: MemoryEntry,
    /// memory.memsw.*: memory plus swap; `None` without swap accounting.
    pub swap: Option<MemoryEntry>,
    /// memory.kmem.*.
    pub kernel: MemoryEntry,
    /// memory.kmem.tcp.*.
    pub kernel_tcp: MemoryEntry,
}

pub fn memory(dir: &Path) -> Memory {
    Memory {
        stat: file::flat_keyed(dir, "memory.stat"),
        usage: memory_entry(dir, "memory"),
        swap: dir.join("memory.memsw.usage_in_bytes").exists().then(|| memory_entry(dir, "memory.memsw")),
        kernel: memory_entry(dir, "memory.kmem"),
        kernel_tcp: memory_entry(dir, "memory.kmem.tcp"),
    }
}

/// memory.oom_control.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OomControl {
    pub oom_kill_disable: u64,
    pub under_oom: u64,
    /// OOM kills so far (kernels since 4.13).
    pub oom_kill: u64,
}

pub fn oom_control(dir: &Path) -> OomControl {
    let m = file::flat_keyed(dir, "memory.oom_control");
    OomControl {
        oom_kill_disable: file::get(&m, "oom_kill_disable"),
        under_oom: file::get(&m, "under_oom"),
        oom_kill: file::get(&m, "oom_kill"),
    }
}

/// One "MAJ:MIN Op value" line of a blkio file.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BlkioEntry {
    pub major: u64,
    pub minor: u64,
    pub op: String,
    pub value: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Blkio {
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

/// "MAJ:MIN Op value" lines; the "Total" line is left out, as runc does.
pub fn blkio_entries(text: &str) -> Vec<BlkioEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let [dev, op, value] = f[..] else { return None };
            let (major, minor) = parse::device(dev)?;
            Some(BlkioEntry { major, minor, op: op.to_string(), value: value.parse().ok()? })
        })
        .collect()
}

/// CFQ's recursive files, else BFQ's, else the throttle files every kernel has (runc's order).
pub fn blkio(dir: &Path) -> Blkio {
    let read = |f: &str| file::text(dir, f).map(|t| blkio_entries(&t)).unwrap_or_default();
    for (bytes, ios) in [
        ("blkio.io_service_bytes_recursive", "blkio.io_serviced_recursive"),
        ("blkio.bfq.io_service_bytes_recursive", "blkio.bfq.io_serviced_recursive"),
    ] {
        let b = read(bytes);
        if !b.is_empty() {
            return Blkio { io_service_bytes_recursive: b, io_serviced_recursive: read(ios) };
        }
    }
    Blkio {
        io_service_bytes_recursive: read("blkio.throttle.io_service_bytes_recursive"),
        io_serviced_recursive: read("blkio.throttle.io_serviced_recursive"),
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Hugetlb {
    pub usage: u64,
    pub max_usage: u64,
    pub failcnt: u64,
}

/// One entry per huge page size of the host ([`host::hugepage_sizes`]).
pub fn hugetlb(dir: &Path) -> BTreeMap<String, Hugetlb> {
    file::per_page_size(host::hugepage_sizes(), |f| Hugetlb {
        usage: file::value(dir, &f("usage_in_bytes")),
        max_usage: file::value(dir, &f("max_usage_in_bytes")),
        failcnt: file::value(dir, &f("failcnt")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (f, text) in files {
            std::fs::write(d.path().join(f), text).unwrap();
        }
        d
    }

    #[test]
    fn blkio_lines() {
        let v1 = blkio_entries("8:0 Read 10\n8:0 Write 20\nTotal 30\n");
        assert_eq!(v1.len(), 2);
        assert_eq!(v1[0], BlkioEntry { major: 8, minor: 0, op: "Read".into(), value: 10 });
    }

    #[test]
    fn memory_without_swap_accounting_has_no_swap() {
        let d = dir_with(&[
            ("memory.stat", "cache 4096\nrss 8192\n"),
            ("memory.limit_in_bytes", "9223372036854771712\n"),
            ("memory.usage_in_bytes", "12288\n"),
            ("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"),
        ]);
        let m = memory(d.path());
        assert_eq!(m.stat.get("rss"), Some(&8192));
        assert_eq!(m.usage.usage, 12288);
        assert_eq!(m.usage.limit, 9223372036854771712);
        assert_eq!(m.swap, None);
        assert_eq!(oom_control(d.path()).oom_kill, 2);
    }

    #[test]
    fn cpuacct_converts_ticks() {
        let d = dir_with(&[
            ("cpuacct.usage", "300\n"),
            ("cpuacct.usage_percpu", "100 200 \n"),
            ("cpuacct.usage_all", "cpu user system\n0 60 40\n1 150 50\n"),
            ("cpuacct.stat", "user 2\nsystem 1\n"),
        ]);
        let c = cpuacct(d.path());
        assert_eq!((c.usage, c.usage_percpu.as_slice()), (300, &[100, 200][..]));
        assert_eq!(c.usage_percpu_user, [60, 150]);
        assert_eq!(c.usage_percpu_system, [40, 50]);
        assert_eq!(c.user, host::ticks_to_ns(2));
        assert_eq!(c.system, host::ticks_to_ns(1));
    }
}
