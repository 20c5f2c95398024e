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
/// Debian's criu, for the checkpoint/restore tests (the host kernel is too new for it).
const CRIU: &str = "/usr/sbin/criu";
/// Debian's containerd and ctr, for the shim's cgroup v2 test.
const CONTAINERD: &str = "/usr/bin/containerd";
const CTR: &str = "/usr/bin/ctr";
/// GNU tar: criu archives tmpfs contents with flags busybox's tar lacks.
const GNU_TAR: &str = "/usr/bin/tar";
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
    /// Dynamically linked host binaries copied in with their libraries (criu, containerd, ctr).
    pub host_binaries: Vec<PathBuf>,
    /// containerd-shim-berth-v2 (static), for the containerd test.
    pub shim: PathBuf,
    /// Only these guest tests (`BERTH_QEMU_TESTS=a,b`), for iterating on a few; all by default.
    pub only: Option<String>,
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
            return err(format!("BERTH={}: no such file (run `make build`)", berth.display()));
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
        let criu = PathBuf::from(CRIU);
        if !criu.is_file() {
            return err(format!("{CRIU} not found: install Debian's criu (`make deps`)"));
        }
        let tar = PathBuf::from(GNU_TAR);
        if !tar.is_file() {
            return err(format!("{GNU_TAR} not found: install Debian's tar"));
        }
        let mut host_binaries = vec![criu, tar];
        for b in [CONTAINERD, CTR] {
            let b = PathBuf::from(b);
            if !b.is_file() {
                return err(format!("{} not found: install Debian's containerd", b.display()));
            }
            host_binaries.push(b);
        }
        let shim = crate::util::workspace_binary("containerd-shim-berth-v2", "BERTH_SHIM");
        if !shim.is_file() {
            return err(format!(
                "{}: no such file (cargo build --release -p containerd-shim-berth-v2, or set BERTH_SHIM)",
                shim.display()
            ));
        }
        let only = std::env::var("BERTH_QEMU_TESTS").ok().filter(|s| !s.is_empty());
        if let Some(o) = &only {
            if !o.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ',') {
                return err(format!("BERTH_QEMU_TESTS={o:?}: test names separated by commas"));
            }
        }
        let timeout = match std::env::var("BERTH_QEMU_TIMEOUT_SECS") {
            Ok(s) => Duration::from_secs(
                s.parse().map_err(|_| QemuError(format!("BERTH_QEMU_TIMEOUT_SECS={s:?} is not a number")))?,
            ),
            Err(_) => DEFAULT_TIMEOUT,
        };
        Ok(GuestConfig { berth, kernel, qemu, busybox, host_binaries, shim, only, timeout })
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
        None => {
            err(format!("no kernel {}/vmlinuz-*: install Debian's linux-image-amd64 (`make deps`)", boot.display()))
        }
    }
}

/// A newc ("070701") cpio archive, the format the kernel unpacks as an
/// initramfs. Entries are written in order, so parents must come first.
#[derive(Debug, Default)]
pub struct Newc {
    buf: Vec<u8>,
    next_ino: u32,
    /// Names written so far, so `host_file` adds each parent and library once.
    names: std::collections::BTreeSet<String>,
}

const S_IFMT: u32 = 0o170000;
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

