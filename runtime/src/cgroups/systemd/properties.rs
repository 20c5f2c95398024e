//! linux.resources as systemd unit properties, in runc's mapping (libcontainer's
//! systemd driver, cgroup v2): what systemd keeps in the unit survives `systemctl
//! daemon-reload`, which re-applies a unit's properties to its cgroup. Pure: the D-Bus
//! encoding is `dbus.rs`'s. What has no property here is written to the cgroup files
//! afterwards by the v2 driver's code (so are these, as runc does).

use oci_spec::runtime::LinuxResources;

use super::super::devices::{self, DevKind, DeviceRule};
use super::super::{convert, CgroupError};

/// systemd's "infinity" (USEC_INFINITY, CGROUP_LIMIT_MAX): u64::MAX.
pub(crate) const INFINITY: u64 = u64::MAX;
/// The CFS period the kernel and systemd assume when none is given (100 ms).
const DEFAULT_CPU_PERIOD_USEC: u64 = 100_000;

/// A property value, in the D-Bus types systemd expects for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    /// s
    Str(String),
    /// b
    Bool(bool),
    /// t
    U64(u64),
    /// au
    U32s(Vec<u32>),
    /// ay
    Bytes(Vec<u8>),
    /// as
    Strs(Vec<String>),
    /// a(ss): DeviceAllow's (device, access) pairs.
    Pairs(Vec<(String, String)>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Property {
    pub name: &'static str,
    pub value: Value,
}

fn prop(name: &'static str, value: Value) -> Property {
    Property { name, value }
}

/// The properties a new transient unit starts with, resources aside: runc's set (a
/// description, the slice (a scope) or the slice it wants (a slice), delegation, the
/// process, accounting on, no default dependencies).
pub(crate) fn unit(description: String, slice: &str, is_slice: bool, pid: Option<i32>) -> Vec<Property> {
    let mut p = vec![prop("Description", Value::Str(description))];
    if is_slice {
        p.push(prop("Wants", Value::Strs(vec![slice.to_string()])));
    } else {
        p.push(prop("Slice", Value::Str(slice.to_string())));
        // The container manages its own cgroup below the scope (its cgroup namespace root).
        p.push(prop("Delegate", Value::Bool(true)));
    }
    if let Some(pid) = pid.and_then(|p| u32::try_from(p).ok()) {
        p.push(prop("PIDs", Value::U32s(vec![pid])));
    }
    // As runc: accounting on gives the same files as the cgroupfs driver.
    for a in ["MemoryAccounting", "CPUAccounting", "IOAccounting", "TasksAccounting"] {
        p.push(prop(a, Value::Bool(true)));
    }
    // Otherwise the unit would be ordered after (and stopped with) basic targets.
    p.push(prop("DefaultDependencies", Value::Bool(false)));
    p
}

/// A v2 limit: 0 = not set, negative = unlimited.
fn limit(v: i64) -> Option<u64> {
    match v {
        0 => None,
        v if v < 0 => Some(INFINITY),
        v => Some(v as u64),
    }
}

/// linux.resources in runc's mapping. `device_group` names the device group of a char
/// or block major ("pts" for 136), from /proc/devices, for rules with a wildcard minor.
pub(crate) fn resources(
    r: &LinuxResources,
    device_group: &dyn Fn(DevKind, u32) -> Option<String>,
) -> Result<Vec<Property>, CgroupError> {
    let mut p = Vec::new();
    if let Some(list) = r.devices().as_ref().filter(|l| !l.is_empty()) {
        p.extend(device_properties(&devices::parse_rules(list)?, device_group));
    }
    if let Some(m) = r.memory() {
        let (lim, swap) = (m.limit().unwrap_or(0), m.swap().unwrap_or(0));
        if let Some(v) = limit(lim) {
            p.push(prop("MemoryMax", Value::U64(v)));
        }
        if let Some(v) = limit(m.reservation().unwrap_or(0)) {
            p.push(prop("MemoryLow", Value::U64(v)));
        }
        if let Some(v) = swap_max(swap, lim) {
            p.push(prop("MemorySwapMax", Value::U64(v)));
        }
    }
    if let Some(c) = r.cpu() {
        let w = convert::shares_to_weight(c.shares().unwrap_or(0));
        if w != 0 {
            p.push(prop("CPUWeight", Value::U64(w)));
        }
        p.extend(cpu_quota(c.quota().unwrap_or(0), c.period().unwrap_or(0)));
        if let Some(s) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
            p.push(prop("AllowedCPUs", Value::Bytes(bitmask("linux.resources.cpu.cpus", s)?)));
        }
        if let Some(s) = c.mems().as_deref().filter(|s| !s.is_empty()) {
            p.push(prop("AllowedMemoryNodes", Value::Bytes(bitmask("linux.resources.cpu.mems", s)?)));
        }
    }
    if let Some(pids) = r.pids() {
        // runc: a positive limit, or -1 (unlimited); 0 has no property (the file gets "1").
        match pids.limit() {
            l if l > 0 => p.push(prop("TasksMax", Value::U64(l as u64))),
            l if l < 0 => p.push(prop("TasksMax", Value::U64(INFINITY))),
            _ => {}
        }
    }
    if let Some(w) = r.block_io().as_ref().and_then(|b| b.weight()).filter(|w| *w != 0) {
        p.push(prop("IOWeight", Value::U64(convert::blkio_to_io_weight(w))));
    }
    Ok(p)
}

