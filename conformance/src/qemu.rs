//! A pure cgroup v2 Linux guest under qemu (software emulation) that runs
//! berth containers; see docs/cgroup-v2-testing.md.
//!
//! The host side: build a newc initramfs (busybox, berth, a busybox root
//! for the containers, the bundles' config.json and the guest scripts of
//! conformance/qemu/), boot Debian's kernel with `cgroup_no_v1=all`, and
//! read the `BERTH-RESULT <name> PASS|FAIL <detail>` lines the guest prints
//! on its serial console.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The guest's /init and the tests it sources; compiled in so the archive
/// always matches this source tree.
const INIT_SH: &str = include_str!("../qemu/init.sh");
const TESTS_SH: &str = include_str!("../qemu/tests.sh");

const QEMU: &str = "qemu-system-x86_64";
const BUSYBOX: &str = "/bin/busybox";
const KERNEL_CMDLINE: &str = "console=ttyS0 cgroup_no_v1=all quiet loglevel=1 panic=-1";
/// TCG on two shared cores: the guest normally finishes in well under two
/// minutes; this only bounds a hung guest.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
pub struct QemuError(pub String);

impl fmt::Display for QemuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for QemuError {}

type Result<T> = std::result::Result<T, QemuError>;

fn err<T>(msg: impl Into<String>) -> Result<T> {
    Err(QemuError(msg.into()))
}

/// One `BERTH-RESULT` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestResult {
    pub pass: bool,
    pub detail: String,
}

/// What one boot of the guest produced.
#[derive(Debug, Clone)]
pub struct GuestRun {
    pub results: BTreeMap<String, GuestResult>,
    /// The `BERTH-BOOTED` line: guest uptime when /init's stage 2 began,
    /// kernel release and the controllers of the cgroup2 root.
    pub booted: Option<String>,
    /// The guest reached the end of its script.
    pub done: bool,
    /// Wall time from starting qemu to its exit.
    pub elapsed: Duration,
    /// The whole serial console, for failure messages.
    pub console: String,
}

impl GuestRun {
    /// The named result, or an error carrying the console when the guest
    /// never printed it (crashed, timed out, or the test does not exist).
    pub fn result(&self, name: &str) -> std::result::Result<&GuestResult, String> {
        self.results.get(name).ok_or_else(|| {
            format!(
                "the guest printed no BERTH-RESULT line for {name:?} (done: {}); console:\n{}",
                self.done, self.console
            )
        })
    }
}

/// Where the pieces come from; `from_env` is what the tests use.
#[derive(Debug, Clone)]
pub struct GuestConfig {
    pub berth: PathBuf,
    pub kernel: PathBuf,
    pub qemu: PathBuf,
    pub busybox: PathBuf,
    pub timeout: Duration,
}

