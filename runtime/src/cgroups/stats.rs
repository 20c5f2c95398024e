//! The container's resource usage, read from its cgroup, in the shape of
//! runc's `events` types (`types.Stats`), so `events --stats` prints what
//! runc prints. Field names and which zero values are omitted follow
//! runc's JSON tags.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::fsutil::read_trim;
use super::{CgroupError, Manager};

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

/// A cgroup number; "max" (unlimited) reads as u64::MAX like runc's
/// GetCgroupParamUint. Missing or unreadable files read as 0: a controller
/// that is not there has nothing to report.
fn num(dir: &Path, file: &str) -> u64 {
    read_trim(&dir.join(file)).map(|s| parse_num(&s)).unwrap_or(0)
}

fn parse_num(s: &str) -> u64 {
    if s == "max" {
        return u64::MAX;
    }
    // Negative values (v1 reports -1 for some unset knobs) saturate like runc's parser.
    s.parse::<u64>().or_else(|_| s.parse::<i64>().map(|v| v.max(0) as u64)).unwrap_or(0)
}

/// "key value" lines (memory.stat, cpu.stat, memory.events).
pub(crate) fn key_values(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

fn kv_file(dir: &Path, file: &str) -> BTreeMap<String, u64> {
    std::fs::read_to_string(dir.join(file)).map(|t| key_values(&t)).unwrap_or_default()
}

/// A cpuset list ("0-3,7") as its ids.
fn parse_list(s: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) {
            out.extend(a..=b);
        }
    }
    out
}

/// Clock ticks (USER_HZ) to nanoseconds.
fn ticks_to_ns(t: u64) -> u64 {
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().unwrap_or(0);
    let hz = if hz > 0 { hz as u64 } else { 100 };
    t.saturating_mul(1_000_000_000 / hz)
}

impl Manager {
    /// The container's current resource usage.
    pub fn stats(&self) -> Result<Stats, CgroupError> {
        if self.is_v2() {
            let d = self.dir_for("").ok_or_else(|| CgroupError::Discovery("no cgroup2 directory".into()))?;
            Ok(v2_stats(d))
        } else {
            Ok(self.v1_stats())
        }
    }

