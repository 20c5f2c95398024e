//! The pure check of `linux.resources` (B16, B17): everything the drivers
//! would reject is rejected here first, so `apply` never half-applies a
//! configuration that was invalid from the start. Absent and 0 mean "leave
//! alone", as in runc.

use oci_spec::runtime::LinuxResources;

use super::devices;
use super::CgroupError;

const SHARES_MIN: u64 = 2;
const SHARES_MAX: u64 = 262_144;
/// The kernel refuses CFS periods outside 1 ms..1 s and quotas below 1 ms.
const CFS_MIN_US: u64 = 1000;
const CFS_PERIOD_MAX_US: u64 = 1_000_000;
/// Largest NR_CPUS / MAX_NUMNODES a kernel can be built with.
const MAX_CPUS: u32 = 8192;
const MAX_NODES: u32 = 1024;
const PAGE: i64 = 4096;

fn bad(field: &str, reason: impl Into<String>) -> CgroupError {
    CgroupError::invalid(format!("linux.resources.{field}"), reason)
}

/// Checks a cpuset list such as "0-3,7".
pub(crate) fn check_cpuset_list(field: &str, s: &str, max: u32) -> Result<(), CgroupError> {
    for part in s.trim().split(',') {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let parse = |x: &str| x.trim().parse::<u32>().ok();
        match (parse(a), parse(b)) {
            (Some(a), Some(b)) if a <= b && b < max => {}
            (Some(_), Some(b)) if b >= max => {
                return Err(bad(field, format!("{s:?}: {b} is beyond the largest possible id {}", max - 1)))
            }
            _ => return Err(bad(field, format!("{s:?} is not a list like \"0-3,5\""))),
        }
    }
    Ok(())
}

/// "2MB", "1GB", "64KB": a power of two with a unit, as the hugetlb files name them.
pub(crate) fn check_page_size(field: &str, s: &str) -> Result<(), CgroupError> {
    let num = s.strip_suffix("KB").or_else(|| s.strip_suffix("MB")).or_else(|| s.strip_suffix("GB"));
    match num.and_then(|n| n.parse::<u64>().ok()) {
        Some(n) if n > 0 && n.is_power_of_two() => Ok(()),
        _ => Err(bad(field, format!("{s:?} is not a huge page size (a power of two with KB, MB or GB)"))),
    }
}

/// Keys of `unified` are file names in the container's cgroup directory.
pub(crate) fn check_unified_key(k: &str) -> Result<(), CgroupError> {
    if k.is_empty() || k.contains('/') || k.contains('\0') || k == "." || k == ".." || !k.contains('.') {
        return Err(bad(&format!("unified.{k:?}"), "not a cgroup interface file name"));
    }
    Ok(())
}

