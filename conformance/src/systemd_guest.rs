//! Production-like Debian guests under qemu (software emulation): systemd as PID 1, pure
//! cgroup v2, AppArmor on (or SELinux, permissive). [`Suite::Trixie`] (Debian 13) holds
//! trixie's docker.io, containerd, podman, runc and crun; [`Suite::Forky`] (Debian testing)
//! today's clients: containerd 2.1, Docker 28, runc 1.3; see docs/production-guest.md.
//!
//! [`ensure_image`] builds a suite's root with debootstrap (conformance/qemu/<suite>-build.sh)
//! into a raw ext4 image, cached under /var/cache/berth/guests/<suite>-<hash>/ and rebuilt
//! only when the package list or a guest-side file changes. [`Guest::boot`] boots it with the guest's
//! own kernel and initrd, the disk in snapshot mode (every boot starts clean), a read-only 9p
//! share of host files, and a virtio-serial port on which a small agent (a systemd unit baked
//! into the image) runs the host's commands: [`Guest::run`] returns their exit code, stdout
//! and stderr. One boot serves many commands; qemu is killed and reaped when the [`Guest`]
//! is dropped or [`Guest::shutdown`] is called.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// The image builds, the command agent and its unit; compiled in, and hashed into the cache
/// directory's name, so a changed guest-side file means a rebuilt image.
const BUILD_SH: &str = include_str!("../qemu/trixie-build.sh");
const FORKY_BUILD_SH: &str = include_str!("../qemu/forky-build.sh");
const AGENT_SH: &str = include_str!("../qemu/trixie-agent.sh");
const AGENT_UNIT: &str = include_str!("../qemu/berth-agent.service");

/// What the trixie image holds beyond debootstrap's minbase. `--no-install-recommends`, so every
/// helper a client needs at run time is named: netavark and catatonit for podman, iptables
/// for dockerd's bridge, containernetworking-plugins for CRI pods, policycoreutils for labelling, initramfs-tools and zstd for the
/// kernel's initrd.
pub const PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "dbus",
    "udev",
    "kmod",
    "linux-image-amd64",
    "initramfs-tools",
    "zstd",
    "docker.io",
    // trixie splits the client out of docker.io.
    "docker-cli",
    "containerd",
    "podman",
    "runc",
    "crun",
    "apparmor",
    "selinux-policy-default",
    "selinux-utils",
    "policycoreutils",
    "iproute2",
    // The CRI plugin's pod network (the bridge, host-local and loopback plugins).
    "containernetworking-plugins",
    "busybox-static",
    "criu",
    "iptables",
    "netavark",
    "catatonit",
    "uidmap",
    // Rootless podman's user bus: the user's systemd instance with its own D-Bus.
    "dbus-user-session",
    "libpam-systemd",
    // Rootless Docker: dockerd-rootless.sh runs dockerd under rootlesskit with slirp4netns.
    "rootlesskit",
    "slirp4netns",
    "e2fsprogs",
    "procps",
];

/// What the forky image holds beyond debootstrap's minbase: the clients of today's hosts
/// (containerd 2.1, Docker 28, runc 1.3, crun 1.2x) and what they need at run time; no
/// podman or SELinux (the trixie guest tests those), criu for checkpoint/restore.
pub const FORKY_PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "dbus",
    "udev",
    "kmod",
    "linux-image-amd64",
    "initramfs-tools",
    "zstd",
    "docker.io",
    "docker-cli",
    "containerd",
    "runc",
    "crun",
    "apparmor",
    "iproute2",
    "containernetworking-plugins",
    "busybox-static",
    "criu",
    "iptables",
    "e2fsprogs",
    "procps",
];

/// Which Debian release a guest image is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    /// Debian 13: systemd 257, kernel 6.12, containerd 1.7, Docker 26.1, runc 1.1.
    Trixie,
    /// Debian testing: containerd 2.1, Docker 28, runc 1.3, crun 1.2x.
    Forky,
}

