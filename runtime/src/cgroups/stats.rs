//! The container's resource usage in the shape of runc's `events` types (`types.Stats`), so
//! `events --stats` prints what runc prints: the `cgroupfs` crate reads the controllers, this
//! maps them. Field names and which zero values are omitted follow runc's JSON tags.

use std::collections::BTreeMap;
use std::path::Path;

use cgroupfs::{v1 as cg1, v2 as cg2};
use serde::Serialize;

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Debug, Default, Serialize)]
pub struct Stats {
    pub cpu: Cpu,
    pub cpuset: CpuSet,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
    /// Intel RDT is not supported: always empty, as runc prints it without RDT.
    pub intel_rdt: BTreeMap<String, u64>,
    /// runc fills this only for its own network interfaces (never for OCI bundles).
    pub network_interfaces: Option<Vec<()>>,
}

#[derive(Debug, Default, Serialize)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

#[derive(Debug, Default, Serialize)]
pub struct CpuUsage {
    #[serde(skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Throttling {
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(rename = "throttledPeriods", skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    #[serde(rename = "throttledTime", skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct CpuSet {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    pub cpu_exclusive: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
    pub mem_hardwall: u64,
    pub mem_exclusive: u64,
    pub memory_migrate: u64,
    pub memory_spread_page: u64,
    pub memory_spread_slab: u64,
    pub memory_pressure: u64,
    pub sched_load_balance: u64,
    pub sched_relax_domain_level: i64,
}

#[derive(Debug, Default, Serialize)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Memory {
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Debug, Default, Serialize)]
pub struct Pids {
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    /// 0 when unlimited.
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Debug, Default, Serialize, Clone, PartialEq, Eq)]
pub struct BlkioEntry {
    #[serde(skip_serializing_if = "is_zero")]
    pub major: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub value: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Blkio {
    #[serde(rename = "ioServiceBytesRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioServicedRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Default, Serialize)]
pub struct Hugetlb {
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

impl From<cg1::BlkioEntry> for BlkioEntry {
    fn from(e: cg1::BlkioEntry) -> Self {
        BlkioEntry { major: e.major, minor: e.minor, op: e.op, value: e.value }
    }
}

impl From<cg1::MemoryEntry> for MemoryEntry {
    fn from(e: cg1::MemoryEntry) -> Self {
        MemoryEntry { limit: e.limit, usage: e.usage, max: e.max_usage, failcnt: e.failcnt }
    }
}

/// runc reports an unlimited pids.max as 0.
fn pids(p: cgroupfs::pids::Pids) -> Pids {
    Pids { current: p.current, limit: if p.limit == u64::MAX { 0 } else { p.limit } }
}

/// cgroup v1: each controller from the directory of its hierarchy, if mounted.
pub(crate) fn v1<'a>(dir_for: impl Fn(&str) -> Option<&'a Path>) -> Stats {
    let mut s = Stats::default();
    if let Some(d) = dir_for("cpuacct") {
        let c = cg1::cpuacct(d);
        s.cpu.usage = CpuUsage {
            total: c.usage,
            percpu: c.usage_percpu,
            percpu_kernel: c.usage_percpu_system,
            percpu_user: c.usage_percpu_user,
            kernel: c.system,
            user: c.user,
        };
    }
    if let Some(d) = dir_for("cpu") {
        let c = cg1::cpu(d);
        s.cpu.throttling =
            Throttling { periods: c.nr_periods, throttled_periods: c.nr_throttled, throttled_time: c.throttled_time };
    }
    if let Some(d) = dir_for("cpuset") {
        let c = cg1::cpuset(d);
        s.cpuset = CpuSet {
            cpus: c.cpus,
            cpu_exclusive: c.cpu_exclusive,
            mems: c.mems,
            mem_hardwall: c.mem_hardwall,
            mem_exclusive: c.mem_exclusive,
            memory_migrate: c.memory_migrate,
            memory_spread_page: c.memory_spread_page,
            memory_spread_slab: c.memory_spread_slab,
            memory_pressure: c.memory_pressure,
            sched_load_balance: c.sched_load_balance,
            sched_relax_domain_level: c.sched_relax_domain_level,
        };
    }
    if let Some(d) = dir_for("memory") {
        let m = cg1::memory(d);
        s.memory = Memory {
            cache: m.stat.get("cache").copied().unwrap_or(0),
            // Like runc: without swap accounting, swap mirrors memory.
            swap: m.swap.unwrap_or_else(|| m.usage.clone()).into(),
            usage: m.usage.into(),
            kernel: m.kernel.into(),
            kernel_tcp: m.kernel_tcp.into(),
            raw: m.stat,
        };
    }
    if let Some(d) = dir_for("pids") {
        s.pids = pids(cg1::pids(d));
    }
    if let Some(d) = dir_for("blkio") {
        let b = cg1::blkio(d);
        s.blkio = Blkio {
            io_service_bytes_recursive: b.io_service_bytes_recursive.into_iter().map(Into::into).collect(),
            io_serviced_recursive: b.io_serviced_recursive.into_iter().map(Into::into).collect(),
        };
    }
    if let Some(d) = dir_for("hugetlb") {
        s.hugetlb = cg1::hugetlb(d)
            .into_iter()
            .map(|(size, h)| (size, Hugetlb { usage: h.usage, max: h.max_usage, failcnt: h.failcnt }))
            .collect();
    }
    s
}

/// io.stat's bytes and ios per device, as runc's v1-shaped entries.
fn blkio_v2(entries: Vec<cg2::IoEntry>) -> Blkio {
    let mut b = Blkio::default();
    for e in entries {
        let entry = |op: &str, value: Option<u64>| {
            value.map(|value| BlkioEntry { major: e.major, minor: e.minor, op: op.to_string(), value })
        };
        b.io_service_bytes_recursive.extend(entry("Read", e.rbytes).into_iter().chain(entry("Write", e.wbytes)));
        b.io_serviced_recursive.extend(entry("Read", e.rios).into_iter().chain(entry("Write", e.wios)));
    }
    b
}

pub(crate) fn v2(d: &Path) -> Stats {
    let mut s = Stats::default();
    let cpu = cg2::cpu(d);
    s.cpu.usage.total = cpu.usage_usec.saturating_mul(1000);
    s.cpu.usage.user = cpu.user_usec.saturating_mul(1000);
    s.cpu.usage.kernel = cpu.system_usec.saturating_mul(1000);
    s.cpu.throttling.periods = cpu.nr_periods;
    s.cpu.throttling.throttled_periods = cpu.nr_throttled;
    s.cpu.throttling.throttled_time = cpu.throttled_usec.saturating_mul(1000);

    let m = cg2::memory(d);
    let usage = MemoryEntry { limit: m.max, usage: m.current, max: m.peak, failcnt: m.events.max };
    // v1 reports swap as memory+swap; runc keeps that meaning on v2.
    let swap = MemoryEntry {
        limit: match m.swap_max {
            None | Some(u64::MAX) => u64::MAX,
            Some(l) => l.saturating_add(usage.limit),
        },
        usage: m.swap_current.saturating_add(usage.usage),
        max: 0,
        failcnt: 0,
    };
    s.memory =
        Memory { cache: m.stat.get("file").copied().unwrap_or(0), usage, swap, raw: m.stat, ..Default::default() };
    s.pids = pids(cg2::pids(d));
    s.blkio = blkio_v2(cg2::io(d));
    s.hugetlb = cg2::hugetlb(d)
        .into_iter()
        .map(|(size, h)| (size, Hugetlb { usage: h.current, max: 0, failcnt: h.failcnt }))
        .collect();
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_stat_becomes_blkio_entries() {
        let b = blkio_v2(cg2::io_stat("8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n"));
        assert_eq!(b.io_service_bytes_recursive.len(), 2);
        assert_eq!(b.io_service_bytes_recursive[1], BlkioEntry { major: 8, minor: 0, op: "Write".into(), value: 8192 });
        assert_eq!(b.io_serviced_recursive[0].value, 1);
    }

    #[test]
    fn empty_stats_serialize_like_runc() {
        let j = serde_json::to_string(&Stats::default()).expect("encode");
        assert!(
            j.starts_with(r#"{"cpu":{"usage":{"kernel":0,"user":0},"throttling":{}},"cpuset":{"cpu_exclusive":0"#),
            "{j}"
        );
        assert!(j.ends_with(r#""pids":{},"blkio":{},"hugetlb":{},"intel_rdt":{},"network_interfaces":null}"#), "{j}");
    }
}
