//! `update`: changes a live container's linux.resources. The change (from runc's flags or
//! a LinuxResources JSON) is merged into the resources create applied, checked as a
//! whole, written to the cgroup, and kept in state.json so later updates start from it.

use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources, LinuxThrottleDevice, LinuxWeightDevice,
    LinuxWeightDeviceBuilder,
};

use crate::error::{Error, Result};
use crate::state::{Status, Store};

/// runc's `update` flags, as typed (values are parsed by `resources_from_flags`).
#[derive(Debug, Default, Clone)]
pub struct Flags {
    pub blkio_weight: Option<String>,
    pub cpu_period: Option<String>,
    pub cpu_quota: Option<String>,
    pub cpu_share: Option<String>,
    pub cpu_burst: Option<String>,
    pub cpu_idle: Option<String>,
    pub cpu_rt_period: Option<String>,
    pub cpu_rt_runtime: Option<String>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub memory: Option<String>,
    pub memory_reservation: Option<String>,
    pub memory_swap: Option<String>,
    pub kernel_memory: Option<String>,
    pub kernel_memory_tcp: Option<String>,
    pub pids_limit: Option<String>,
    pub l3_cache_schema: Option<String>,
    pub mem_bw_schema: Option<String>,
}

fn invalid(flag: &str, value: &str, why: impl std::fmt::Display) -> Error {
    Error::Usage(format!("invalid value for {flag}: {value:?}: {why}"))
}

fn num<T: std::str::FromStr>(flag: &str, v: &Option<String>) -> Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    v.as_deref().map(|s| s.trim().parse::<T>().map_err(|e| invalid(flag, s, e))).transpose()
}

/// A size as runc's memory flags take it (docker/go-units RAMInBytes): "-1", "1024",
/// "64m", "1.5g", "512MiB"; binary units.
pub fn parse_size(s: &str) -> std::result::Result<i64, String> {
    let t = s.trim();
    if t == "-1" {
        return Ok(-1);
    }
    let num_end = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (n, unit) = t.split_at(num_end);
    let n: f64 = n.parse().map_err(|_| format!("invalid size: '{s}'"))?;
    let unit = unit.trim_start_matches(' ').to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024f64.powi(2),
        "g" => 1024f64.powi(3),
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return Err(format!("invalid size: '{s}'")),
    };
    let v = n * mult;
    if !v.is_finite() || v > i64::MAX as f64 {
        return Err(format!("invalid size: '{s}'"));
    }
    Ok(v as i64)
}

fn size(flag: &str, v: &Option<String>) -> Result<Option<i64>> {
    v.as_deref().map(|s| parse_size(s).map_err(|e| Error::Usage(format!("invalid value for {flag}: {e}")))).transpose()
}

/// The change the flags ask for: only the flags given are set.
pub fn resources_from_flags(f: &Flags) -> Result<LinuxResources> {
    if f.l3_cache_schema.is_some() {
        return Err(Error::Usage(
            "Intel RDT/CAT: l3 cache schema is not enabled (linux.intelRdt is not supported)".into(),
        ));
    }
    if f.mem_bw_schema.is_some() {
        return Err(Error::Usage(
            "Intel RDT/MBA: memory bandwidth schema is not enabled (linux.intelRdt is not supported)".into(),
        ));
    }
    let mut r = LinuxResources::default();
    let mut mem = LinuxMemory::default();
    mem.set_limit(size("memory", &f.memory)?);
    mem.set_reservation(size("memory-reservation", &f.memory_reservation)?);
    mem.set_swap(size("memory-swap", &f.memory_swap)?);
    mem.set_kernel(size("kernel-memory", &f.kernel_memory)?);
    mem.set_kernel_tcp(size("kernel-memory-tcp", &f.kernel_memory_tcp)?);
    r.set_memory(Some(mem));
    let mut cpu = LinuxCpu::default();
    cpu.set_shares(num("cpu-share", &f.cpu_share)?);
    cpu.set_quota(num("cpu-quota", &f.cpu_quota)?);
    cpu.set_period(num("cpu-period", &f.cpu_period)?);
    cpu.set_burst(num("cpu-burst", &f.cpu_burst)?);
    cpu.set_idle(num("cpu-idle", &f.cpu_idle)?);
    cpu.set_realtime_period(num("cpu-rt-period", &f.cpu_rt_period)?);
    cpu.set_realtime_runtime(num("cpu-rt-runtime", &f.cpu_rt_runtime)?);
    cpu.set_cpus(f.cpuset_cpus.clone());
    cpu.set_mems(f.cpuset_mems.clone());
    r.set_cpu(Some(cpu));
    if let Some(w) = num::<u16>("blkio-weight", &f.blkio_weight)? {
        let mut b = LinuxBlockIo::default();
        b.set_weight(Some(w));
        r.set_block_io(Some(b));
    }
    if let Some(l) = num::<i64>("pids-limit", &f.pids_limit)? {
        let mut p = LinuxPids::default();
        p.set_limit(l);
        r.set_pids(Some(p));
    }
    Ok(r)
}