impl Suite {
    /// The codename: the cache directory's prefix and what messages call the guest.
    pub fn name(self) -> &'static str {
        match self {
            Suite::Trixie => "trixie",
            Suite::Forky => "forky",
        }
    }

    pub fn packages(self) -> &'static [&'static str] {
        match self {
            Suite::Trixie => PACKAGES,
            Suite::Forky => FORKY_PACKAGES,
        }
    }

    fn build_script(self) -> &'static str {
        match self {
            Suite::Trixie => BUILD_SH,
            Suite::Forky => FORKY_BUILD_SH,
        }
    }
}

const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
const DEFAULT_CACHE: &str = "/var/cache/berth/guests";
const QEMU: &str = "qemu-system-x86_64";
const IMAGE: &str = "rootfs.img";
const KERNEL: &str = "vmlinuz";
const INITRD: &str = "initrd.img";
/// The 9p mount tag of the host share and where [`Guest::boot`] mounts it in the guest.
pub const SHARE_TAG: &str = "host";
pub const SHARE_MOUNT: &str = "/mnt/host";
/// loglevel=3: kernel messages are slow on an emulated serial port, systemd's unit status
/// lines are few and say where a boot hangs; fsck.mode=skip: the image is pristine at every
/// boot (snapshot mode); panic=-1 with -no-reboot: a kernel panic ends qemu at once.
const CMDLINE: &str = "root=/dev/vda rw console=ttyS0 loglevel=3 fsck.mode=skip panic=-1 systemd.show_status=1";

/// What the guest kernel prints when something went wrong below the test: stalls, hung
/// tasks, oopses, the OOM killer, a panic.
const KERNEL_TROUBLE: [&str; 8] = [
    "rcu: INFO",
    "detected stall",
    "blocked for more than",
    "BUG:",
    "Oops",
    "Kernel panic",
    "Out of memory",
    "watchdog:",
];

/// How [`Guest::boot`] tells a guest that died before its agent ran.
const EARLY: &str = "died before its agent started";

#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Missing(String),
    #[error("building the {suite} image failed ({status}); the end of its log:\n{log}")]
    Build { suite: &'static str, status: String, log: String },
    #[error("the guest {what}; console tail:\n{console}")]
    Guest { what: String, console: String },
    #[error("the guest did not {what} in time; console tail:\n{console}")]
    Timeout { what: String, console: String },
    #[error("the agent's answer is malformed: {0}")]
    Protocol(String),
}

type Result<T> = std::result::Result<T, GuestError>;

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> GuestError {
    let what = what.into();
    move |source| GuestError::Io { what, source }
}

/// A built image in the cache.
#[derive(Debug, Clone)]
pub struct GuestImage {
    pub suite: Suite,
    pub dir: PathBuf,
    pub image: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// How long the build took, when this call built it (None: it was cached).
    pub built_in: Option<Duration>,
}

/// `<suite>-<16 hex digits>`: the hash of everything that decides the image's contents
/// (the suite's package list and build script, the agent and its unit; for trixie exactly
/// what it was before forky existed, so its cached image stays valid).
pub fn image_name(suite: Suite) -> String {
    let mut h = Sha256::new();
    for part in [suite.packages().join(" ").as_str(), suite.build_script(), AGENT_SH, AGENT_UNIT] {
        h.update(part.len().to_le_bytes());
        h.update(part.as_bytes());
    }
    let hex: String = h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{}-{hex}", suite.name())
}

/// The cache directory: `BERTH_GUEST_CACHE` or /var/cache/berth/guests.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("BERTH_GUEST_CACHE").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE))
}

impl GuestImage {
    fn at(suite: Suite, dir: PathBuf, built_in: Option<Duration>) -> GuestImage {
        GuestImage { suite, image: dir.join(IMAGE), kernel: dir.join(KERNEL), initrd: dir.join(INITRD), dir, built_in }
    }

    /// The suite's cached image if it exists (a directory of that name is only ever made by
    /// rename of a finished build).
    pub fn cached(suite: Suite) -> Option<GuestImage> {
        let dir = cache_dir().join(image_name(suite));
        dir.join(IMAGE).is_file().then(|| GuestImage::at(suite, dir, None))
    }
}