/// MemorySwapMax from OCI's memory+swap total, as `convert::v2_swap_max` for the file.
fn swap_max(swap: i64, lim: i64) -> Option<u64> {
    if lim == -1 && swap == 0 {
        return Some(INFINITY);
    }
    match swap {
        0 => None,
        s if s < 0 => Some(INFINITY),
        s if lim > 0 => Some(s.saturating_sub(lim).max(0) as u64),
        _ => None,
    }
}

/// runc's addCpuQuota: the period as is; the quota as microseconds per CPU second, rounded
/// up to a whole percent (systemd keeps it as a percentage, and a child cgroup must still
/// be able to set the cfs quota asked for); a quota of 0 or less is unlimited.
pub(crate) fn cpu_quota(quota: i64, period: u64) -> Vec<Property> {
    let mut p = Vec::new();
    if period != 0 {
        p.push(prop("CPUQuotaPeriodUSec", Value::U64(period)));
    }
    if quota != 0 || period != 0 {
        let mut per_sec = INFINITY;
        if quota > 0 {
            let period = if period == 0 { DEFAULT_CPU_PERIOD_USEC } else { period };
            per_sec = (quota as u64).saturating_mul(1_000_000) / period;
            if !per_sec.is_multiple_of(10_000) {
                per_sec = (per_sec / 10_000 + 1) * 10_000;
            }
        }
        p.push(prop("CPUQuotaPerSecUSec", Value::U64(per_sec)));
    }
    p
}

/// A cpu or memory-node list ("0-3,7") as systemd's bitmask bytes: byte 0 holds 0..7,
/// lowest bit first.
pub(crate) fn bitmask(field: &str, list: &str) -> Result<Vec<u8>, CgroupError> {
    let bad = |why: String| CgroupError::invalid(field, format!("{list:?}: {why}"));
    let num = |s: &str| s.trim().parse::<usize>().map_err(|_| bad(format!("{s:?} is not a number")));
    let mut bytes = Vec::new();
    for part in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(part)?, num(part)?),
        };
        // The kernel's own limit (NR_CPUS, MAX_NUMNODES) is far below this.
        if lo > hi || hi >= 1 << 16 {
            return Err(bad(format!("bad range {part:?}")));
        }
        for i in lo..=hi {
            if bytes.len() <= i / 8 {
                bytes.resize(i / 8 + 1, 0);
            }
            bytes[i / 8] |= 1 << (i % 8);
        }
    }
    Ok(bytes)
}