impl Newc {
    pub fn new() -> Newc {
        Newc { buf: Vec::new(), next_ino: 1, names: Default::default() }
    }

    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) -> Result<()> {
        self.names.insert(name.to_string());
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

    /// Every missing parent directory of `name` (0755), outermost first.
    fn parents(&mut self, name: &str) -> Result<()> {
        let mut at = String::new();
        let parts: Vec<&str> = name.split('/').filter(|p| !p.is_empty()).collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            if !at.is_empty() {
                at.push('/');
            }
            at.push_str(part);
            if !self.names.contains(&at) {
                let d = at.clone();
                self.dir(&d, 0o755)?;
            }
        }
        Ok(())
    }

    /// The host file at `path` (symlinks followed), at the same path in the archive.
    pub fn host_file(&mut self, path: &Path, perm: u32) -> Result<()> {
        let name = path.to_string_lossy().trim_start_matches('/').to_string();
        self.parents(&name)?;
        let data = read(path)?;
        self.file(&name, perm, &data)
    }

    /// A dynamically linked host binary at its own path, with every library `ldd` lists
    /// and the dynamic loader, so it runs in the guest as on the host.
    pub fn host_binary(&mut self, path: &Path) -> Result<()> {
        if !self.names.contains(path.to_string_lossy().trim_start_matches('/')) {
            self.host_file(path, 0o755)?;
        }
        for lib in shared_libraries(path)? {
            let name = lib.to_string_lossy().trim_start_matches('/').to_string();
            if !self.names.contains(&name) {
                self.host_file(&lib, 0o755)?;
            }
        }
        Ok(())
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

/// What criu 3.17 probes before every dump and restore and Debian builds as modules: the
/// socket diagnostics ("Diag module missing"), veth (its netns-id probe creates a pair),
/// tun, and nf_tables (its set-concatenation probe; crc32c for libcrc32c, which the kernel
/// would otherwise ask modprobe for).
const CRIU_MODULES: &[&str] = &[
    "unix_diag",
    "netlink_diag",
    "af_packet_diag",
    "inet_diag",
    "tcp_diag",
    "udp_diag",
    "veth",
    "tun",
    "crc32c_generic",
    "nf_tables",
];

/// The `.ko` files of `names` for the kernel image `kernel` (vmlinuz-<release>), from
/// /lib/modules/<release>/modules.dep, each after the modules it depends on.
pub fn kernel_modules(kernel: &Path, names: &[&str]) -> Result<Vec<PathBuf>> {
    let release = kernel
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .ok_or_else(|| QemuError(format!("{}: not named vmlinuz-<release>", kernel.display())))?;
    let dir = Path::new("/lib/modules").join(release);
    let dep_text = std::fs::read_to_string(dir.join("modules.dep")).map_err(|e| {
        QemuError(format!("{}/modules.dep: {e}: install the modules of {release} (linux-image-amd64)", dir.display()))
    })?;
    let deps: BTreeMap<&str, Vec<&str>> = dep_text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(m, d)| (m.trim(), d.split_whitespace().collect()))
        .collect();
    let mut order: Vec<PathBuf> = Vec::new();
    for name in names {
        let file = format!("/{name}.ko");
        let Some((m, ds)) = deps.iter().find(|(m, _)| m.ends_with(&file)) else {
            return err(format!("kernel module {name} not in {}/modules.dep", dir.display()));
        };
        for path in ds.iter().rev().chain(std::iter::once(m)) {
            let p = dir.join(path);
            if !order.contains(&p) {
                order.push(p);
            }
        }
    }
    Ok(order)
}

/// The libraries `ldd` resolves for `binary` (the loader included), as absolute paths.
pub fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let out =
        Command::new("ldd").arg(binary).output().map_err(|e| QemuError(format!("ldd {}: {e}", binary.display())))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return err(format!("ldd {}: {} {}", binary.display(), out.status, text.trim()));
    }
    parse_ldd(&text).map_err(|line| QemuError(format!("ldd {}: unresolved library: {line}", binary.display())))
}