/// The suite's cached image, built first if its hash is not in the cache. The build runs in
/// `<cache>/.build-<name>-<pid>` and is renamed into place only when finished; builds of
/// processes that died are removed first. Needs root, debootstrap and e2fsprogs, and
/// Debian's archive (`BERTH_GUEST_MIRROR` overrides it). The build's log goes to stderr.
pub fn ensure_image(suite: Suite) -> Result<GuestImage> {
    if let Some(img) = GuestImage::cached(suite) {
        return Ok(img);
    }
    let cache = cache_dir();
    let name = image_name(suite);
    for tool in ["debootstrap", "mkfs.ext4", "chroot"] {
        if find_in_path(tool).is_none() && !Path::new("/usr/sbin").join(tool).is_file() {
            return Err(GuestError::Missing(format!("{tool} not found: install Debian's {tool} (`make deps`)")));
        }
    }
    std::fs::create_dir_all(&cache).map_err(io(format!("creating {}", cache.display())))?;
    remove_stale_builds(&cache)?;
    let work = cache.join(format!(".build-{name}-{}", std::process::id()));
    std::fs::create_dir(&work).map_err(io(format!("creating {}", work.display())))?;
    let built_in = match build_into(suite, &work) {
        Ok(took) => took,
        Err(e) => {
            let _ = remove_build_dir(&work);
            return Err(e);
        }
    };
    let final_dir = cache.join(&name);
    match std::fs::rename(&work, &final_dir) {
        Ok(()) => {}
        // Another process finished the same build first: keep its image.
        Err(_) if final_dir.join(IMAGE).is_file() => remove_build_dir(&work)?,
        Err(e) => {
            let _ = remove_build_dir(&work);
            return Err(GuestError::Io { what: format!("renaming {} into place", work.display()), source: e });
        }
    }
    remove_older_images(suite, &cache, &name)?;
    Ok(GuestImage::at(suite, final_dir, Some(built_in)))
}

/// Runs the build script in `work`; on success only the image, kernel and initrd remain.
fn build_into(suite: Suite, work: &Path) -> Result<Duration> {
    let agent = work.join("berth-agent");
    let unit = work.join("berth-agent.service");
    std::fs::write(&agent, AGENT_SH).map_err(io(format!("writing {}", agent.display())))?;
    std::fs::write(&unit, AGENT_UNIT).map_err(io(format!("writing {}", unit.display())))?;
    let log_path = work.join("build.log");
    let log = std::fs::File::create(&log_path).map_err(io(format!("creating {}", log_path.display())))?;
    let log2 = log.try_clone().map_err(io("cloning the log's fd"))?;
    let mirror = std::env::var("BERTH_GUEST_MIRROR").unwrap_or_else(|_| DEFAULT_MIRROR.to_string());
    let start = Instant::now();
    let suite_name = suite.name();
    eprintln!("building the {suite_name} guest image in {} (log: {})", work.display(), log_path.display());
    let status = Command::new("bash")
        .arg("-c")
        .arg(suite.build_script())
        .env("WORK", work)
        .env("MIRROR", &mirror)
        .env("PACKAGES", suite.packages().join(" "))
        .env("AGENT", &agent)
        .env("AGENT_UNIT", &unit)
        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .status()
        .map_err(io("running bash"))?;
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    if !status.success() {
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        let log = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
        return Err(GuestError::Build { suite: suite_name, status: status.to_string(), log });
    }
    let took = start.elapsed();
    let marker = format!("[{suite_name}-build");
    for line in text.lines().filter(|l| l.starts_with(&marker)) {
        eprintln!("{line}");
    }
    eprintln!("{suite_name} guest image built in {took:.1?}");
    remove_build_dir(&work.join("root"))?;
    for f in [&agent, &unit] {
        std::fs::remove_file(f).map_err(io(format!("removing {}", f.display())))?;
    }
    Ok(took)
}