/// `--resources` JSON (a runtime-spec LinuxResources; fields it does not name stay).
pub fn resources_from_json(bytes: &[u8]) -> Result<LinuxResources> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        Error::Usage(format!("--resources: {}: {}", if path == "." { "JSON".into() } else { path }, e.inner()))
    })
}

/// `cur` with what `change` sets, as runc's update merges: memory, cpu, blockIO, pids and
/// unified. A device in a blockIO list of `change` replaces the values of the same device
/// (its last entry, if listed twice) or is added. Kernel memory is ignored (with a
/// warning, like runc).
pub fn merge(cur: &LinuxResources, change: &LinuxResources) -> LinuxResources {
    let mut out = cur.clone();
    if let Some(m) = change.memory() {
        if m.kernel().is_some() || m.kernel_tcp().is_some() {
            crate::log::warn("Kernel memory settings are ignored and will be removed");
        }
        let mut mem = (*out.memory()).unwrap_or_default();
        if m.limit().is_some() {
            mem.set_limit(m.limit());
        }
        if m.reservation().is_some() {
            mem.set_reservation(m.reservation());
        }
        if m.swap().is_some() {
            mem.set_swap(m.swap());
        } else if m.limit() == Some(-1) {
            // Unlimited memory with the old swap limit would be refused.
            mem.set_swap(Some(-1));
        }
        if m.swappiness().is_some() {
            mem.set_swappiness(m.swappiness());
        }
        if m.check_before_update().is_some() {
            mem.set_check_before_update(m.check_before_update());
        }
        mem.set_kernel(None);
        mem.set_kernel_tcp(None);
        out.set_memory(Some(mem));
    }
    if let Some(c) = change.cpu() {
        let mut cpu = out.cpu().clone().unwrap_or_default();
        macro_rules! take {
            ($get:ident, $set:ident) => {
                if c.$get().is_some() {
                    cpu.$set(c.$get().clone());
                }
            };
        }
        take!(shares, set_shares);
        take!(quota, set_quota);
        take!(period, set_period);
        take!(burst, set_burst);
        take!(realtime_runtime, set_realtime_runtime);
        take!(realtime_period, set_realtime_period);
        take!(cpus, set_cpus);
        take!(mems, set_mems);
        take!(idle, set_idle);
        out.set_cpu(Some(cpu));
    }
    if let Some(c) = change.block_io() {
        let mut b = out.block_io().clone().unwrap_or_default();
        if c.weight().is_some() {
            b.set_weight(c.weight());
        }
        if c.leaf_weight().is_some() {
            b.set_leaf_weight(c.leaf_weight());
        }
        if let Some(changed) = c.weight_device() {
            let mut devices = b.weight_device().clone().unwrap_or_default();
            for wd in changed {
                match devices.iter_mut().rev().find(|d| (d.major(), d.minor()) == (wd.major(), wd.minor())) {
                    Some(d) => *d = weight_device(wd, d),
                    None => devices.push(*wd),
                }
            }
            b.set_weight_device(Some(devices));
        }
        b.set_throttle_read_bps_device(upsert_throttle(b.throttle_read_bps_device(), c.throttle_read_bps_device()));
        b.set_throttle_write_bps_device(upsert_throttle(b.throttle_write_bps_device(), c.throttle_write_bps_device()));
        b.set_throttle_read_iops_device(upsert_throttle(b.throttle_read_iops_device(), c.throttle_read_iops_device()));
        b.set_throttle_write_iops_device(upsert_throttle(
            b.throttle_write_iops_device(),
            c.throttle_write_iops_device(),
        ));
        out.set_block_io(Some(b));
    }
    if let Some(p) = change.pids() {
        out.set_pids(Some(*p));
    }
    if let Some(u) = change.unified() {
        let mut all = out.unified().clone().unwrap_or_default();
        all.extend(u.clone());
        out.set_unified(Some(all));
    }
    out.set_devices(None);
    out
}

/// The device `change` names with its weights, or `old`'s where it names none.
fn weight_device(change: &LinuxWeightDevice, old: &LinuxWeightDevice) -> LinuxWeightDevice {
    let mut b = LinuxWeightDeviceBuilder::default().major(change.major()).minor(change.minor());
    if let Some(w) = change.weight().or(old.weight()) {
        b = b.weight(w);
    }
    if let Some(w) = change.leaf_weight().or(old.leaf_weight()) {
        b = b.leaf_weight(w);
    }
    // Every field has a value or is optional: the builder cannot fail.
    b.build().unwrap_or(*change)
}

/// `cur` with each device of `change` at its rate: the last entry of the same device is
/// updated, a new device is added.
fn upsert_throttle(
    cur: &Option<Vec<LinuxThrottleDevice>>,
    change: &Option<Vec<LinuxThrottleDevice>>,
) -> Option<Vec<LinuxThrottleDevice>> {
    let Some(change) = change else { return cur.clone() };
    let mut devices = cur.clone().unwrap_or_default();
    for td in change {
        match devices.iter_mut().rev().find(|d| (d.major(), d.minor()) == (td.major(), td.minor())) {
            Some(d) => *d = *td,
            None => devices.push(*td),
        }
    }
    Some(devices)
}