/// `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` and `/lib64/ld-linux-x86-64.so.2
/// (0x…)` give paths; the vDSO has none. A library ldd could not find is an error (the line).
fn parse_ldd(text: &str) -> std::result::Result<Vec<PathBuf>, String> {
    let mut libs = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let target = match line.split_once("=>") {
            Some((_, rhs)) => rhs.trim(),
            None => line,
        };
        if target.starts_with("not found") {
            return Err(line.to_string());
        }
        let path = target.split_whitespace().next().unwrap_or("");
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        }
    }
    Ok(libs)
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
        // `berth spec` ran on this hybrid host, where (as runc's) it adds no cgroup
        // namespace; the guest is pure cgroup v2, where it does.
        let Some(ns) = c["linux"]["namespaces"].as_array_mut() else {
            return err("`berth spec` output has no linux.namespaces");
        };
        if !ns.iter().any(|n| n["type"] == "cgroup") {
            ns.push(json!({"type": "cgroup"}));
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
    // --systemd-cgroup in a guest without systemd: refused naming the flag.
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
    // Checkpoint/restore: a counter on a bind mount the guest reads, in a child of the init
    // (its pid inside the pid namespace is recorded); no network namespace (criu would
    // need ip and iptables to dump one). It rewrites one file in place: a file it held open
    // at the dump must still exist at the restore (criu does not save files of external
    // mounts), so no temporary file that a rename makes vanish.
    add(
        "ckpt",
        sh("sh -c 'i=0; while :; do echo $i >/data/count; i=$((i + 1)); sleep 0.1; done' &
            echo $! >/data/loop.pid
            wait"),
        &|c| {
            if let Some(ns) = c["linux"]["namespaces"].as_array_mut() {
                ns.retain(|n| n["type"] != "network");
            }
            if let Some(m) = c["mounts"].as_array_mut() {
                m.push(json!({"destination": "/data", "type": "bind", "source": "/tmp/ckpt-data", "options": ["rbind", "rw"]}));
            }
        },
    )?;
    add("defaultpath", json!(["sleep", "1000"]), &|c| {
        if let Some(l) = c["linux"].as_object_mut() {
            l.remove("cgroupsPath");
        }
    })?;
    // A user namespace (root → 100000) with its own cgroup namespace and a writable cgroup
    // mount: berth hands the cgroup to the container's root, as runc does.
    add("userns", sh("stat -c '%u %g' /sys/fs/cgroup; mkdir /sys/fs/cgroup/sub && echo sub-made; id -u"), &|c| {
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
    })?;
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
    for b in &cfg.host_binaries {
        a.host_binary(b)?;
    }
    // containerd finds the shim on PATH; the image is the shim tests' busybox archive.
    a.file("bin/containerd-shim-berth-v2", 0o755, &read(&cfg.shim)?)?;
    let image_dir = tempfile::tempdir().map_err(|e| QemuError(format!("tempdir: {e}")))?;
    let image = image_dir.path().join("busybox-oci.tar");
    crate::shim_fixture::write_image(&image).map_err(|e| QemuError(format!("image: {e}")))?;
    a.dir("ctd", 0o755)?;
    a.file("ctd/busybox-oci.tar", 0o644, &read(&image)?)?;
    // /init insmods these in order.
    let modules = kernel_modules(&cfg.kernel, CRIU_MODULES)?;
    let mut load = String::new();
    for m in &modules {
        a.host_file(m, 0o644)?;
        load.push_str(&format!("{}\n", m.display()));
    }
    a.file("modules.load", 0o644, load.as_bytes())?;
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
        .arg("-append")
        .arg(match &cfg.only {
            Some(o) => format!("{KERNEL_CMDLINE} berth.tests={o}"),
            None => KERNEL_CMDLINE.to_string(),
        })
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
    fn ldd_output_gives_library_and_loader_paths() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        assert_eq!(
            parse_ldd(text).expect("parsed"),
            [PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"), PathBuf::from("/lib64/ld-linux-x86-64.so.2")]
        );
        assert!(parse_ldd("\tlibfoo.so.1 => not found\n").is_err());
    }

    #[test]
    fn host_binary_brings_its_libraries_and_each_parent_once() {
        let mut a = Newc::new();
        a.dir("bin", 0o755).expect("dir");
        a.host_binary(Path::new(DYNAMIC_BINARY)).expect("host binary");
        for lib in shared_libraries(Path::new(DYNAMIC_BINARY)).expect("ldd") {
            assert!(a.names.contains(lib.to_string_lossy().trim_start_matches('/')), "{} missing", lib.display());
        }
        assert!(a.names.contains("usr/bin") && a.names.contains("lib64"), "{:?}", a.names);
        a.host_binary(Path::new(DYNAMIC_BINARY)).expect("the same binary again");
        let buf = a.finish().expect("finish");
        let names = entry_names(&buf);
        assert_eq!(names.iter().filter(|n| *n == "usr/bin").count(), 1, "the directory usr/bin is written once");
        assert_eq!(names.iter().filter(|n| *n == "usr/bin/ls").count(), 1, "the binary is written once");
    }

    #[test]
    fn kernel_modules_come_after_their_dependencies() {
        let Ok(kernel) = newest_kernel(Path::new("/boot")) else { panic!("no /boot/vmlinuz-* (make deps)") };
        let mods = kernel_modules(&kernel, &["tcp_diag", "unix_diag"]).expect("modules");
        let names: Vec<String> =
            mods.iter().map(|m| m.file_name().unwrap_or_default().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["inet_diag.ko", "tcp_diag.ko", "unix_diag.ko"]);
        assert!(mods.iter().all(|m| m.is_file()), "{mods:?}");
    }

    /// The entry names of a newc archive, in order.
    fn entry_names(buf: &[u8]) -> Vec<String> {
        let field = |at: usize, i: usize| {
            u32::from_str_radix(std::str::from_utf8(&buf[at + 6 + 8 * i..at + 14 + 8 * i]).expect("hex"), 16)
                .expect("hex") as usize
        };
        let up4 = |n: usize| n.div_ceil(4) * 4;
        let (mut at, mut names) = (0, Vec::new());
        while at + 110 <= buf.len() {
            let (size, namesize) = (field(at, 6), field(at, 11));
            let name = String::from_utf8_lossy(&buf[at + 110..at + 110 + namesize - 1]).into_owned();
            at = up4(at + 110 + namesize) + up4(size);
            if name == "TRAILER!!!" {
                break;
            }
            names.push(name);
        }
        names
    }

    /// Any dynamically linked binary every Debian host has.
    const DYNAMIC_BINARY: &str = "/usr/bin/ls";

    #[test]
    fn newest_kernel_compares_numbers() {
        let d = tempfile::tempdir().expect("tempdir");
        for n in ["vmlinuz-6.1.0-9-amd64", "vmlinuz-6.1.0-56-amd64", "config-7.0"] {
            std::fs::write(d.path().join(n), b"").expect("write");
        }
        assert_eq!(newest_kernel(d.path()).expect("kernel"), d.path().join("vmlinuz-6.1.0-56-amd64"));
    }
}
