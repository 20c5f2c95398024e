//! The five capability sets of `process.capabilities`. Bounding is dropped while still
//! root; effective, permitted and inheritable are set in one capset(2) after the uid change,
//! so no ordering between the sets can fail halfway; ambient last, and only for caps that
//! are permitted and inheritable. A set that is absent is empty: nothing is inherited unless
//! asked for (CVE-2022-29162).

use std::str::FromStr;

use oci_spec::runtime::{Capabilities, LinuxCapabilities};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum CapError {
    #[error("process.capabilities.{set}: {name}: {source}")]
    Apply { set: &'static str, name: String, source: std::io::Error },
    #[error("process.capabilities: capset: {0}")]
    Capset(std::io::Error),
}

/// Capability numbers of a set, ignoring names this kernel does not know (they were
/// warned about when the spec was loaded).
fn numbers(set: Option<&Capabilities>) -> Vec<(u8, String)> {
    let mut out = Vec::new();
    for cap in set.into_iter().flatten() {
        let name = serde_json::to_value(cap).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        if let Ok(c) = caps::Capability::from_str(&name) {
            out.push((c.index(), name));
        }
    }
    out
}

fn mask(set: Option<&Capabilities>) -> u64 {
    numbers(set).iter().fold(0u64, |m, (i, _)| m | (1u64 << i))
}

fn last_cap() -> u8 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(40)
}

/// Drops from the bounding set every capability not in `bounding`. Needs CAP_SETPCAP, so
/// it runs before the uid changes.
pub fn apply_bounding(caps: Option<&LinuxCapabilities>) -> Result<(), CapError> {
    let keep = mask(caps.and_then(|c| c.bounding().as_ref()));
    for cap in 0..=last_cap() {
        if keep & (1u64 << cap) != 0 {
            continue;
        }
        if let Err(e) = crate::sys::caps::bounding_drop(cap as u32) {
            // EINVAL: the kernel does not know this capability.
            if e.raw_os_error() != Some(libc::EINVAL) {
                return Err(CapError::Apply { set: "bounding", name: format!("cap {cap}"), source: e });
            }
        }
    }
    Ok(())
}

/// What `apply_sets` will leave out, for the caller to warn about in runc's words ("can't
/// raise ambient capability CAP_X: "): ambient capabilities that are not both permitted
/// and inheritable. Pure, so it can be reported
/// before a seccomp filter that might deny the write.
pub fn ambient_warnings(caps: Option<&LinuxCapabilities>) -> Vec<String> {
    let pi = mask(caps.and_then(|c| c.permitted().as_ref())) & mask(caps.and_then(|c| c.inheritable().as_ref()));
    numbers(caps.and_then(|c| c.ambient().as_ref()))
        .into_iter()
        .filter(|(cap, _)| pi & (1u64 << cap) == 0)
        .map(|(_, name)| {
            format!("process.capabilities.ambient: can't raise ambient capability {name}: it is not both permitted and inheritable")
        })
        .collect()
}

/// Sets effective, permitted and inheritable, then ambient (leaving out what
/// `ambient_warnings` reports).
pub fn apply_sets(caps: Option<&LinuxCapabilities>) -> Result<(), CapError> {
    let e = mask(caps.and_then(|c| c.effective().as_ref()));
    let p = mask(caps.and_then(|c| c.permitted().as_ref()));
    let i = mask(caps.and_then(|c| c.inheritable().as_ref()));
    crate::sys::caps::capset(e, p, i).map_err(CapError::Capset)?;
    crate::sys::caps::ambient_clear_all();
    for (cap, name) in numbers(caps.and_then(|c| c.ambient().as_ref())) {
        if (p & i) & (1u64 << cap) == 0 {
            continue;
        }
        if let Err(source) = crate::sys::caps::ambient_raise(cap as u32) {
            return Err(CapError::Apply { set: "ambient", name, source });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_follow_capability_numbers() {
        let set: Capabilities =
            serde_json::from_value(serde_json::json!(["CAP_CHOWN", "CAP_KILL", "CAP_SYS_ADMIN"])).unwrap();
        assert_eq!(mask(Some(&set)), (1 << 0) | (1 << 5) | (1 << 21));
        assert_eq!(mask(None), 0);
    }
}