/// DevicePolicy and DeviceAllow for the device rules, as runc builds them: systemd only
/// knows allow lists on top of "strict" (deny all). Rules that end in "allow everything"
/// give policy "auto"; a deny list on top of "allow everything" cannot be said, so the
/// unit denies all and the eBPF program berth attaches afterwards (which replaces
/// systemd's until its next reload) carries the real rules, as runc does. A deny rule
/// that takes away part of an earlier allow keeps that allow here (a superset): the
/// eBPF program holds the exact rules.
pub(crate) fn device_properties(
    rules: &[DeviceRule],
    device_group: &dyn Fn(DevKind, u32) -> Option<String>,
) -> Vec<Property> {
    let strict = |allow: Vec<(String, String)>| {
        vec![prop("DevicePolicy", Value::Str("strict".into())), prop("DeviceAllow", Value::Pairs(allow))]
    };
    let last_all = rules.iter().rposition(DeviceRule::is_everything);
    let after = last_all.map_or(rules, |i| &rules[i + 1..]);
    if last_all.is_some_and(|i| rules[i].allow) {
        if after.iter().any(|r| !r.allow) {
            return strict(Vec::new());
        }
        return vec![prop("DevicePolicy", Value::Str("auto".into())), prop("DeviceAllow", Value::Pairs(Vec::new()))];
    }
    let mut allow: Vec<(String, String)> = Vec::new();
    for (i, r) in after.iter().enumerate() {
        if !r.allow {
            continue;
        }
        // An allow undone entirely by a later deny of the same devices is dropped.
        let undone = after[i + 1..].iter().any(|d| {
            !d.allow && d.kind == r.kind && d.major == r.major && d.minor == r.minor && d.access & r.access == r.access
        });
        if undone {
            continue;
        }
        let access = devices::access_str(r.access);
        let kinds: &[DevKind] = match r.kind {
            DevKind::All => &[DevKind::Char, DevKind::Block],
            DevKind::Char => &[DevKind::Char],
            DevKind::Block => &[DevKind::Block],
        };
        for &k in kinds {
            let ty = if k == DevKind::Block { "block" } else { "char" };
            let path = match (r.major, r.minor) {
                (None, _) => Some(format!("{ty}-*")),
                (Some(major), None) => device_group(k, major).map(|g| format!("{ty}-{g}")),
                (Some(major), Some(minor)) => Some(format!("/dev/{ty}/{major}:{minor}")),
            };
            // A major /proc/devices does not name has no group to allow (runc skips it
            // with a warning); the eBPF program still allows it.
            if let Some(path) = path {
                let entry = (path, access.clone());
                if !allow.contains(&entry) {
                    allow.push(entry);
                }
            }
        }
    }
    strict(allow)
}