impl GuestConfig {
    /// `BERTH` (the release binary, as `make conformance` sets it), the
    /// newest /boot/vmlinuz-* (or `BERTH_QEMU_KERNEL`), qemu-system-x86_64
    /// from PATH and Debian's static busybox. Missing pieces are an error
    /// naming the package that provides them: these tests must not pass by
    /// not running.
    pub fn from_env() -> Result<GuestConfig> {
        let berth = match std::env::var_os("BERTH") {
            Some(b) => PathBuf::from(b),
            None => {
                return err("BERTH is not set: run `make conformance`, or set BERTH to the static release binary \
                     (target/x86_64-unknown-linux-gnu/release/berth)")
            }
        };
        if !berth.is_file() {
            return err(format!("BERTH={}: no such file (run `cargo build --release -p berth`)", berth.display()));
        }
        let kernel = match std::env::var_os("BERTH_QEMU_KERNEL") {
            Some(k) => PathBuf::from(k),
            None => newest_kernel(Path::new("/boot"))?,
        };
        if !kernel.is_file() {
            return err(format!(
                "kernel {}: no such file: install Debian's linux-image-amd64 (`make deps`)",
                kernel.display()
            ));
        }
        let qemu = find_in_path(QEMU).ok_or_else(|| {
            QemuError(format!("{QEMU} not found in PATH: install Debian's qemu-system-x86 (`make deps`)"))
        })?;
        let busybox = PathBuf::from(BUSYBOX);
        if !busybox.is_file() {
            return err(format!("{BUSYBOX} not found: install Debian's busybox-static (`make deps`)"));
        }
        let timeout = match std::env::var("BERTH_QEMU_TIMEOUT_SECS") {
            Ok(s) => Duration::from_secs(
                s.parse().map_err(|_| QemuError(format!("BERTH_QEMU_TIMEOUT_SECS={s:?} is not a number")))?,
            ),
            Err(_) => DEFAULT_TIMEOUT,
        };
        Ok(GuestConfig { berth, kernel, qemu, busybox, timeout })
    }
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

/// The highest-versioned /boot/vmlinuz-*, compared by the numbers in the
/// release ("6.1.0-56-amd64" > "6.1.0-9-amd64").
fn newest_kernel(boot: &Path) -> Result<PathBuf> {
    let entries = std::fs::read_dir(boot)
        .map_err(|e| QemuError(format!("{}: {e}: install Debian's linux-image-amd64 (`make deps`)", boot.display())))?;
    let key = |name: &str| -> Vec<u64> {
        name.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).filter_map(|s| s.parse().ok()).collect()
    };
    let best = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with("vmlinuz-"))
        .max_by_key(|n| key(n));
    match best {
        Some(n) => Ok(boot.join(n)),
        None => err(format!(
            "no kernel {}/vmlinuz-*: install Debian's linux-image-amd64 (`make deps`)",
            boot.display()
        )),
    }
}

/// A newc ("070701") cpio archive, the format the kernel unpacks as an
/// initramfs. Entries are written in order, so parents must come first.
#[derive(Debug, Default)]
pub struct Newc {
    buf: Vec<u8>,
    next_ino: u32,
}

const S_IFMT: u32 = 0o170000;
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

