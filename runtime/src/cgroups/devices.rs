//! Device cgroup rules: the OCI list turned into a checked, typed form,
//! and from there into v1 `devices.allow`/`devices.deny` writes. The v2
//! eBPF program is generated from the same typed rules in bpf.rs.
//!
//! OCI semantics: rules apply in order on top of a default of "deny
//! everything"; for each access bit of a request the last rule that matches
//! it decides.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::CgroupError;

pub(crate) const ACC_MKNOD: u8 = 1;
pub(crate) const ACC_READ: u8 = 2;
pub(crate) const ACC_WRITE: u8 = 4;
pub(crate) const ACC_ALL: u8 = ACC_MKNOD | ACC_READ | ACC_WRITE;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DevKind {
    All,
    Block,
    Char,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeviceRule {
    pub allow: bool,
    pub kind: DevKind,
    /// None = any.
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// ACC_* bits.
    pub access: u8,
}

impl DeviceRule {
    pub fn is_everything(&self) -> bool {
        self.kind == DevKind::All && self.major.is_none() && self.minor.is_none() && self.access == ACC_ALL
    }
}

fn num(field: &str, v: Option<i64>) -> Result<Option<u32>, CgroupError> {
    match v {
        None | Some(-1) => Ok(None),
        // The kernel's dev_t has 12 bits of major and 20 of minor; keeping
        // below i32::MAX also lets bpf.rs compare with sign-extended immediates.
        Some(n) if (0..=0xfffff).contains(&n) => Ok(Some(n as u32)),
        Some(n) => Err(CgroupError::invalid(field, format!("{n} is not a valid device number"))),
    }
}

/// The access bits of `access`. Letters other than r, w and m are ignored, as runc (1.1
/// to 1.3) does: its rule emulator keeps only those three, so `"rwa"` means `"rw"` and
/// configs written for runc keep working.
fn access_bits(access: Option<&str>) -> u8 {
    match access {
        None | Some("") => ACC_ALL,
        Some(a) => a.chars().fold(0, |bits, c| {
            bits | match c {
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                'm' => ACC_MKNOD,
                _ => 0,
            }
        }),
    }
}

/// Checks the OCI list and converts it. FIFO rules ("p") are dropped: the
/// device cgroup never sees FIFOs.
pub(crate) fn parse_rules(list: &[LinuxDeviceCgroup]) -> Result<Vec<DeviceRule>, CgroupError> {
    let mut out = Vec::with_capacity(list.len());
    for (i, d) in list.iter().enumerate() {
        let f = |s: &str| format!("linux.resources.devices[{i}].{s}");
        let kind = match d.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => DevKind::All,
            LinuxDeviceType::B => DevKind::Block,
            LinuxDeviceType::C | LinuxDeviceType::U => DevKind::Char,
            LinuxDeviceType::P => continue,
        };
        let (major, minor) = (num(&f("major"), d.major())?, num(&f("minor"), d.minor())?);
        let access = access_bits(d.access().as_deref());
        if access == 0 {
            // Only unknown letters: the rule grants or takes away nothing (runc too).
            continue;
        }
        out.push(DeviceRule { allow: d.allow(), kind, major, minor, access });
    }
    Ok(out)
}

pub(crate) fn access_str(bits: u8) -> String {
    let mut s = String::new();
    if bits & ACC_READ != 0 {
        s.push('r');
    }
    if bits & ACC_WRITE != 0 {
        s.push('w');
    }
    if bits & ACC_MKNOD != 0 {
        s.push('m');
    }
    s
}

fn numstr(n: Option<u32>) -> String {
    n.map_or_else(|| "*".to_string(), |n| n.to_string())
}

/// The writes that give a v1 devices cgroup these rules: `(file, line)`,
/// starting from "deny all". The kernel reads a line starting with "a" as
/// "everything" whatever follows, so a type-"a" rule that is not about
/// everything is split into its block and char halves.
pub(crate) fn v1_writes(rules: &[DeviceRule]) -> Vec<(&'static str, String)> {
    let mut out = vec![("devices.deny", "a".to_string())];
    for r in rules {
        let file = if r.allow { "devices.allow" } else { "devices.deny" };
        if r.is_everything() {
            out.push((file, "a".to_string()));
            continue;
        }
        let kinds: &[&str] = match r.kind {
            DevKind::All => &["b", "c"],
            DevKind::Block => &["b"],
            DevKind::Char => &["c"],
        };
        for k in kinds {
            out.push((file, format!("{k} {}:{} {}", numstr(r.major), numstr(r.minor), access_str(r.access))));
        }
    }
    out
}