    fn v1_stats(&self) -> Stats {
        let mut s = Stats::default();
        if let Some(d) = self.dir_for("cpuacct") {
            let u = &mut s.cpu.usage;
            u.total = num(d, "cpuacct.usage");
            u.percpu = read_trim(&d.join("cpuacct.usage_percpu"))
                .map(|t| t.split_whitespace().map(parse_num).collect())
                .unwrap_or_default();
            // "cpu user system" then one line per cpu, in nanoseconds.
            if let Ok(t) = std::fs::read_to_string(d.join("cpuacct.usage_all")) {
                for l in t.lines().skip(1) {
                    let f: Vec<u64> = l.split_whitespace().map(parse_num).collect();
                    if f.len() == 3 {
                        u.percpu_user.push(f[1]);
                        u.percpu_kernel.push(f[2]);
                    }
                }
            }
            let st = kv_file(d, "cpuacct.stat");
            u.user = ticks_to_ns(st.get("user").copied().unwrap_or(0));
            u.kernel = ticks_to_ns(st.get("system").copied().unwrap_or(0));
        }
        if let Some(d) = self.dir_for("cpu") {
            let st = kv_file(d, "cpu.stat");
            let t = &mut s.cpu.throttling;
            t.periods = st.get("nr_periods").copied().unwrap_or(0);
            t.throttled_periods = st.get("nr_throttled").copied().unwrap_or(0);
            t.throttled_time = st.get("throttled_time").copied().unwrap_or(0);
        }
        if let Some(d) = self.dir_for("cpuset") {
            let c = &mut s.cpuset;
            c.cpus = read_trim(&d.join("cpuset.cpus")).map(|t| parse_list(&t)).unwrap_or_default();
            c.mems = read_trim(&d.join("cpuset.mems")).map(|t| parse_list(&t)).unwrap_or_default();
            c.cpu_exclusive = num(d, "cpuset.cpu_exclusive");
            c.mem_hardwall = num(d, "cpuset.mem_hardwall");
            c.mem_exclusive = num(d, "cpuset.mem_exclusive");
            c.memory_migrate = num(d, "cpuset.memory_migrate");
            c.memory_spread_page = num(d, "cpuset.memory_spread_page");
            c.memory_spread_slab = num(d, "cpuset.memory_spread_slab");
            c.memory_pressure = num(d, "cpuset.memory_pressure");
            c.sched_load_balance = num(d, "cpuset.sched_load_balance");
            c.sched_relax_domain_level = read_trim(&d.join("cpuset.sched_relax_domain_level"))
                .ok()
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
        }
        if let Some(d) = self.dir_for("memory") {
            let m = &mut s.memory;
            m.raw = kv_file(d, "memory.stat");
            m.cache = m.raw.get("cache").copied().unwrap_or(0);
            let entry = |prefix: &str| MemoryEntry {
                limit: num(d, &format!("{prefix}.limit_in_bytes")),
                usage: num(d, &format!("{prefix}.usage_in_bytes")),
                max: num(d, &format!("{prefix}.max_usage_in_bytes")),
                failcnt: num(d, &format!("{prefix}.failcnt")),
            };
            m.usage = entry("memory");
            // Like runc: without swap accounting, swap mirrors memory.
            m.swap = if d.join("memory.memsw.usage_in_bytes").exists() { entry("memory.memsw") } else { entry("memory") };
            m.kernel = entry("memory.kmem");
            m.kernel_tcp = entry("memory.kmem.tcp");
        }
        if let Some(d) = self.dir_for("pids") {
            s.pids = pids(d);
        }
        if let Some(d) = self.dir_for("blkio") {
            s.blkio = v1_blkio(d);
        }
        if let Some(d) = self.dir_for("hugetlb") {
            for size in hugepage_sizes() {
                let p = format!("hugetlb.{size}");
                s.hugetlb.insert(
                    size.clone(),
                    Hugetlb {
                        usage: num(d, &format!("{p}.usage_in_bytes")),
                        max: num(d, &format!("{p}.max_usage_in_bytes")),
                        failcnt: num(d, &format!("{p}.failcnt")),
                    },
                );
            }
        }
        s
    }
}

fn pids(d: &Path) -> Pids {
    let limit = num(d, "pids.max");
    Pids { current: num(d, "pids.current"), limit: if limit == u64::MAX { 0 } else { limit } }
}

/// Huge page sizes of this host as the hugetlb files name them ("2MB", "1GB").
fn hugepage_sizes() -> Vec<String> {
    let Ok(rd) = std::fs::read_dir("/sys/kernel/mm/hugepages") else {
        return Vec::new();
    };
    let mut out: Vec<String> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let kb: u64 = name.strip_prefix("hugepages-")?.strip_suffix("kB")?.parse().ok()?;
            Some(if kb >= 1 << 20 {
                format!("{}GB", kb >> 20)
            } else if kb >= 1 << 10 {
                format!("{}MB", kb >> 10)
            } else {
                format!("{kb}KB")
            })
        })
        .collect();
    out.sort();
    out
}

/// "MAJ:MIN Op value" lines; the "Total" line is skipped like runc does.
fn blkio_entries(text: &str) -> Vec<BlkioEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() != 3 {
                return None;
            }
            let (maj, min) = f[0].split_once(':')?;
            Some(BlkioEntry { major: maj.parse().ok()?, minor: min.parse().ok()?, op: f[1].to_string(), value: f[2].parse().ok()? })
        })
        .collect()
}

fn v1_blkio(d: &Path) -> Blkio {
    let read = |f: &str| std::fs::read_to_string(d.join(f)).map(|t| blkio_entries(&t)).unwrap_or_default();
    // CFQ's recursive files, then BFQ's, then the throttle files that every
    // kernel has (runc's order).
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

/// io.stat: "MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=.. dbytes=.. dios=..".
fn v2_io(text: &str) -> Blkio {
    let mut b = Blkio::default();
    for l in text.lines() {
        let mut f = l.split_whitespace();
        let Some((maj, min)) = f.next().and_then(|d| d.split_once(':')) else { continue };
        let (Ok(major), Ok(minor)) = (maj.parse(), min.parse()) else { continue };
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else { continue };
            let Ok(value) = v.parse() else { continue };
            let (list, op) = match k {
                "rbytes" => (&mut b.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut b.io_service_bytes_recursive, "Write"),
                "rios" => (&mut b.io_serviced_recursive, "Read"),
                "wios" => (&mut b.io_serviced_recursive, "Write"),
                _ => continue,
            };
            list.push(BlkioEntry { major, minor, op: op.to_string(), value });
        }
    }
    b
}

