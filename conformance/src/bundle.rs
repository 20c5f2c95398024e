//! OCI bundles: a busybox rootfs plus a config.json tests can tweak as JSON.

use crate::rootfs::Rootfs;
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};

/// The config `runc spec` writes (ociVersion 1.0.2-dev, which crun 1.8
/// also accepts; tests of 1.3.0 set it explicitly), with two deliberate differences: no tty
/// (tests capture stdio through files) and no ambient/inheritable capabilities
/// (CVE-2022-29162: a generated spec must not hand out inheritable caps).
pub fn default_spec() -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "berth",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

pub struct Bundle {
    pub dir: PathBuf,
    pub rootfs: Rootfs,
    pub config: Value,
}

impl Bundle {
    /// Creates `dir` with a busybox rootfs and the default config (not yet written).
    pub fn new(dir: &Path) -> Bundle {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create bundle {}: {e}", dir.display()));
        let rootfs = Rootfs::busybox(&dir.join("rootfs"));
        Bundle { dir: dir.to_path_buf(), rootfs, config: default_spec() }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    /// Writes the current `config` to config.json.
    pub fn write(&self) {
        let text = serde_json::to_string_pretty(&self.config).expect("config is serialisable");
        fs::write(self.config_path(), text).expect("cannot write config.json");
    }

    /// Replaces config.json with raw bytes (for malformed-input tests).
    pub fn write_raw(&self, bytes: &[u8]) {
        fs::write(self.config_path(), bytes).expect("cannot write raw config.json");
    }

    pub fn set_args(&mut self, args: &[&str]) {
        self.config["process"]["args"] = json!(args);
    }

    pub fn set_sh(&mut self, script: &str) {
        self.set_args(&["sh", "-c", script]);
    }

    pub fn add_mount(&mut self, mount: Value) {
        self.config["mounts"].as_array_mut().expect("config.mounts is an array").push(mount);
    }

    /// Removes every mount whose destination is `dest`.
    pub fn remove_mount(&mut self, dest: &str) {
        self.config["mounts"].as_array_mut().expect("config.mounts is an array").retain(|m| m["destination"] != dest);
    }

    /// Removes a namespace type from linux.namespaces (the container then shares the host's).
    pub fn remove_namespace(&mut self, ty: &str) {
        self.config["linux"]["namespaces"]
            .as_array_mut()
            .expect("linux.namespaces is an array")
            .retain(|n| n["type"] != ty);
    }

    /// Sets (or adds) a namespace entry with a `path` to join.
    pub fn join_namespace(&mut self, ty: &str, path: &str) {
        self.remove_namespace(ty);
        self.config["linux"]["namespaces"]
            .as_array_mut()
            .expect("linux.namespaces is an array")
            .push(json!({"type": ty, "path": path}));
    }
}