pub(crate) fn validate(r: &LinuxResources, v2: bool) -> Result<(), CgroupError> {
    let version = if v2 { "cgroup v2" } else { "cgroup v1" };
    if let Some(m) = r.memory() {
        if let Some(l) = m.limit() {
            if l < -1 {
                return Err(bad("memory.limit", format!("{l}: must be -1 (unlimited) or positive")));
            }
            if l > 0 && l < PAGE {
                return Err(bad("memory.limit", format!("{l} bytes is less than one page ({PAGE})")));
            }
        }
        if let Some(v) = m.reservation() {
            if v < -1 {
                return Err(bad("memory.reservation", format!("{v}: must be -1 (unlimited) or positive")));
            }
        }
        if let Some(s) = m.swap() {
            if s < -1 {
                return Err(bad("memory.swap", format!("{s}: must be -1 (unlimited) or positive")));
            }
            let limit = m.limit().unwrap_or(0);
            if s > 0 && limit > 0 && s < limit {
                return Err(bad(
                    "memory.swap",
                    format!("{s} is less than memory.limit {limit} (swap is the memory+swap total)"),
                ));
            }
            if v2 && s > 0 && limit <= 0 {
                return Err(bad("memory.swap", "cannot limit swap without a memory.limit on cgroup v2"));
            }
        }
        if let Some(s) = m.swappiness() {
            if v2 {
                return Err(bad("memory.swappiness", "not supported on cgroup v2"));
            }
            if s > 100 {
                return Err(bad("memory.swappiness", format!("{s}: must be 0..100")));
            }
        }
        if v2 && m.disable_oom_killer() == Some(true) {
            return Err(bad("memory.disableOOMKiller", "not supported on cgroup v2"));
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(s) = c.shares() {
            if s != 0 && !(SHARES_MIN..=SHARES_MAX).contains(&s) {
                return Err(bad("cpu.shares", format!("{s}: must be {SHARES_MIN}..{SHARES_MAX}")));
            }
        }
        if let Some(q) = c.quota() {
            if q != 0 && q != -1 && (q < 0 || (q as u64) < CFS_MIN_US) {
                return Err(bad("cpu.quota", format!("{q}: must be -1 (unlimited) or at least {CFS_MIN_US} µs")));
            }
        }
        if let Some(p) = c.period() {
            if p != 0 && !(CFS_MIN_US..=CFS_PERIOD_MAX_US).contains(&p) {
                return Err(bad("cpu.period", format!("{p}: must be {CFS_MIN_US}..{CFS_PERIOD_MAX_US} µs")));
            }
        }
        if let Some(i) = c.idle() {
            if i != 0 && i != 1 {
                return Err(bad("cpu.idle", format!("{i}: must be 0 or 1")));
            }
        }
        if v2 && c.realtime_runtime().is_some_and(|v| v != 0) {
            return Err(bad("cpu.realtimeRuntime", "not supported on cgroup v2"));
        }
        if v2 && c.realtime_period().is_some_and(|v| v != 0) {
            return Err(bad("cpu.realtimePeriod", "not supported on cgroup v2"));
        }
        if let Some(rt) = c.realtime_runtime() {
            if rt < -1 {
                return Err(bad("cpu.realtimeRuntime", format!("{rt}: must be -1 or positive")));
            }
        }
        if let Some(s) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
            check_cpuset_list("cpu.cpus", s, MAX_CPUS)?;
        }
        if let Some(s) = c.mems().as_deref().filter(|s| !s.is_empty()) {
            check_cpuset_list("cpu.mems", s, MAX_NODES)?;
        }
    }
    if let Some(d) = r.devices() {
        devices::parse_rules(d)?;
    }
    if let Some(b) = r.block_io() {
        let weight_ok = |w: u16| w == 0 || (10..=1000).contains(&w);
        if let Some(w) = b.weight() {
            if !weight_ok(w) {
                return Err(bad("blockIO.weight", format!("{w}: must be 10..1000")));
            }
        }
        if let Some(w) = b.leaf_weight() {
            if w != 0 && (v2 || !weight_ok(w)) {
                return Err(bad(
                    "blockIO.leafWeight",
                    format!("{w}: not supported ({version}; needs the CFQ scheduler)"),
                ));
            }
        }
        for (i, wd) in b.weight_device().iter().flatten().enumerate() {
            if let Some(w) = wd.weight() {
                if !weight_ok(w) {
                    return Err(bad(&format!("blockIO.weightDevice[{i}].weight"), format!("{w}: must be 10..1000")));
                }
            }
            if wd.leaf_weight().is_some_and(|w| w != 0) {
                return Err(bad(
                    &format!("blockIO.weightDevice[{i}].leafWeight"),
                    "not supported (needs the CFQ scheduler)",
                ));
            }
            if wd.major() < 0 || wd.minor() < 0 {
                return Err(bad(&format!("blockIO.weightDevice[{i}]"), "negative device number"));
            }
        }
        for (name, list) in [
            ("throttleReadBpsDevice", b.throttle_read_bps_device()),
            ("throttleWriteBpsDevice", b.throttle_write_bps_device()),
            ("throttleReadIOPSDevice", b.throttle_read_iops_device()),
            ("throttleWriteIOPSDevice", b.throttle_write_iops_device()),
        ] {
            for (i, t) in list.iter().flatten().enumerate() {
                if t.major() < 0 || t.minor() < 0 {
                    return Err(bad(&format!("blockIO.{name}[{i}]"), "negative device number"));
                }
            }
        }
    }
    for (i, h) in r.hugepage_limits().iter().flatten().enumerate() {
        check_page_size(&format!("hugepageLimits[{i}].pageSize"), h.page_size())?;
        if h.limit() < -1 {
            return Err(bad(&format!("hugepageLimits[{i}].limit"), format!("{}: must be -1 or positive", h.limit())));
        }
    }
    if let Some(n) = r.network() {
        let used = n.class_id().is_some_and(|c| c != 0) || n.priorities().as_ref().is_some_and(|p| !p.is_empty());
        if used && v2 {
            return Err(bad("network", "net_cls/net_prio do not exist on cgroup v2"));
        }
    }
    for (dev, _) in r.rdma().iter().flatten() {
        if dev.is_empty() || dev.contains(char::is_whitespace) {
            return Err(bad(&format!("rdma.{dev:?}"), "not a device name"));
        }
    }
    if let Some(u) = r.unified() {
        if !u.is_empty() && !v2 {
            return Err(bad(
                "unified",
                "invalid configuration: cgroup v2 settings cannot be used on this cgroup v1 (or hybrid) host",
            ));
        }
        for (k, v) in u {
            check_unified_key(k)?;
            if v.contains('\0') {
                return Err(bad(&format!("unified.{k:?}"), "value contains a NUL byte"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    fn err(json: &str, v2: bool) -> String {
        validate(&res(json), v2).unwrap_err().to_string()
    }

    #[test]
    fn docker_defaults_are_accepted() {
        let r = r#"{"devices":[{"allow":false,"access":"rwm"}],"memory":{},"cpu":{"shares":0},"blockIO":{"weight":0},"pids":{"limit":-1}}"#;
        validate(&res(r), false).unwrap();
        validate(&res(r), true).unwrap();
    }

    #[test]
    fn errors_name_the_field() {
        assert!(err(r#"{"unified":{"memory.max":"1M"}}"#, false).starts_with("linux.resources.unified:"));
        assert!(err(r#"{"memory":{"limit":1}}"#, false).starts_with("linux.resources.memory.limit:"));
        assert!(err(r#"{"memory":{"limit":-2}}"#, false).starts_with("linux.resources.memory.limit:"));
        assert!(err(r#"{"memory":{"limit":10000,"swap":5000}}"#, false).starts_with("linux.resources.memory.swap:"));
        assert!(err(r#"{"memory":{"swap":5000}}"#, true).starts_with("linux.resources.memory.swap:"));
        assert!(err(r#"{"memory":{"swappiness":101}}"#, false).starts_with("linux.resources.memory.swappiness:"));
        assert!(err(r#"{"memory":{"swappiness":10}}"#, true).starts_with("linux.resources.memory.swappiness:"));
        assert!(err(r#"{"memory":{"disableOOMKiller":true}}"#, true)
            .starts_with("linux.resources.memory.disableOOMKiller:"));
        assert!(err(r#"{"cpu":{"shares":18446744073709551615}}"#, false).starts_with("linux.resources.cpu.shares:"));
        assert!(err(r#"{"cpu":{"shares":1}}"#, false).starts_with("linux.resources.cpu.shares:"));
        assert!(err(r#"{"cpu":{"quota":10}}"#, false).starts_with("linux.resources.cpu.quota:"));
        assert!(err(r#"{"cpu":{"period":10}}"#, false).starts_with("linux.resources.cpu.period:"));
        assert!(err(r#"{"cpu":{"cpus":"0-99999"}}"#, false).starts_with("linux.resources.cpu.cpus:"));
        assert!(err(r#"{"cpu":{"cpus":"3-1"}}"#, false).starts_with("linux.resources.cpu.cpus:"));
        assert!(err(r#"{"cpu":{"mems":"x"}}"#, false).starts_with("linux.resources.cpu.mems:"));
        assert!(err(r#"{"cpu":{"realtimeRuntime":100}}"#, true).starts_with("linux.resources.cpu.realtimeRuntime:"));
        assert!(err(r#"{"cpu":{"idle":5}}"#, true).starts_with("linux.resources.cpu.idle:"));
        assert!(err(r#"{"blockIO":{"weight":5}}"#, false).starts_with("linux.resources.blockIO.weight:"));
        assert!(err(r#"{"hugepageLimits":[{"pageSize":"3MB","limit":1}]}"#, false)
            .starts_with("linux.resources.hugepageLimits[0].pageSize:"));
        assert!(err(r#"{"network":{"classID":5}}"#, true).starts_with("linux.resources.network:"));
        assert!(err(r#"{"unified":{"../x":"1"}}"#, true).starts_with("linux.resources.unified."));
        assert!(err(r#"{"devices":[{"allow":true,"major":1099511627776}]}"#, true)
            .starts_with("linux.resources.devices[0].major:"));
    }

    #[test]
    fn valid_values_pass() {
        let r = r#"{"memory":{"limit":104857600,"swap":209715200,"reservation":1000000,"swappiness":60,"kernel":5},
                   "cpu":{"shares":1024,"quota":50000,"period":100000,"cpus":"0-1","mems":"0","idle":1},
                   "hugepageLimits":[{"pageSize":"2MB","limit":0}],
                   "blockIO":{"weight":500}}"#;
        validate(&res(r), false).unwrap();
        let r2 = r#"{"memory":{"limit":104857600,"swap":209715200},"cpu":{"shares":1024,"quota":-1},"unified":{"memory.high":"50M"}}"#;
        validate(&res(r2), true).unwrap();
        check_cpuset_list("cpu.cpus", "0,2-3,7", MAX_CPUS).unwrap();
    }
}