/// Removes the suite's images of other hashes (each ~800 MB on disk): only the current one
/// is used. Other suites' images stay.
fn remove_older_images(suite: Suite, cache: &Path, current: &str) -> Result<()> {
    let prefix = format!("{}-", suite.name());
    let entries = std::fs::read_dir(cache).map_err(io(format!("reading {}", cache.display())))?;
    for e in entries.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && name != current {
            eprintln!("removing the outdated guest image {}", e.path().display());
            remove_build_dir(&e.path())?;
        }
    }
    Ok(())
}

/// Removes `<cache>/.build-*-<pid>` of processes that no longer exist.
fn remove_stale_builds(cache: &Path) -> Result<()> {
    let entries = std::fs::read_dir(cache).map_err(io(format!("reading {}", cache.display())))?;
    for e in entries.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(".build-").and_then(|r| r.rsplit('-').next()) else {
            continue;
        };
        let Ok(pid) = pid.parse::<i32>() else {
            continue;
        };
        if !crate::util::pid_alive(pid) {
            eprintln!("removing the unfinished guest build {}", e.path().display());
            remove_build_dir(&e.path())?;
        }
    }
    Ok(())
}

/// Unmounts whatever an interrupted build left mounted below `dir` (the chroot's /proc),
/// then removes it without crossing into any other filesystem.
fn remove_build_dir(dir: &Path) -> Result<()> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").map_err(io("reading mountinfo"))?;
    let prefix = dir.to_string_lossy().into_owned();
    let mut below: Vec<&str> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&prefix) && m[prefix.len()..].starts_with('/'))
        .collect();
    // Deepest first.
    below.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in below {
        let _ = Command::new("umount").arg("-l").arg(m).status();
    }
    if !dir.exists() {
        return Ok(());
    }
    let st = Command::new("rm")
        .args(["-rf", "--one-file-system"])
        .arg(dir)
        .status()
        .map_err(io(format!("rm -rf {}", dir.display())))?;
    if !st.success() {
        return Err(GuestError::Io {
            what: format!("rm -rf {}", dir.display()),
            source: std::io::Error::other(st.to_string()),
        });
    }
    Ok(())
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

/// Which LSM the kernel starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lsm {
    /// Debian's default: AppArmor enabled, its profiles loaded by apparmor.service.
    AppArmor,
    /// `security=selinux selinux=1 enforcing=0`: SELinux permissive, Debian's default
    /// policy, the files labelled at build.
    SelinuxPermissive,
}

#[derive(Debug, Clone)]
pub struct BootOptions {
    pub lsm: Lsm,
    /// A host directory the guest sees read-only at [`SHARE_MOUNT`].
    pub share: Option<PathBuf>,
    pub memory_mib: u32,
    /// Bounds the boot until `systemctl is-system-running --wait` returns.
    pub boot_timeout: Duration,
    /// `NAME=value` pairs systemd puts in the environment of every unit it starts (the
    /// agent, containerd, dockerd), passed as `systemd.setenv=` on the kernel command line.
    pub manager_env: Vec<String>,
}

impl Default for BootOptions {
    fn default() -> BootOptions {
        BootOptions {
            lsm: Lsm::AppArmor,
            share: None,
            memory_mib: 2048,
            boot_timeout: Duration::from_secs(600),
            manager_env: Vec::new(),
        }
    }
}

/// What one command printed and how it ended.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    /// The script's exit code (124 when the guest's `timeout` ended it).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    /// stdout, trimmed.
    pub fn out(&self) -> &str {
        self.stdout.trim()
    }
}

/// A booted guest; dropping it kills and reaps qemu and removes its temporary directory.
pub struct Guest {
    child: Child,
    stream: UnixStream,
    buf: Vec<u8>,
    next_id: u64,
    work: Option<tempfile::TempDir>,
    console: PathBuf,
    /// From starting qemu to `systemctl is-system-running --wait` returning.
    pub boot_to_ready: Duration,
    /// What `systemctl is-system-running --wait` said ("running", "degraded", …).
    pub system_state: String,
}

