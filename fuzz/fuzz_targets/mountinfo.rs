//! /proc/self/mountinfo and /proc/self/cgroup text -> the cgroup manager's view of the host
//! (cgroupfs/src/hierarchy.rs through `berth::cgroups::from_sources`).
//! Input: `mountinfo \0 proc-self-cgroup \0 cgroupsPath [\0 anything = pure cgroup v2]`.
#![no_main]

use berth::cgroups;
use libfuzzer_sys::fuzz_target;
use oci_spec::runtime::LinuxResources;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(4, '\0');
    let mountinfo = parts.next().unwrap_or("");
    let own = parts.next().unwrap_or("");
    let cgroups_path = parts.next();
    let pure_v2 = parts.next().is_some();
    if let Ok(m) = cgroups::from_sources("fuzz", cgroups_path, mountinfo, own, pure_v2) {
        let _ = m.state();
        let _ = m.validate(&LinuxResources::default());
    }
});
