//! What a cgroup v2 cgroup reports, one function per controller, each given the cgroup's
//! directory in the unified hierarchy.

use std::collections::BTreeMap;
use std::path::Path;

use crate::{file, parse};

pub use crate::pids::{pids, Pids};

/// cpu.stat (the `usage`/`user`/`system` keys are there even without the cpu controller).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cpu {
    pub usage_usec: u64,
    pub user_usec: u64,
    pub system_usec: u64,
    pub nr_periods: u64,
    pub nr_throttled: u64,
    pub throttled_usec: u64,
    pub nr_bursts: u64,
    pub burst_usec: u64,
}

pub fn cpu(dir: &Path) -> Cpu {
    let st = file::flat_keyed(dir, "cpu.stat");
    let g = |k: &str| file::get(&st, k);
    Cpu {
        usage_usec: g("usage_usec"),
        user_usec: g("user_usec"),
        system_usec: g("system_usec"),
        nr_periods: g("nr_periods"),
        nr_throttled: g("nr_throttled"),
        throttled_usec: g("throttled_usec"),
        nr_bursts: g("nr_bursts"),
        burst_usec: g("burst_usec"),
    }
}

/// memory.events.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MemoryEvents {
    pub low: u64,
    pub high: u64,
    pub max: u64,
    pub oom: u64,
    pub oom_kill: u64,
    pub oom_group_kill: u64,
}

/// Single values are `u64::MAX` for "max" and 0 when the file is absent.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Memory {
    /// memory.stat, every key.
    pub stat: BTreeMap<String, u64>,
    pub current: u64,
    pub max: u64,
    pub peak: u64,
    pub swap_current: u64,
    /// memory.swap.max; `None` without swap accounting (no such file).
    pub swap_max: Option<u64>,
    pub swap_peak: u64,
    pub events: MemoryEvents,
}

pub fn memory(dir: &Path) -> Memory {
    let ev = file::flat_keyed(dir, "memory.events");
    let g = |k: &str| file::get(&ev, k);
    Memory {
        stat: file::flat_keyed(dir, "memory.stat"),
        current: file::value(dir, "memory.current"),
        max: file::value(dir, "memory.max"),
        peak: file::value(dir, "memory.peak"),
        swap_current: file::value(dir, "memory.swap.current"),
        swap_max: dir.join("memory.swap.max").exists().then(|| file::value(dir, "memory.swap.max")),
        swap_peak: file::value(dir, "memory.swap.peak"),
        events: MemoryEvents {
            low: g("low"),
            high: g("high"),
            max: g("max"),
            oom: g("oom"),
            oom_kill: g("oom_kill"),
            oom_group_kill: g("oom_group_kill"),
        },
    }
}

/// One device of io.stat; a key the line does not have (or not as a number) is `None`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IoEntry {
    pub major: u64,
    pub minor: u64,
    pub rbytes: Option<u64>,
    pub wbytes: Option<u64>,
    pub rios: Option<u64>,
    pub wios: Option<u64>,
}

/// io.stat: "MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=.. dbytes=.. dios=..", one line per device.
pub fn io_stat(text: &str) -> Vec<IoEntry> {
    nested_keyed_lines(
        text,
        |dev| parse::device(dev).map(|(major, minor)| IoEntry { major, minor, ..Default::default() }),
        |e, k, v| {
            let slot = match k {
                "rbytes" => &mut e.rbytes,
                "wbytes" => &mut e.wbytes,
                "rios" => &mut e.rios,
                "wios" => &mut e.wios,
                _ => return,
            };
            *slot = v.parse().ok();
        },
    )
}

/// The lines of a nested-keyed file: `first` makes an entry of a line's first word (or skips
/// the line), `set` gives it each `key=value` after it.
fn nested_keyed_lines<T>(text: &str, first: impl Fn(&str) -> Option<T>, set: impl Fn(&mut T, &str, &str)) -> Vec<T> {
    text.lines()
        .filter_map(|line| {
            let (word, values) = parse::nested_keyed(line)?;
            let mut e = first(word)?;
            for (k, v) in values {
                set(&mut e, k, v);
            }
            Some(e)
        })
        .collect()
}