/// One line of a v1 `devices.list` in default-deny mode.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct V1Exception {
    pub kind: char,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: u8,
}

fn parse_v1_line(line: &str) -> Option<V1Exception> {
    let mut it = line.split_whitespace();
    let kind = it.next()?.chars().next()?;
    let (ma, mi) = it.next()?.split_once(':')?;
    let n = |s: &str| if s == "*" { Some(None) } else { s.parse().ok().map(Some) };
    let mut access = 0;
    for c in it.next()?.chars() {
        access |= match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => return None,
        };
    }
    Some(V1Exception { kind, major: n(ma)?, minor: n(mi)?, access })
}

/// The exception list the kernel will show after `writes` (from
/// `v1_writes`), imitating its merge rules: an allow adds its bits to an
/// entry with the same type and numbers, a deny takes them away. None when
/// the result is "allow by default", whose list says only "a *:* rwm".
pub(crate) fn v1_expected_list(writes: &[(&'static str, String)]) -> Option<Vec<V1Exception>> {
    let mut allow_default = true;
    let mut list: Vec<V1Exception> = Vec::new();
    for (file, line) in writes {
        let allow = *file == "devices.allow";
        if line == "a" {
            allow_default = allow;
            list.clear();
            continue;
        }
        let e = parse_v1_line(line)?;
        // In default-deny mode the list holds allows, otherwise denies.
        let adds = allow != allow_default;
        match list.iter_mut().position(|x| x.kind == e.kind && x.major == e.major && x.minor == e.minor) {
            Some(i) if adds => list[i].access |= e.access,
            None if adds => list.push(e),
            Some(i) => {
                list[i].access &= !e.access;
                if list[i].access == 0 {
                    list.remove(i);
                }
            }
            None => {}
        }
    }
    if allow_default {
        return None;
    }
    list.sort();
    Some(list)
}

/// Parses `devices.list`; None when it is not a default-deny list.
pub(crate) fn parse_v1_list(text: &str) -> Option<Vec<V1Exception>> {
    let mut list = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let e = parse_v1_line(line)?;
        if e.kind == 'a' {
            return None;
        }
        list.push(e);
    }
    list.sort();
    Some(list)
}

/// Reference evaluation of the OCI semantics, used by tests to check the
/// eBPF program and usable by callers that want to reason about rules.
#[cfg(test)]
pub(crate) fn evaluate(rules: &[DeviceRule], kind: DevKind, major: u32, minor: u32, access: u8) -> bool {
    for bit in [ACC_MKNOD, ACC_READ, ACC_WRITE] {
        if access & bit == 0 {
            continue;
        }
        let decided = rules.iter().rev().find(|r| {
            r.access & bit != 0
                && (r.kind == DevKind::All || r.kind == kind)
                && r.major.is_none_or(|m| m == major)
                && r.minor.is_none_or(|m| m == minor)
        });
        if !decided.is_some_and(|r| r.allow) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    pub(crate) fn docker_rules() -> Vec<LinuxDeviceCgroup> {
        let mut v = vec![LinuxDeviceCgroupBuilder::default().allow(false).access("rwm").build().unwrap()];
        for (t, maj, min, acc) in [
            (LinuxDeviceType::C, Some(1), Some(3), "rwm"),
            (LinuxDeviceType::C, Some(1), Some(5), "rwm"),
            (LinuxDeviceType::C, Some(136), None, "rwm"),
            (LinuxDeviceType::C, Some(10), Some(200), "rwm"),
            (LinuxDeviceType::C, None, None, "m"),
            (LinuxDeviceType::B, None, None, "m"),
        ] {
            let mut b = LinuxDeviceCgroupBuilder::default().allow(true).typ(t).access(acc);
            if let Some(m) = maj {
                b = b.major(m);
            }
            if let Some(m) = min {
                b = b.minor(m);
            }
            v.push(b.build().unwrap());
        }
        v
    }

    #[test]
    fn v1_strings_for_docker_rules() {
        let rules = parse_rules(&docker_rules()).unwrap();
        let w = v1_writes(&rules);
        let lines: Vec<String> = w.iter().map(|(f, l)| format!("{f} {l}")).collect();
        assert_eq!(
            lines,
            vec![
                "devices.deny a",
                "devices.deny a",
                "devices.allow c 1:3 rwm",
                "devices.allow c 1:5 rwm",
                "devices.allow c 136:* rwm",
                "devices.allow c 10:200 rwm",
                "devices.allow c *:* m",
                "devices.allow b *:* m",
            ]
        );
    }

    #[test]
    fn expected_v1_list_matches_kernel_merging() {
        let rules = parse_rules(&docker_rules()).unwrap();
        let want = v1_expected_list(&v1_writes(&rules)).unwrap();
        let shown = "c 1:3 rwm\nc 1:5 rwm\nc 136:* rwm\nc 10:200 rwm\nc *:* m\nb *:* m\n";
        assert_eq!(parse_v1_list(shown).unwrap(), want);
        assert!(parse_v1_list("a *:* rwm\n").is_none());
        let r = [
            DeviceRule { allow: true, kind: DevKind::Char, major: Some(1), minor: Some(3), access: ACC_READ },
            DeviceRule { allow: true, kind: DevKind::Char, major: Some(1), minor: Some(3), access: ACC_WRITE },
            DeviceRule { allow: false, kind: DevKind::Char, major: Some(1), minor: Some(3), access: ACC_READ },
        ];
        assert_eq!(parse_v1_list("c 1:3 w").unwrap(), v1_expected_list(&v1_writes(&r)).unwrap());
        let all = [DeviceRule { allow: true, kind: DevKind::All, major: None, minor: None, access: ACC_ALL }];
        assert!(v1_expected_list(&v1_writes(&all)).is_none());
    }

    #[test]
    fn partial_type_a_rule_is_split() {
        let r = [DeviceRule { allow: true, kind: DevKind::All, major: Some(5), minor: None, access: ACC_READ }];
        let w = v1_writes(&r);
        assert_eq!(w[1], ("devices.allow", "b 5:* r".to_string()));
        assert_eq!(w[2], ("devices.allow", "c 5:* r".to_string()));
    }

    #[test]
    fn unknown_access_letters_are_ignored_as_in_runc() {
        let rule = |a: &str| {
            LinuxDeviceCgroupBuilder::default()
                .allow(false)
                .typ(LinuxDeviceType::C)
                .major(1i64)
                .minor(11i64)
                .access(a)
                .build()
                .unwrap()
        };
        let r = parse_rules(&[rule("rwa")]).unwrap();
        assert_eq!(r[0].access, ACC_READ | ACC_WRITE);
        assert!(parse_rules(&[rule("xyz")]).unwrap().is_empty());
    }

    #[test]
    fn bad_rules_name_the_field() {
        let bad = LinuxDeviceCgroupBuilder::default().allow(true).major(1i64 << 40).build().unwrap();
        let e = parse_rules(&[bad]).unwrap_err().to_string();
        assert!(e.contains("linux.resources.devices[0].major"), "{e}");
    }

    #[test]
    fn reference_semantics() {
        let rules = parse_rules(&docker_rules()).unwrap();
        assert!(evaluate(&rules, DevKind::Char, 1, 3, ACC_READ | ACC_WRITE));
        assert!(!evaluate(&rules, DevKind::Char, 1, 4, ACC_READ));
        assert!(evaluate(&rules, DevKind::Char, 1, 4, ACC_MKNOD));
        assert!(evaluate(&rules, DevKind::Char, 136, 7, ACC_WRITE));
        assert!(!evaluate(&rules, DevKind::Block, 8, 0, ACC_READ));
        // A later partial deny takes away only its bits.
        let r = [
            DeviceRule { allow: true, kind: DevKind::Char, major: Some(1), minor: Some(3), access: ACC_ALL },
            DeviceRule { allow: false, kind: DevKind::Char, major: Some(1), minor: Some(3), access: ACC_WRITE },
        ];
        assert!(evaluate(&r, DevKind::Char, 1, 3, ACC_READ));
        assert!(!evaluate(&r, DevKind::Char, 1, 3, ACC_READ | ACC_WRITE));
    }
}