impl Guest {
    /// Boots `img`, waits for systemd to finish starting up (polled through the agent, no
    /// fixed delay) and mounts the share, if any.
    ///
    /// A guest whose qemu dies before the agent starts is booted once more, its first
    /// console printed: the 6.12 kernel has been seen double-faulting in its first second
    /// under TCG (`-cpu max`, once in ~8 boots), which is qemu's emulation, not what is tested.
    pub fn boot(img: &GuestImage, opts: &BootOptions) -> Result<Guest> {
        match Guest::boot_once(img, opts) {
            Err(GuestError::Guest { what, console }) if what.starts_with(EARLY) => {
                eprintln!("the {} guest {what}; console tail:\n{console}\nbooting it once more", img.suite.name());
                Guest::boot_once(img, opts)
            }
            r => r,
        }
    }

    fn boot_once(img: &GuestImage, opts: &BootOptions) -> Result<Guest> {
        let qemu = find_in_path(QEMU).ok_or_else(|| {
            GuestError::Missing(format!("{QEMU} not found in PATH: install Debian's qemu-system-x86 (`make deps`)"))
        })?;
        // Under /tmp: the socket's path must stay under 108 bytes.
        let work = tempfile::Builder::new()
            .prefix(&format!("berth-{}-", img.suite.name()))
            .tempdir_in("/tmp")
            .map_err(io("creating a temporary directory"))?;
        let sock = work.path().join("cmd.sock");
        let console = work.path().join("console.log");
        let stderr_path = work.path().join("qemu.stderr");
        let stderr = std::fs::File::create(&stderr_path).map_err(io(format!("creating {}", stderr_path.display())))?;
        let mut cmdline = CMDLINE.to_string();
        if opts.lsm == Lsm::SelinuxPermissive {
            cmdline.push_str(" security=selinux selinux=1 enforcing=0");
        }
        for env in &opts.manager_env {
            cmdline.push_str(&format!(" systemd.setenv={env}"));
        }
        let mut cmd = Command::new(qemu);
        // thread=single: both vCPUs on one host thread. With a thread per vCPU, the guests'
        // kernels (trixie's 6.12, forky's 7.2) oopsed in 2 of 3 full CI runs on hosts like this
        // one, minutes into the tests: an int3 the kernel's text patching no longer knew of
        // ("Oops: int3" in update_curr, "Fatal exception in interrupt" in __schedule), the
        // mark of one vCPU running code another was rewriting. Slower (forky's tests: 467 s
        // to 641 s), but the guest stays up.
        cmd.args(["-accel", "tcg,thread=single", "-cpu", "max", "-smp", "2", "-m", &opts.memory_mib.to_string()])
            .args(["-nodefaults", "-display", "none", "-monitor", "none", "-no-reboot", "-nic", "none"])
            .arg("-serial")
            .arg(format!("file:{}", console.display()))
            .arg("-kernel")
            .arg(&img.kernel)
            .arg("-initrd")
            .arg(&img.initrd)
            .arg("-append")
            .arg(&cmdline)
            // snapshot=on: the guest's writes go to a temporary overlay qemu deletes; the
            // cached image is never changed.
            .arg("-drive")
            .arg(format!("file={},if=virtio,format=raw,snapshot=on", img.image.display()))
            .args(["-device", "virtio-rng-pci", "-device", "virtio-serial-pci"])
            .arg("-chardev")
            .arg(format!("socket,id=cmd,path={},server=on,wait=off", sock.display()))
            .args(["-device", "virtserialport,chardev=cmd,name=berth.cmd"]);
        if let Some(share) = &opts.share {
            cmd.arg("-virtfs")
                .arg(format!("local,path={},mount_tag={SHARE_TAG},security_model=none,readonly=on", share.display()));
        }
        let start = Instant::now();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(io(format!("starting {QEMU}")))?;
        let mut guest = Guest {
            child,
            // Replaced once qemu listens; a placeholder pair keeps the guard armed meanwhile.
            stream: UnixStream::pair().map_err(io("socketpair"))?.0,
            buf: Vec::new(),
            next_id: 1,
            work: None,
            console,
            boot_to_ready: Duration::ZERO,
            system_state: String::new(),
        };
        guest.work = Some(work);
        guest.stream = guest.connect(&sock, start + Duration::from_secs(30))?;
        if let Err(e) = guest.read_line_starting("BERTH-AGENT-READY", start + opts.boot_timeout, "start its agent") {
            return Err(match e {
                GuestError::Guest { what, console } => GuestError::Guest { what: format!("{EARLY} ({what})"), console },
                e => e,
            });
        }
        // The first command is answered once the agent runs; `--wait` returns once systemd
        // has finished starting up (or failed to). If it does not, the jobs still queued
        // say what hangs.
        let left = opts.boot_timeout.saturating_sub(start.elapsed());
        let state = guest.run("systemctl is-system-running --wait", left);
        let state = match state {
            Ok(s) if s.code != 124 => s,
            other => {
                let jobs = guest
                    .run("systemctl list-jobs --no-pager; systemctl --failed --no-pager", Duration::from_secs(60))
                    .map(|j| j.stdout)
                    .unwrap_or_else(|e| format!("(no answer: {e})"));
                return Err(guest.failed(format!(
                    "did not finish starting up within {:?} ({}); jobs:\n{jobs}",
                    opts.boot_timeout,
                    match other {
                        Ok(s) => format!("is-system-running said {:?}", s.out()),
                        Err(e) => e.to_string(),
                    }
                )));
            }
        };
        guest.boot_to_ready = start.elapsed();
        guest.system_state = state.out().to_string();
        if opts.share.is_some() {
            let m = guest.run(
                &format!("mkdir -p {SHARE_MOUNT} && mount -t 9p -o trans=virtio,version=9p2000.L,ro {SHARE_TAG} {SHARE_MOUNT}"),
                Duration::from_secs(60),
            )?;
            if m.code != 0 {
                return Err(guest.failed(format!("could not mount the host share: {}", m.stderr.trim())));
            }
        }
        Ok(guest)
    }