pub fn io(dir: &Path) -> Vec<IoEntry> {
    file::text(dir, "io.stat").map(|t| io_stat(&t)).unwrap_or_default()
}

/// One device of rdma.current or rdma.max; "max" is `u32::MAX`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RdmaEntry {
    pub device: String,
    pub hca_handles: u32,
    pub hca_objects: u32,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rdma {
    pub current: Vec<RdmaEntry>,
    pub max: Vec<RdmaEntry>,
}

/// rdma.current / rdma.max: "DEVICE hca_handle=N hca_object=N".
pub fn rdma_entries(text: &str) -> Vec<RdmaEntry> {
    nested_keyed_lines(
        text,
        |device| Some(RdmaEntry { device: device.to_string(), ..Default::default() }),
        |e, k, v| {
            let v = match parse::value(v) {
                Some(u64::MAX) => u32::MAX,
                Some(n) => u32::try_from(n).unwrap_or(0),
                None => 0,
            };
            match k {
                "hca_handle" => e.hca_handles = v,
                "hca_object" => e.hca_objects = v,
                _ => {}
            }
        },
    )
}

pub fn rdma(dir: &Path) -> Rdma {
    let read = |f: &str| rdma_entries(&file::text(dir, f).unwrap_or_default());
    Rdma { current: read("rdma.current"), max: read("rdma.max") }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Hugetlb {
    pub current: u64,
    /// `u64::MAX` for "max".
    pub max: u64,
    /// The "max" count of hugetlb.<size>.events: allocations refused at the limit.
    pub failcnt: u64,
}

/// One entry per huge page size the cgroup has files for (`hugetlb.<size>.current`: there
/// for every size of the host once the hugetlb controller is enabled).
pub fn hugetlb(dir: &Path) -> BTreeMap<String, Hugetlb> {
    let sizes: Vec<String> = std::fs::read_dir(dir)
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
    file::per_page_size(sizes, |f| Hugetlb {
        current: file::value(dir, &f("current")),
        max: file::value(dir, &f("max")),
        failcnt: file::get(&file::flat_keyed(dir, &f("events")), "max"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_stat_lines() {
        let v = io_stat("8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\nbad line\n");
        assert_eq!(
            v,
            [IoEntry { major: 8, minor: 0, rbytes: Some(4096), wbytes: Some(8192), rios: Some(1), wios: Some(2) }]
        );
    }

    #[test]
    fn rdma_lines() {
        let v = rdma_entries("mlx5_0 hca_handle=2 hca_object=max\n");
        assert_eq!(v, [RdmaEntry { device: "mlx5_0".into(), hca_handles: 2, hca_objects: u32::MAX }]);
    }

    #[test]
    fn memory_and_hugetlb_files() {
        let d = tempfile::tempdir().unwrap();
        for (f, t) in [
            ("memory.current", "442368\n"),
            ("memory.max", "max\n"),
            ("memory.events", "low 0\nhigh 0\nmax 37\noom 1\noom_kill 1\noom_group_kill 0\n"),
            ("hugetlb.2MB.current", "0\n"),
            ("hugetlb.2MB.max", "max\n"),
            ("hugetlb.2MB.events", "max 3\n"),
            ("hugetlb.2MB.rsvd.current", "0\n"),
        ] {
            std::fs::write(d.path().join(f), t).unwrap();
        }
        let m = memory(d.path());
        assert_eq!((m.current, m.max, m.swap_max), (442368, u64::MAX, None));
        assert_eq!((m.events.max, m.events.oom_kill), (37, 1));
        let h = hugetlb(d.path());
        assert_eq!(h.len(), 1);
        assert_eq!(h["2MB"], Hugetlb { current: 0, max: u64::MAX, failcnt: 3 });
    }
}