/// Applies `change` to the running (or created, or paused) container `id`. Nothing is
/// written when the merged resources are invalid; when the kernel refuses a value the
/// previous resources are written back.
pub fn update(store: &Store, id: &str, change: &LinuxResources) -> Result<()> {
    let _lock = store.lock(id)?;
    let mut rec = store.load(id)?;
    let status = store.status(&rec);
    if matches!(status, Status::Stopped | Status::Creating) {
        return Err(Error::WrongState { id: id.into(), status, msg: "container not running" });
    }
    let cg = rec.cgroup_manager();
    let old = rec.resources.clone().unwrap_or_default();
    let new = merge(&old, change);
    cg.validate(&new)?;
    if let Err(e) = cg.apply(&new) {
        if let Err(back) = cg.apply(&old) {
            crate::log::warn(&format!("update {id}: restoring the previous resources failed: {back}"));
        }
        return Err(e.into());
    }
    rec.resources = Some(new);
    store.save(&rec)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_go_units() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("64m"), Ok(64 << 20));
        assert_eq!(parse_size("64MB"), Ok(64 << 20));
        assert_eq!(parse_size("1.5g"), Ok(3 << 29));
        assert_eq!(parse_size("2KiB"), Ok(2048));
        assert_eq!(parse_size("-1"), Ok(-1));
        assert_eq!(parse_size("1x"), Err("invalid size: '1x'".into()));
    }

    #[test]
    fn merge_keeps_what_the_change_does_not_name() {
        let cur: LinuxResources = serde_json::from_str(
            r#"{"memory":{"limit":1000000,"reservation":5000},"cpu":{"shares":512},"pids":{"limit":10}}"#,
        )
        .expect("cur");
        let change = resources_from_flags(&Flags { memory: Some("2m".into()), ..Default::default() }).expect("flags");
        let m = merge(&cur, &change);
        assert_eq!(m.memory().as_ref().and_then(|m| m.limit()), Some(2 << 20));
        assert_eq!(m.memory().as_ref().and_then(|m| m.reservation()), Some(5000));
        assert_eq!(m.cpu().as_ref().and_then(|c| c.shares()), Some(512));
        assert_eq!(m.pids().as_ref().map(|p| p.limit()), Some(10));
    }

    #[test]
    fn block_io_devices_are_updated_in_place_or_added() {
        let cur: LinuxResources = serde_json::from_str(
            r#"{"blockIO":{"weight":300,"weightDevice":[{"major":8,"minor":0,"weight":100,"leafWeight":50}],
                "throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1},{"major":8,"minor":0,"rate":2}]}}"#,
        )
        .expect("cur");
        let change: LinuxResources = serde_json::from_str(
            r#"{"blockIO":{"weightDevice":[{"major":8,"minor":0,"weight":200},{"major":8,"minor":16,"weight":10}],
                "throttleReadBpsDevice":[{"major":8,"minor":0,"rate":30},{"major":8,"minor":16,"rate":40}],
                "throttleWriteIOPSDevice":[{"major":8,"minor":0,"rate":900}]}}"#,
        )
        .expect("change");
        let b = merge(&cur, &change).block_io().clone().expect("blockIO");
        assert_eq!(b.weight(), Some(300), "the weight the change does not name stays");
        let wd: Vec<_> =
            b.weight_device().iter().flatten().map(|d| (d.major(), d.minor(), d.weight(), d.leaf_weight())).collect();
        assert_eq!(wd, [(8, 0, Some(200), Some(50)), (8, 16, Some(10), None)]);
        let rates = |l: &Option<Vec<LinuxThrottleDevice>>| -> Vec<(i64, i64, u64)> {
            l.iter().flatten().map(|d| (d.major(), d.minor(), d.rate())).collect()
        };
        // The last entry of a device listed twice is the one updated (it is written last).
        assert_eq!(rates(b.throttle_read_bps_device()), [(8, 0, 1), (8, 0, 30), (8, 16, 40)]);
        assert_eq!(rates(b.throttle_write_iops_device()), [(8, 0, 900)]);
        assert_eq!(rates(b.throttle_write_bps_device()), []);
    }

    #[test]
    fn unlimited_memory_lifts_swap_too() {
        let cur: LinuxResources = serde_json::from_str(r#"{"memory":{"limit":1000000,"swap":2000000}}"#).expect("cur");
        let change: LinuxResources = serde_json::from_str(r#"{"memory":{"limit":-1}}"#).expect("change");
        assert_eq!(merge(&cur, &change).memory().as_ref().and_then(|m| m.swap()), Some(-1));
    }

    #[test]
    fn bad_flag_values_name_the_flag() {
        let e = resources_from_flags(&Flags { cpu_share: Some("abc".into()), ..Default::default() }).expect_err("abc");
        assert!(e.to_string().starts_with("invalid value for cpu-share:"), "{e}");
        let e = resources_from_flags(&Flags { memory: Some("1x".into()), ..Default::default() }).expect_err("1x");
        assert_eq!(e.to_string(), "invalid value for memory: invalid size: '1x'");
    }
}