/// The device group of `major` from /proc/devices' text ("136 pts" under "Character
/// devices:").
pub(crate) fn group_in(proc_devices: &str, kind: DevKind, major: u32) -> Option<String> {
    let mut section = None;
    for line in proc_devices.lines() {
        match line.trim() {
            "Character devices:" => section = Some(DevKind::Char),
            "Block devices:" => section = Some(DevKind::Block),
            l => {
                if section != Some(kind) {
                    continue;
                }
                let mut it = l.split_whitespace();
                if let (Some(n), Some(name)) = (it.next(), it.next()) {
                    if n.parse::<u32>().ok() == Some(major) {
                        return Some(name.to_string());
                    }
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxMemoryBuilder,
        LinuxPidsBuilder, LinuxResourcesBuilder,
    };

    fn no_groups(_: DevKind, _: u32) -> Option<String> {
        None
    }

    fn get<'a>(p: &'a [Property], name: &str) -> Option<&'a Value> {
        p.iter().find(|x| x.name == name).map(|x| &x.value)
    }

    #[test]
    fn the_unit_of_a_scope_and_of_a_slice() {
        let s = unit("berth container c1".into(), "system.slice", false, Some(42));
        assert_eq!(get(&s, "Slice"), Some(&Value::Str("system.slice".into())));
        assert_eq!(get(&s, "Delegate"), Some(&Value::Bool(true)));
        assert_eq!(get(&s, "PIDs"), Some(&Value::U32s(vec![42])));
        assert_eq!(get(&s, "DefaultDependencies"), Some(&Value::Bool(false)));
        assert_eq!(get(&s, "MemoryAccounting"), Some(&Value::Bool(true)));
        let sl = unit("d".into(), "a.slice", true, None);
        assert_eq!(get(&sl, "Wants"), Some(&Value::Strs(vec!["a.slice".into()])));
        assert!(get(&sl, "Slice").is_none() && get(&sl, "Delegate").is_none() && get(&sl, "PIDs").is_none());
    }

    #[test]
    fn resources_in_runcs_mapping() {
        let r = LinuxResourcesBuilder::default()
            .memory(LinuxMemoryBuilder::default().limit(64 << 20).reservation(32 << 20).swap(96 << 20).build().unwrap())
            .cpu(
                LinuxCpuBuilder::default()
                    .shares(1024u64)
                    .quota(50_000)
                    .period(100_000u64)
                    .cpus("0-2,9")
                    .mems("0")
                    .build()
                    .unwrap(),
            )
            .pids(LinuxPidsBuilder::default().limit(100).build().unwrap())
            .block_io(LinuxBlockIoBuilder::default().weight(500u16).build().unwrap())
            .build()
            .unwrap();
        let p = resources(&r, &no_groups).expect("maps");
        assert_eq!(get(&p, "MemoryMax"), Some(&Value::U64(64 << 20)));
        assert_eq!(get(&p, "MemoryLow"), Some(&Value::U64(32 << 20)));
        assert_eq!(get(&p, "MemorySwapMax"), Some(&Value::U64(32 << 20)), "swap is the difference");
        assert_eq!(get(&p, "CPUWeight"), Some(&Value::U64(39)), "1 + (1024-2)*9999/262142");
        assert_eq!(get(&p, "CPUQuotaPeriodUSec"), Some(&Value::U64(100_000)));
        assert_eq!(get(&p, "CPUQuotaPerSecUSec"), Some(&Value::U64(500_000)));
        assert_eq!(get(&p, "AllowedCPUs"), Some(&Value::Bytes(vec![0b0000_0111, 0b0000_0010])));
        assert_eq!(get(&p, "AllowedMemoryNodes"), Some(&Value::Bytes(vec![1])));
        assert_eq!(get(&p, "TasksMax"), Some(&Value::U64(100)));
        assert_eq!(get(&p, "IOWeight"), Some(&Value::U64(4950)));
        assert!(get(&p, "DevicePolicy").is_none(), "no device list, no device properties");
    }

    #[test]
    fn unlimited_values_are_infinity() {
        let r = LinuxResourcesBuilder::default()
            .memory(LinuxMemoryBuilder::default().limit(-1).build().unwrap())
            .pids(LinuxPidsBuilder::default().limit(-1).build().unwrap())
            .cpu(LinuxCpuBuilder::default().quota(-1).build().unwrap())
            .build()
            .unwrap();
        let p = resources(&r, &no_groups).expect("maps");
        assert_eq!(get(&p, "MemoryMax"), Some(&Value::U64(INFINITY)));
        assert_eq!(get(&p, "MemorySwapMax"), Some(&Value::U64(INFINITY)));
        assert_eq!(get(&p, "TasksMax"), Some(&Value::U64(INFINITY)));
        assert_eq!(get(&p, "CPUQuotaPerSecUSec"), Some(&Value::U64(INFINITY)));
        assert!(get(&p, "CPUQuotaPeriodUSec").is_none());
        let zero = LinuxResourcesBuilder::default()
            .pids(LinuxPidsBuilder::default().limit(0).build().unwrap())
            .build()
            .unwrap();
        assert!(resources(&zero, &no_groups).expect("maps").is_empty());
    }

    #[test]
    fn cpu_quota_rounds_up_to_a_percent() {
        // 12345/100000 of a CPU: 123450 us/s, rounded up to 130000 (13%).
        assert_eq!(get(&cpu_quota(12_345, 100_000), "CPUQuotaPerSecUSec"), Some(&Value::U64(130_000)));
        // No period: the default 100 ms.
        assert_eq!(cpu_quota(20_000, 0), vec![prop("CPUQuotaPerSecUSec", Value::U64(200_000))]);
        assert!(cpu_quota(0, 0).is_empty());
    }

    #[test]
    fn bitmasks() {
        assert_eq!(bitmask("f", "0").expect("ok"), vec![1]);
        assert_eq!(bitmask("f", "8").expect("ok"), vec![0, 1]);
        assert_eq!(bitmask("f", "0-7,16").expect("ok"), vec![0xff, 0, 1]);
        for bad in ["x", "3-1", "1-x"] {
            let e = bitmask("linux.resources.cpu.cpus", bad).expect_err(bad).to_string();
            assert!(e.contains("linux.resources.cpu.cpus"), "{e}");
        }
    }

    fn dev(allow: bool, typ: LinuxDeviceType, major: Option<i64>, minor: Option<i64>, access: &str) -> DeviceRule {
        let mut b = LinuxDeviceCgroupBuilder::default().allow(allow).typ(typ).access(access);
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        devices::parse_rules(&[b.build().unwrap()]).expect("rule")[0]
    }

    #[test]
    fn device_rules_as_systemd_says_them() {
        let groups = |k: DevKind, major: u32| (k == DevKind::Char && major == 136).then(|| "pts".to_string());
        let rules = [
            dev(false, LinuxDeviceType::A, None, None, "rwm"),
            dev(true, LinuxDeviceType::C, Some(1), Some(3), "rwm"),
            dev(true, LinuxDeviceType::C, Some(136), None, "rwm"),
            dev(true, LinuxDeviceType::C, Some(999), None, "rw"),
            dev(true, LinuxDeviceType::B, None, None, "m"),
            dev(true, LinuxDeviceType::C, Some(5), Some(0), "rw"),
            dev(false, LinuxDeviceType::C, Some(5), Some(0), "rwm"),
        ];
        let p = device_properties(&rules, &groups);
        assert_eq!(get(&p, "DevicePolicy"), Some(&Value::Str("strict".into())));
        let want: Vec<(String, String)> = [("/dev/char/1:3", "rwm"), ("char-pts", "rwm"), ("block-*", "m")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(get(&p, "DeviceAllow"), Some(&Value::Pairs(want)));

        let all = [dev(true, LinuxDeviceType::A, None, None, "rwm")];
        assert_eq!(get(&device_properties(&all, &groups), "DevicePolicy"), Some(&Value::Str("auto".into())));
        let deny_list =
            [dev(true, LinuxDeviceType::A, None, None, "rwm"), dev(false, LinuxDeviceType::C, Some(1), Some(3), "w")];
        let p = device_properties(&deny_list, &groups);
        assert_eq!(get(&p, "DevicePolicy"), Some(&Value::Str("strict".into())));
        assert_eq!(get(&p, "DeviceAllow"), Some(&Value::Pairs(Vec::new())));
    }

    #[test]
    fn device_groups_from_proc_devices() {
        let text = "Character devices:\n  1 mem\n136 pts\n\nBlock devices:\n  8 sd\n";
        assert_eq!(group_in(text, DevKind::Char, 136).as_deref(), Some("pts"));
        assert_eq!(group_in(text, DevKind::Block, 8).as_deref(), Some("sd"));
        assert_eq!(group_in(text, DevKind::Block, 136), None);
    }
}
