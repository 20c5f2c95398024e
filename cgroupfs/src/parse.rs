//! The text formats of cgroup interface files (the kernel's cgroup-v2.rst "Interface Files"
//! conventions, which v1 files follow too).

use std::collections::BTreeMap;

/// A single value: a number, or "max" (no limit), which reads as `u64::MAX` as in runc's
/// `GetCgroupParamUint` and containerd's readers. A negative number (v1 shows -1 for some
/// unset knobs) saturates to 0. `None` for anything else.
pub fn value(s: &str) -> Option<u64> {
    let s = s.trim();
    if s == "max" {
        return Some(u64::MAX);
    }
    s.parse::<u64>().ok().or_else(|| s.parse::<i64>().ok().map(|v| v.max(0).unsigned_abs()))
}

/// A flat-keyed file ("key value" lines: memory.stat, cpu.stat, memory.events,
/// memory.oom_control). Lines whose value is not a number are left out.
pub fn flat_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// One line of a nested-keyed file (`io.stat`, `rdma.max`: "KEY sub=value sub=value"): its
/// first word and the `sub=value` pairs after it.
pub fn nested_keyed(line: &str) -> Option<(&str, impl Iterator<Item = (&str, &str)>)> {
    let mut words = line.split_whitespace();
    let first = words.next()?;
    Some((first, words.filter_map(|w| w.split_once('='))))
}

/// A cpuset list ("0-3,7") as its ids.
pub fn cpu_list(s: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) {
            out.extend(a..=b);
        }
    }
    out
}

/// A device "MAJ:MIN".
pub fn device(s: &str) -> Option<(u64, u64)> {
    let (major, minor) = s.split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        assert_eq!(value("max"), Some(u64::MAX));
        assert_eq!(value("max\n"), Some(u64::MAX));
        assert_eq!(value("-1"), Some(0));
        assert_eq!(value("42\n"), Some(42));
        assert_eq!(value("9223372036854771712"), Some(9223372036854771712));
        assert_eq!(value(""), None);
        assert_eq!(value("x"), None);
    }

    #[test]
    fn flat_keyed_files() {
        let kv = flat_keyed("oom_kill_disable 0\nunder_oom 0\noom_kill 3\nbad\nword x\n");
        assert_eq!(kv.get("oom_kill"), Some(&3));
        assert_eq!(kv.len(), 3);
    }

    #[test]
    fn nested_keyed_lines() {
        let (first, kv) = nested_keyed("8:0 rbytes=4096 wbytes=0 junk").unwrap();
        assert_eq!(first, "8:0");
        assert_eq!(kv.collect::<Vec<_>>(), [("rbytes", "4096"), ("wbytes", "0")]);
        assert!(nested_keyed("  ").is_none());
    }

    #[test]
    fn lists_and_devices() {
        assert_eq!(cpu_list("0-2,5"), vec![0, 1, 2, 5]);
        assert_eq!(cpu_list(""), Vec::<u16>::new());
        assert_eq!(device("254:16"), Some((254, 16)));
        assert_eq!(device("Total"), None);
    }
}