    /// Connects to qemu's socket once it exists.
    fn connect(&mut self, sock: &Path, deadline: Instant) -> Result<UnixStream> {
        loop {
            match UnixStream::connect(sock) {
                Ok(s) => return Ok(s),
                Err(_) if Instant::now() < deadline => {
                    self.check_alive()?;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(self.failed(format!("offered no command socket ({e})"))),
            }
        }
    }

    fn check_alive(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(st)) => {
                let stderr = self
                    .work
                    .as_ref()
                    .and_then(|w| std::fs::read_to_string(w.path().join("qemu.stderr")).ok())
                    .unwrap_or_default();
                Err(self.failed(format!("'s qemu exited ({st}); stderr: {}", stderr.trim())))
            }
            Err(e) => Err(GuestError::Io { what: "waiting for qemu".into(), source: e }),
        }
    }

    fn failed(&self, what: String) -> GuestError {
        GuestError::Guest { what, console: self.console_tail(60) }
    }

    /// The whole serial console so far.
    pub fn console(&self) -> String {
        let raw = std::fs::read(&self.console).unwrap_or_default();
        String::from_utf8_lossy(&raw).replace('\r', "")
    }

    /// The kernel's first reports of trouble (each with the lines after it), then the last
    /// `lines` lines: a hung task's trace alone, in the tail, does not say which CPU stalled
    /// or why the guest went away.
    fn console_tail(&self, lines: usize) -> String {
        let c = self.console();
        let v: Vec<&str> = c.lines().collect();
        let tail_from = v.len().saturating_sub(lines);
        let mut out = String::new();
        let mut shown = 0;
        let mut i = 0;
        while i < tail_from && shown < 4 {
            if KERNEL_TROUBLE.iter().any(|t| v[i].contains(t)) {
                let end = (i + 25).min(tail_from);
                out.push_str(&format!("[console lines {}..{}]\n{}\n", i + 1, end, v[i..end].join("\n")));
                shown += 1;
                i = end;
            } else {
                i += 1;
            }
        }
        if !out.is_empty() {
            out.push_str("[console tail]\n");
        }
        out.push_str(&v[tail_from..].join("\n"));
        out
    }

    /// Runs `script` with bash in the guest, as root, in berth-agent.service's cgroup, stdin
    /// /dev/null. The guest ends it after `timeout` (exit code 124); the host gives up a
    /// little later. One command at a time: the agent answers in order.
    pub fn run(&mut self, script: &str, timeout: Duration) -> Result<CmdOutput> {
        let id = self.next_id;
        self.next_id += 1;
        let b64 = base64::engine::general_purpose::STANDARD.encode(script);
        let secs = timeout.as_secs().max(1);
        let line = format!("{id} {secs} {b64}\n");
        self.stream.write_all(line.as_bytes()).map_err(io("writing to the guest's command port"))?;
        let deadline = Instant::now() + timeout + Duration::from_secs(15);
        let rest = self.read_line_starting(&format!("BERTH-DONE {id} "), deadline, &format!("answer {script:?}"))?;
        parse_answer(&rest)
    }

    /// Reads lines from the command port until one starts with `prefix` and returns the
    /// rest of it; other lines (answers to commands the host gave up on) are skipped.
    fn read_line_starting(&mut self, prefix: &str, deadline: Instant, what: &str) -> Result<String> {
        self.stream.set_read_timeout(Some(Duration::from_millis(200))).map_err(io("set_read_timeout"))?;
        loop {
            while let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=nl).collect();
                let line = String::from_utf8_lossy(&line).trim_end().to_string();
                if let Some(rest) = line.strip_prefix(prefix) {
                    return Ok(rest.to_string());
                }
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    // qemu closes the port when it exits (a panic or a reboot ends it, as
                    // -no-reboot says): give it a moment so its status and stderr are told.
                    let until = Instant::now() + Duration::from_secs(5);
                    while Instant::now() < until {
                        self.check_alive()?;
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    return Err(self.failed("closed the command port (qemu still runs)".into()));
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    self.check_alive()?;
                    if Instant::now() >= deadline {
                        return Err(GuestError::Timeout { what: what.to_string(), console: self.console_tail(60) });
                    }
                }
                Err(e) => return Err(GuestError::Io { what: "reading the guest's command port".into(), source: e }),
            }
        }
    }

    /// Powers the guest off (best effort, bounded) and reaps qemu.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        self.work = None;
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `<code> <base64 stdout> <base64 stderr>` (either may be empty).
fn parse_answer(rest: &str) -> Result<CmdOutput> {
    let mut it = rest.split(' ');
    let code = it
        .next()
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| GuestError::Protocol(format!("no exit code in {rest:?}")))?;
    let dec = |s: Option<&str>| -> Result<String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(s.unwrap_or("").trim())
            .map_err(|e| GuestError::Protocol(format!("{e} in {rest:?}")))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    let stdout = dec(it.next())?;
    let stderr = dec(it.next())?;
    Ok(CmdOutput { code, stdout, stderr })
}

/// Copies `from` into the share directory as `name`.
pub fn copy_into(share: &Path, name: &str, from: &Path) -> Result<()> {
    let to = share.join(name);
    std::fs::copy(from, &to).map_err(io(format!("copying {} to {}", from.display(), to.display())))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_decoded() {
        let o = parse_answer("3 aGkK ").expect("answer");
        assert_eq!((o.code, o.stdout.as_str(), o.stderr.as_str()), (3, "hi\n", ""));
        assert!(parse_answer("x aGk= aGk=").is_err());
        assert!(parse_answer("0 !!! ").is_err());
    }

    #[test]
    fn image_name_is_stable_and_short() {
        for suite in [Suite::Trixie, Suite::Forky] {
            let n = image_name(suite);
            assert_eq!(n, image_name(suite));
            let prefix = format!("{}-", suite.name());
            assert!(n.starts_with(&prefix) && n.len() == prefix.len() + 16, "{n}");
        }
        assert_ne!(image_name(Suite::Trixie)[7..], image_name(Suite::Forky)[6..]);
    }
}
