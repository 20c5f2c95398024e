//! `berth spec`: the default config.json, as runc writes it (`--rootless` for an
//! unprivileged user).

use serde_json::{json, Value};

const DEFAULT_CAPS: [&str; 3] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

pub fn default_spec(rootless: bool) -> Value {
    let mut spec = json!({
        "ociVersion": crate::state::OCI_VERSION,
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": DEFAULT_CAPS,
                "effective": DEFAULT_CAPS,
                "permitted": DEFAULT_CAPS,
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "berth",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    });
    if rootless {
        // The user-namespace form, as `runc spec --rootless` writes it: root inside is the
        // user who asked for the spec.
        let (uid, gid) = (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw());
        spec["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1}]);
        spec["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 1}]);
        spec["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}, {"type": "user"}]);
        spec["linux"]["resources"] = Value::Null;
        if let Some(m) = spec["mounts"].as_array_mut() {
            m.retain(|m| m["destination"] != "/sys/fs/cgroup" && m["destination"] != "/sys");
            // Only the one id is mapped: no gid=/uid= options (devpts' gid=5 would fail).
            for o in m.iter_mut().filter_map(|m| m["options"].as_array_mut()) {
                o.retain(|o| o.as_str().is_none_or(|o| !o.starts_with("gid=") && !o.starts_with("uid=")));
            }
            m.push(json!({"destination": "/sys", "type": "none", "source": "/sys", "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}));
        }
        if let Some(l) = spec["linux"].as_object_mut() {
            l.remove("resources");
        }
    }
    // As `runc spec`: a cgroup namespace only on a pure cgroup v2 host. On v1 it would
    // only hide paths (exec then reads 0::/), and a config that adds its own is refused
    // as a duplicate.
    if !crate::cgroups::host_is_unified() {
        if let Some(ns) = spec["linux"]["namespaces"].as_array_mut() {
            ns.retain(|n| n["type"] != "cgroup");
        }
    }
    spec
}