impl Newc {
    pub fn new() -> Newc {
        Newc { buf: Vec::new(), next_ino: 1 }
    }

    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) -> Result<()> {
        let size = u32::try_from(data.len()).map_err(|_| QemuError(format!("{name}: too big for newc")))?;
        let namesize = u32::try_from(name.len() + 1).map_err(|_| QemuError(format!("{name}: name too long")))?;
        let ino = self.next_ino;
        self.next_ino += 1;
        let nlink = if mode & S_IFMT == S_IFDIR { 2 } else { 1 };
        // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
        let fields = [ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev.0, rdev.1, namesize, 0];
        self.buf.extend_from_slice(b"070701");
        for f in fields {
            self.buf.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad();
        self.buf.extend_from_slice(data);
        self.pad();
        Ok(())
    }

    // Header+name and data are each padded to 4 bytes.
    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    /// `name` is relative to the archive root ("bin/busybox").
    pub fn dir(&mut self, name: &str, perm: u32) -> Result<()> {
        self.entry(name, S_IFDIR | perm, (0, 0), &[])
    }

    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> Result<()> {
        self.entry(name, S_IFREG | perm, (0, 0), data)
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> Result<()> {
        self.entry(name, S_IFLNK | 0o777, (0, 0), target.as_bytes())
    }

    pub fn char_dev(&mut self, name: &str, perm: u32, major: u32, minor: u32) -> Result<()> {
        self.entry(name, S_IFCHR | perm, (major, minor), &[])
    }

    pub fn finish(mut self) -> Result<Vec<u8>> {
        self.entry("TRAILER!!!", 0, (0, 0), &[])?;
        Ok(self.buf)
    }
}

/// The bundles the guest's tests use, by name, derived from `base` (the
/// output of `berth spec`). tests.sh repeats what each one runs.
pub fn guest_bundles(base: &Value) -> Result<Vec<(&'static str, Value)>> {
    let sh = |script: &str| json!(["sh", "-c", script]);
    let mut out = Vec::new();
    let mut add = |name: &'static str, args: Value, edit: &dyn Fn(&mut Value)| -> Result<()> {
        let mut c = base.clone();
        if !c["process"].is_object() || !c["linux"].is_object() {
            return err("`berth spec` output has no process or linux object");
        }
        c["process"]["terminal"] = json!(false);
        c["process"]["args"] = args;
        c["root"] = json!({"path": "/rootfs", "readonly": true});
        c["hostname"] = json!(name);
        c["linux"]["cgroupsPath"] = json!(format!("/berth-test/{name}"));
        edit(&mut c);
        out.push((name, c));
        Ok(())
    };
    let none = |_: &mut Value| {};
    let add_cap = |c: &mut Value, cap: &str| {
        for set in ["bounding", "effective", "permitted"] {
            if let Some(list) = c["process"]["capabilities"][set].as_array_mut() {
                list.push(json!(cap));
            }
        }
    };

    add("basic", sh("cat /proc/self/cgroup; echo hello-v2; exit 7"), &none)?;
    add("placed", json!(["sleep", "1000"]), &none)?;
    add("limits", json!(["sleep", "1000"]), &|c| {
        c["linux"]["resources"]["memory"] = json!({"limit": 64 * 1024 * 1024});
        c["linux"]["resources"]["cpu"] = json!({"shares": 1024, "quota": 50000, "period": 100000});
        c["linux"]["resources"]["pids"] = json!({"limit": 20});
    })?;
    add(
        "devdeny",
        sh("echo x >/dev/null && echo null-ok
            mknod /dev/sda b 8 0 && echo mknod-ok
            head -c1 /dev/sda; echo read-rc=$?
            mknod /dev/kmsg c 1 11 && echo x >/dev/kmsg; echo kmsg-rc=$?"),
        &|c| add_cap(c, "CAP_MKNOD"),
    )?;
    // A node from linux.devices is usable only where linux.resources.devices allows it
    // (as with runc and crun; Docker adds both for --device).
    let allow_kmsg = |c: &mut Value| {
        c["linux"]["devices"] =
            json!([{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o600, "uid": 0, "gid": 0}]);
        if let Some(list) = c["linux"]["resources"]["devices"].as_array_mut() {
            list.push(json!({"allow": true, "type": "c", "major": 1, "minor": 11, "access": "rw"}));
        }
    };
    add("devallow", sh("echo berth-devallow-ok >/dev/kmsg"), &allow_kmsg)?;
    // Allow everything, then deny writes to any char device of minor 11
    // (a wildcard major); runc's default allows come after both.
    add(
        "devorder",
        sh("mknod /dev/sda b 8 0; head -c1 /dev/sda; echo sda-rc=$?
            mknod /dev/kmsg c 1 11 && echo x >/dev/kmsg; echo kmsg-rc=$?
            echo x >/dev/null && echo null-ok"),
        &|c| {
            add_cap(c, "CAP_MKNOD");
            c["linux"]["resources"]["devices"] =
                json!([{"allow": true, "access": "rwm"}, {"allow": false, "type": "c", "minor": 11, "access": "w"}]);
        },
    )?;
    // One block device, read only: the rule's type, numbers and access bit
    // must all match.
    add(
        "devblock",
        sh("mknod /dev/sda b 8 0; mknod /dev/sdb b 8 16
            head -c1 /dev/sda; echo sda-read-rc=$?
            echo x >/dev/sda; echo sda-write-rc=$?
            head -c1 /dev/sdb; echo sdb-read-rc=$?"),
        &|c| {
            add_cap(c, "CAP_MKNOD");
            if let Some(list) = c["linux"]["resources"]["devices"].as_array_mut() {
                list.push(json!({"allow": true, "type": "b", "major": 8, "minor": 0, "access": "r"}));
            }
        },
    )?;
    // A container inside another one's cgroup (a nested runtime's layout):
    // the inner one lists and allows /dev/kmsg, the outer one does not.
    add("outer", json!(["sleep", "1000"]), &|c| c["linux"]["cgroupsPath"] = json!("/berth-test/outer"))?;
    add("inner", sh("echo x >/dev/null && echo null-ok; echo x >/dev/kmsg; echo kmsg-rc=$?"), &|c| {
        c["linux"]["cgroupsPath"] = json!("/berth-test/outer/inner");
        allow_kmsg(c);
    })?;
    add("pids", sh("n=0; while [ $n -lt 20 ]; do sleep 100 & n=$((n + 1)); echo forked $n; done"), &|c| {
        c["linux"]["resources"]["pids"] = json!({"limit": 5});
    })?;
    add("oom", json!(["tail", "/dev/zero"]), &|c| {
        c["linux"]["resources"]["memory"] = json!({"limit": 16 * 1024 * 1024});
    })?;
    add("limits2", json!(["sleep", "1000"]), &|c| {
        let r = &mut c["linux"]["resources"];
        r["memory"] = json!({"limit": 64 * 1024 * 1024, "swap": 128 * 1024 * 1024, "reservation": 32 * 1024 * 1024});
        r["cpu"] = json!({"quota": 20000, "period": 100000, "burst": 10000, "idle": 1, "cpus": "0", "mems": "0"});
        r["pids"] = json!({"limit": 20});
        r["hugepageLimits"] = json!([{"pageSize": "2MB", "limit": 4 * 1024 * 1024}]);
        r["unified"] = json!({"memory.high": "50331648", "pids.max": "7"});
    })?;
    // The ends of each scale and runc's "no limit" spellings.
    add("edges", json!(["sleep", "1000"]), &|c| {
        let r = &mut c["linux"]["resources"];
        r["memory"] = json!({"limit": -1, "swap": -1});
        // No cpu.idle here: an idle group's weight reads 0 (the kernel
        // gives it the idle weight), so it is checked in limits2.
        r["cpu"] = json!({"shares": 262144, "quota": -1, "period": 100000});
        r["pids"] = json!({"limit": -1});
        r["blockIO"] = json!({"weight": 500});
    })?;
    // Two containers under a parent berth creates (as "/docker" would be).
    for name in ["shared1", "shared2"] {
        add(name, json!(["sleep", "1000"]), &|c| {
            c["linux"]["cgroupsPath"] = json!(format!("/berth-shared/{}", c["hostname"].as_str().unwrap_or("")));
        })?;
    }
    add(
        "cgmount",
        sh("echo pids.max=$(cat /sys/fs/cgroup/pids.max)
            echo parent-visible=$(ls /sys/fs/cgroup | grep -c berth-test)
            echo cgroup2-ro=$(grep -c '^[^ ]* /sys/fs/cgroup cgroup2 ro,' /proc/self/mounts)"),
        &|c| c["linux"]["resources"]["pids"] = json!({"limit": 9}),
    )?;
    add("killall", sh("sleep 1000 & sleep 1000 & wait"), &none)?;
    // A container that makes its own sub-cgroup, as systemd or a nested
    // runtime would.
    add(
        "nested",
        sh("mkdir /sys/fs/cgroup/sub
            sh -c 'echo $$ >/sys/fs/cgroup/sub/cgroup.procs && exec sleep 1000' &
            exec sleep 1000"),
        &|c| {
            if let Some(mounts) = c["mounts"].as_array_mut() {
                for m in mounts.iter_mut().filter(|m| m["type"] == "cgroup") {
                    if let Some(opts) = m["options"].as_array_mut() {
                        // berth keeps cgroup mounts read-only unless told "rw".
                        opts.retain(|o| o != "ro");
                        opts.push(json!("rw"));
                    }
                }
            }
        },
    )?;
    add("force", json!(["sleep", "1000"]), &none)?;
    // ps/pause/resume/events/update: a counting loop writing into a host directory.
    add("ops", sh("sleep 1000 & i=0; while true; do i=$((i + 1)); echo $i >/obs/count; sleep 0.05; done"), &|c| {
        c["linux"]["resources"]["memory"] = json!({"limit": 64 * 1024 * 1024});
        c["linux"]["resources"]["pids"] = json!({"limit": 20});
        if let Some(m) = c["mounts"].as_array_mut() {
            m.push(json!({"destination": "/obs", "type": "bind", "source": "/tmp/opsobs", "options": ["rbind", "rw"]}));
        }
    })?;
    add("opskill", sh("sleep 1000 & wait"), &none)?;
    // --systemd-cgroup: a systemd "slice:prefix:name" path, managed through cgroupfs.
    add("sdpath", json!(["sleep", "1000"]), &|c| {
        c["linux"]["cgroupsPath"] = json!("bt-sd.slice:pfx:sdpath");
        c["linux"]["resources"]["pids"] = json!({"limit": 7});
    })?;
    // An OOM kill a few seconds in, for `events` to report.
    add("opsoom", sh("sleep 3; tail /dev/zero; sleep 1"), &|c| {
        c["linux"]["resources"]["memory"] = json!({"limit": 16 * 1024 * 1024});
    })?;
    add("nopidns", sh("sleep 1000 >/dev/null 2>&1 & echo started"), &|c| {
        if let Some(ns) = c["linux"]["namespaces"].as_array_mut() {
            ns.retain(|n| n["type"] != "pid");
        }
    })?;
    add("busychild", json!(["true"]), &|c| {
        c["linux"]["cgroupsPath"] = json!("/berth-test/busy/child");
        c["linux"]["resources"]["memory"] = json!({"limit": 32 * 1024 * 1024});
    })?;
    add("occupied", json!(["true"]), &|c| c["linux"]["cgroupsPath"] = json!("/berth-test/busy"))?;
    add("defaultpath", json!(["sleep", "1000"]), &|c| {
        if let Some(l) = c["linux"].as_object_mut() {
            l.remove("cgroupsPath");
        }
    })?;
    // A user namespace (root → 100000) with its own cgroup namespace and a writable cgroup
    // mount: berth hands the cgroup to the container's root, as runc does.
    add(
        "userns",
        sh("stat -c '%u %g' /sys/fs/cgroup; mkdir /sys/fs/cgroup/sub && echo sub-made; id -u"),
        &|c| {
            if let Some(ns) = c["linux"]["namespaces"].as_array_mut() {
                ns.push(json!({"type": "user"}));
            }
            c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            if let Some(mounts) = c["mounts"].as_array_mut() {
                for m in mounts.iter_mut().filter(|m| m["type"] == "cgroup") {
                    m["options"] = json!(["nosuid", "noexec", "nodev", "relatime", "rw"]);
                }
            }
        },
    )?;
    Ok(out)
}

/// `berth spec` into a temporary bundle, parsed.
fn berth_spec(berth: &Path) -> Result<Value> {
    let dir = tempfile::tempdir().map_err(|e| QemuError(format!("tempdir: {e}")))?;
    let st = Command::new(berth)
        .args(["spec", "-b"])
        .arg(dir.path())
        .status()
        .map_err(|e| QemuError(format!("{} spec: {e}", berth.display())))?;
    if !st.success() {
        return err(format!("{} spec: {st}", berth.display()));
    }
    let text = std::fs::read_to_string(dir.path().join("config.json"))
        .map_err(|e| QemuError(format!("reading the spec berth wrote: {e}")))?;
    serde_json::from_str(&text).map_err(|e| QemuError(format!("berth spec output: {e}")))
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| QemuError(format!("{}: {e}", path.display())))
}

/// The applet names of the busybox binary, for the symlinks in /bin and
/// in the containers' root.
fn busybox_applets(busybox: &Path) -> Result<Vec<String>> {
    let out = Command::new(busybox)
        .arg("--list")
        .output()
        .map_err(|e| QemuError(format!("{} --list: {e}", busybox.display())))?;
    if !out.status.success() {
        return err(format!("{} --list: {}", busybox.display(), out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && !a.contains('/') && *a != "busybox")
        .map(String::from)
        .collect())
}

/// The whole initramfs as bytes.
pub fn build_initramfs(cfg: &GuestConfig) -> Result<Vec<u8>> {
    let busybox = read(&cfg.busybox)?;
    let berth = read(&cfg.berth)?;
    let applets = busybox_applets(&cfg.busybox)?;
    let bundles = guest_bundles(&berth_spec(&cfg.berth)?)?;

    let mut a = Newc::new();
    for d in ["bin", "dev", "proc", "sys", "run", "tmp", "newroot", "bundles"] {
        a.dir(d, 0o755)?;
    }
    // The kernel opens /dev/console for /init's stdio before anything is
    // mounted; without this node the guest's output goes nowhere.
    a.char_dev("dev/console", 0o600, 5, 1)?;
    a.file("bin/busybox", 0o755, &busybox)?;
    a.file("bin/berth", 0o755, &berth)?;
    for ap in &applets {
        a.symlink(&format!("bin/{ap}"), "busybox")?;
    }
    a.file("init", 0o755, INIT_SH.as_bytes())?;
    a.file("tests.sh", 0o644, TESTS_SH.as_bytes())?;

    // The containers' root: busybox and the mount points berth's default
    // mounts need (the root is read-only in every bundle).
    for d in ["rootfs", "rootfs/bin", "rootfs/dev", "rootfs/proc", "rootfs/sys", "rootfs/tmp", "rootfs/etc"] {
        a.dir(d, 0o755)?;
    }
    a.file("rootfs/bin/busybox", 0o755, &busybox)?;
    for ap in &applets {
        a.symlink(&format!("rootfs/bin/{ap}"), "busybox")?;
    }

    for (name, config) in bundles {
        a.dir(&format!("bundles/{name}"), 0o755)?;
        let text = serde_json::to_vec_pretty(&config).map_err(|e| QemuError(format!("{name}: {e}")))?;
        a.file(&format!("bundles/{name}/config.json"), 0o644, &text)?;
    }
    a.finish()
}

/// qemu, killed and reaped however the run ends.
struct QemuChild(Child);

impl Drop for QemuChild {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Builds the initramfs, boots the guest once and parses what it printed.
/// An error means the guest could not be run at all; a guest that crashed
/// or timed out still returns its console (with `done == false`).
pub fn run_guest(cfg: &GuestConfig) -> Result<GuestRun> {
    let initramfs = build_initramfs(cfg)?;
    let work = tempfile::tempdir().map_err(|e| QemuError(format!("tempdir: {e}")))?;
    let initrd = work.path().join("initramfs.cpio");
    let console_path = work.path().join("console.log");
    // A file, not a pipe: nobody reads qemu's stderr while it runs.
    let stderr_path = work.path().join("qemu.stderr");
    let stderr_file =
        std::fs::File::create(&stderr_path).map_err(|e| QemuError(format!("{}: {e}", stderr_path.display())))?;
    std::fs::write(&initrd, &initramfs).map_err(|e| QemuError(format!("{}: {e}", initrd.display())))?;

    let start = Instant::now();
    let mut serial = std::ffi::OsString::from("file:");
    serial.push(&console_path);
    let child = Command::new(&cfg.qemu)
        .args(["-accel", "tcg", "-cpu", "max", "-smp", "2", "-m", "1024"])
        .args(["-nodefaults", "-display", "none", "-monitor", "none", "-no-reboot"])
        .arg("-serial")
        .arg(&serial)
        .arg("-kernel")
        .arg(&cfg.kernel)
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", KERNEL_CMDLINE])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr_file)
        .spawn()
        .map_err(|e| QemuError(format!("{}: {e}", cfg.qemu.display())))?;
    let mut child = QemuChild(child);

    let mut timed_out = false;
    let status = loop {
        match child.0.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if start.elapsed() >= cfg.timeout => {
                timed_out = true;
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return err(format!("waiting for qemu: {e}")),
        }
    };
    let elapsed = start.elapsed();
    drop(child);
    let qemu_stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();

    let raw = std::fs::read(&console_path).unwrap_or_default();
    let console = String::from_utf8_lossy(&raw).replace('\r', "");
    let mut run = parse_console(&console);
    run.elapsed = elapsed;
    if !run.done {
        let why = if timed_out {
            format!("qemu killed after {:?} (timeout)", cfg.timeout)
        } else {
            format!("qemu exited ({status:?}) before the guest finished; stderr: {qemu_stderr}")
        };
        run.console = format!("{}\n[host] {why}", run.console);
    }
    Ok(run)
}

/// Reads the guest's marker lines out of its console.
pub fn parse_console(console: &str) -> GuestRun {
    let mut results = BTreeMap::new();
    let mut booted = None;
    let mut done = false;
    for line in console.lines() {
        // Kernel messages may share a line with ours; markers start anywhere.
        if let Some(i) = line.find("BERTH-RESULT ") {
            let mut it = line[i + "BERTH-RESULT ".len()..].splitn(3, ' ');
            if let (Some(name), Some(verdict)) = (it.next(), it.next()) {
                let detail = it.next().unwrap_or("").trim().to_string();
                results.insert(name.to_string(), GuestResult { pass: verdict == "PASS", detail });
            }
        } else if let Some(i) = line.find("BERTH-BOOTED ") {
            booted = Some(line[i + "BERTH-BOOTED ".len()..].trim().to_string());
        } else if line.contains("BERTH-GUEST-DONE") {
            done = true;
        }
    }
    GuestRun { results, booted, done, elapsed: Duration::ZERO, console: console.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_layout_is_what_the_kernel_reads() {
        let mut a = Newc::new();
        a.file("ab", 0o644, b"xyz").expect("file");
        let buf = a.finish().expect("finish");
        // header 110 bytes + "ab\0" = 113, padded to 116; data 3 padded to 4.
        assert_eq!(&buf[..6], b"070701");
        assert_eq!(&buf[6 + 8..6 + 16], b"000081a4");
        assert_eq!(&buf[6 + 6 * 8..6 + 7 * 8], b"00000003");
        assert_eq!(&buf[110..113], b"ab\0");
        assert_eq!(&buf[116..119], b"xyz");
        assert_eq!(&buf[120..126], b"070701");
        assert_eq!(buf.len() % 4, 0);
        assert!(buf.windows(10).any(|w| w == b"TRAILER!!!"));
    }

    #[test]
    fn console_markers_are_parsed_amid_kernel_noise() {
        let c = "[ 1.0] x\nBERTH-BOOTED uptime=1.2 kernel=6.1\nBERTH-RESULT a PASS ok  \n\
                 [ 2.0] oom BERTH-RESULT b FAIL exit=1 (want 137)\nBERTH-GUEST-DONE uptime=3\n";
        let r = parse_console(c);
        assert!(r.done);
        assert_eq!(r.booted.as_deref(), Some("uptime=1.2 kernel=6.1"));
        assert_eq!(r.results["a"], GuestResult { pass: true, detail: "ok".into() });
        assert_eq!(r.results["b"], GuestResult { pass: false, detail: "exit=1 (want 137)".into() });
    }

    #[test]
    fn newest_kernel_compares_numbers() {
        let d = tempfile::tempdir().expect("tempdir");
        for n in ["vmlinuz-6.1.0-9-amd64", "vmlinuz-6.1.0-56-amd64", "config-7.0"] {
            std::fs::write(d.path().join(n), b"").expect("write");
        }
        assert_eq!(newest_kernel(d.path()).expect("kernel"), d.path().join("vmlinuz-6.1.0-56-amd64"));
    }
}
