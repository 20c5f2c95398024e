//! `berth features`: runtime-spec features.md, listing only what works.

use serde_json::{json, Value};

/// The mount options of runc's `features` list, kept to those our option parser handles
/// itself rather than passing on to the filesystem as data.
fn mount_options() -> Vec<&'static str> {
    const CANDIDATES: &[&str] = &[
        "async",
        "atime",
        "bind",
        "defaults",
        "dev",
        "diratime",
        "dirsync",
        "exec",
        "idmap",
        "iversion",
        "lazytime",
        "loud",
        "mand",
        "noatime",
        "nodev",
        "nodiratime",
        "noexec",
        "noiversion",
        "nolazytime",
        "nomand",
        "norelatime",
        "nostrictatime",
        "nosuid",
        "nosymfollow",
        "private",
        "ratime",
        "rbind",
        "rdev",
        "rdiratime",
        "relatime",
        "remount",
        "rexec",
        "rnoatime",
        "rnodev",
        "rnodiratime",
        "rnoexec",
        "rnorelatime",
        "rnostrictatime",
        "rnosuid",
        "rnosymfollow",
        "ro",
        "rprivate",
        "ridmap",
        "rrelatime",
        "rro",
        "rrw",
        "rshared",
        "rslave",
        "rstrictatime",
        "rsuid",
        "rsymfollow",
        "runbindable",
        "rw",
        "shared",
        "silent",
        "slave",
        "strictatime",
        "suid",
        "symfollow",
        "sync",
        "tmpcopyup",
        "unbindable",
    ];
    CANDIDATES.iter().copied().filter(|o| crate::rootfs::options::parse(&[*o]).data.is_empty()).collect()
}

pub fn features() -> Value {
    let caps: Vec<String> = caps::runtime::thread_all_supported().iter().map(|c| c.to_string()).collect();
    let mut caps = caps;
    caps.sort();
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": crate::state::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": mount_options(),
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": caps,
            "cgroup": {"v1": true, "v2": true, "systemd": true, "systemdUser": true, "rdma": false},
            "seccomp": {
                "enabled": true,
                "actions": crate::seccomp::ACTIONS,
                "operators": crate::seccomp::OPERATORS,
                "archs": crate::seccomp::supported_arches(),
                "knownFlags": crate::seccomp::FLAGS,
                "supportedFlags": crate::seccomp::supported_flags()
            },
            // As runc: berth can apply them, whether or not this host has the module
            // enabled (a config asking for one where it is off fails validation).
            "apparmor": {"enabled": true},
            "selinux": {"enabled": true},
            "intelRdt": {"enabled": false},
            // features-linux.md: whether berth implements id-mapped mounts, irrespective of
            // the host (a kernel without them fails the create naming the mount).
            "mountExtensions": {"idmap": {"enabled": true}}
        },
        "annotations": {
            "org.opencontainers.runtime-spec.features.version": crate::state::OCI_VERSION,
            "io.github.berth.version": env!("CARGO_PKG_VERSION"),
            // Runs for an unprivileged user (state in $XDG_RUNTIME_DIR/berth, `--rootless`
            // true/false/auto); cgroups only where that user may write them.
            "io.github.berth.rootless": "true"
        }
    })
}