fn v2_stats(d: &Path) -> Stats {
    let mut s = Stats::default();
    let cpu = kv_file(d, "cpu.stat");
    let get = |m: &BTreeMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
    s.cpu.usage.total = get(&cpu, "usage_usec").saturating_mul(1000);
    s.cpu.usage.user = get(&cpu, "user_usec").saturating_mul(1000);
    s.cpu.usage.kernel = get(&cpu, "system_usec").saturating_mul(1000);
    s.cpu.throttling.periods = get(&cpu, "nr_periods");
    s.cpu.throttling.throttled_periods = get(&cpu, "nr_throttled");
    s.cpu.throttling.throttled_time = get(&cpu, "throttled_usec").saturating_mul(1000);

    let m = &mut s.memory;
    m.raw = kv_file(d, "memory.stat");
    m.cache = get(&m.raw, "file");
    m.usage = MemoryEntry {
        limit: num(d, "memory.max"),
        usage: num(d, "memory.current"),
        max: num(d, "memory.peak"),
        failcnt: get(&kv_file(d, "memory.events"), "max"),
    };
    // v1 reports swap as memory+swap; runc keeps that meaning on v2.
    let swap_limit = num(d, "memory.swap.max");
    m.swap = MemoryEntry {
        limit: if swap_limit == u64::MAX || !d.join("memory.swap.max").exists() {
            u64::MAX
        } else {
            swap_limit.saturating_add(m.usage.limit)
        },
        usage: num(d, "memory.swap.current").saturating_add(m.usage.usage),
        max: 0,
        failcnt: 0,
    };
    s.pids = pids(d);
    s.blkio = std::fs::read_to_string(d.join("io.stat")).map(|t| v2_io(&t)).unwrap_or_default();
    for size in hugepage_sizes() {
        let p = format!("hugetlb.{size}");
        if d.join(format!("{p}.current")).exists() {
            let events = kv_file(d, &format!("{p}.events"));
            s.hugetlb.insert(
                size.clone(),
                Hugetlb { usage: num(d, &format!("{p}.current")), max: 0, failcnt: get(&events, "max") },
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_numbers() {
        assert_eq!(parse_list("0-2,5"), vec![0, 1, 2, 5]);
        assert_eq!(parse_list(""), Vec::<u16>::new());
        assert_eq!(parse_num("max"), u64::MAX);
        assert_eq!(parse_num("-1"), 0);
        assert_eq!(parse_num("42"), 42);
    }

    #[test]
    fn io_stat_becomes_blkio_entries() {
        let b = v2_io("8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n");
        assert_eq!(b.io_service_bytes_recursive.len(), 2);
        assert_eq!(b.io_service_bytes_recursive[1], BlkioEntry { major: 8, minor: 0, op: "Write".into(), value: 8192 });
        assert_eq!(b.io_serviced_recursive[0].value, 1);
        let v1 = blkio_entries("8:0 Read 10\n8:0 Write 20\nTotal 30\n");
        assert_eq!(v1.len(), 2);
        assert_eq!(v1[0].op, "Read");
    }

    #[test]
    fn empty_stats_serialize_like_runc() {
        let j = serde_json::to_string(&Stats::default()).expect("encode");
        assert!(j.starts_with(r#"{"cpu":{"usage":{"kernel":0,"user":0},"throttling":{}},"cpuset":{"cpu_exclusive":0"#), "{j}");
        assert!(j.ends_with(r#""pids":{},"blkio":{},"hugetlb":{},"intel_rdt":{},"network_interfaces":null}"#), "{j}");
    }
}
