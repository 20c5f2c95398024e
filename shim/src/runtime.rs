//! Invoking the OCI runtime binary (berth, or any runc-compatible CLI) with runc's flags, exactly
//! as containerd-shim-runc-v2 does, and choosing which binary and root to use.

use std::{
    ffi::OsString,
    fs,
    io::{Read, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicBool, Ordering},
};

use containerd_shim::monitor::{monitor_subscribe, wait_pid, Subscription, Topic};
use protobuf::well_known_types::any::Any;
use serde::{Deserialize, Serialize};

use crate::error::{io, Error, Result};

pub const DEFAULT_BINARY: &str = "berth";
pub const DEFAULT_ROOT: &str = "/run/containerd/berth";
/// Lets the whole containerd instance pick the runtime binary without per-container options:
/// `ctr` cannot pass runc-style options to a runtime type other than runc's.
pub const RUNTIME_ENV: &str = "BERTH_RUNTIME";
/// Written into the bundle at create so that `delete` of a dead shim finds the same binary/root.
pub const CONFIG_FILE: &str = "berth-shim.json";
const LOG_FILE: &str = "log.json";

/// Set once the long-lived shim has installed its reaper: from then on a child's exit status
/// can only be learnt from the reaper's monitor, never from `Child::wait`.
static REAPER_MODE: AtomicBool = AtomicBool::new(false);

pub fn enable_reaper_mode() {
    REAPER_MODE.store(true, Ordering::SeqCst);
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RuntimeConfig {
    pub binary: String,
    /// Root without the namespace component; the namespace is appended as runc's shim does.
    pub root: String,
    #[serde(default)]
    pub systemd_cgroup: bool,
    #[serde(default)]
    pub no_pivot_root: bool,
    #[serde(default)]
    pub no_new_keyring: bool,
    /// A Checkpoint request without runc's CheckpointOptions stops the task, as `Exit:
    /// true` does. Docker 28 sends those options only to a runtime of type
    /// `io.containerd.runc.v2` (docs/shim.md, "Checkpoint and restore"), so on berth's shim
    /// `docker checkpoint create` would otherwise leave the container running.
    #[serde(default)]
    pub checkpoint_exit_without_options: bool,
}

/// The options file named by `runtimeoptions.v1.Options`' config_path: top-level keys
/// with the names of runc's options (docs/examples/shim.toml).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct OptionsFile {
    binary_name: Option<String>,
    root: Option<String>,
    systemd_cgroup: Option<bool>,
    no_pivot_root: Option<bool>,
    no_new_keyring: Option<bool>,
    checkpoint_exit_without_options: Option<bool>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        let binary =
            std::env::var(RUNTIME_ENV).ok().filter(|b| !b.is_empty()).unwrap_or_else(|| DEFAULT_BINARY.to_string());
        RuntimeConfig {
            binary,
            root: DEFAULT_ROOT.to_string(),
            systemd_cgroup: false,
            no_pivot_root: false,
            no_new_keyring: false,
            checkpoint_exit_without_options: false,
        }
    }
}

impl RuntimeConfig {
    /// Reads the task options containerd passes: runc-style `containerd.runc.v1.Options`
    /// (BinaryName, Root, SystemdCgroup, ...) or `runtimeoptions.v1.Options` whose
    /// `config_path` names a TOML file with the same keys, or, without a path, whose
    /// `config_body` holds that TOML itself: containerd's CRI plugin sends a non-runc
    /// runtime's `options` table so (`GenerateRuntimeOptions`), and in containerd 2.x that is
    /// where a handler's `SystemdCgroup = true` arrives. Anything else gives the defaults.
    pub fn from_options(options: Option<&Any>) -> Result<Self> {
        let mut cfg = RuntimeConfig::default();
        let Some(any) = options else {
            return Ok(cfg);
        };
        if any.type_url.ends_with("runc.v1.Options") {
            use protobuf::Message;
            let o = containerd_shim_protos::shim::oci::Options::parse_from_bytes(&any.value)?;
            if !o.binary_name.is_empty() {
                cfg.binary = o.binary_name;
            }
            if !o.root.is_empty() {
                cfg.root = o.root;
            }
            cfg.systemd_cgroup = o.systemd_cgroup;
            cfg.no_pivot_root = o.no_pivot_root;
            cfg.no_new_keyring = o.no_new_keyring;
        } else if any.type_url.ends_with("runtimeoptions.v1.Options") {
            let o = RuntimeOptions::decode(&any.value)
                .ok_or_else(|| Error::InvalidArgument("malformed runtimeoptions.v1.Options".into()))?;
            if !o.config_path.is_empty() {
                let text = fs::read_to_string(&o.config_path).map_err(io(format!("read {}", o.config_path)))?;
                cfg.apply_toml(&text)?;
            } else if !o.config_body.is_empty() {
                let text = String::from_utf8(o.config_body)
                    .map_err(|_| Error::InvalidArgument("runtime config body is not UTF-8".into()))?;
                cfg.apply_toml(&text)?;
            }
        }
        Ok(cfg)
    }

    /// Applies the keys of an options file (TOML, the names of runc's options) that it sets;
    /// keys it does not know are ignored, as containerd-shim-runc-v2 ignores them.
    fn apply_toml(&mut self, text: &str) -> Result<()> {
        let file: OptionsFile =
            toml::from_str(text).map_err(|e| Error::InvalidArgument(format!("runtime config: {e}")))?;
        if let Some(binary) = file.binary_name {
            self.binary = binary;
        }
        if let Some(root) = file.root {
            self.root = root;
        }
        if let Some(v) = file.systemd_cgroup {
            self.systemd_cgroup = v;
        }
        if let Some(v) = file.no_pivot_root {
            self.no_pivot_root = v;
        }
        if let Some(v) = file.no_new_keyring {
            self.no_new_keyring = v;
        }
        if let Some(v) = file.checkpoint_exit_without_options {
            self.checkpoint_exit_without_options = v;
        }
        Ok(())
    }

    pub fn save(&self, bundle: &Path) -> Result<()> {
        let data = serde_json::to_vec(self)?;
        fs::write(bundle.join(CONFIG_FILE), data).map_err(io("write runtime config"))
    }

    pub fn load(bundle: &Path) -> Self {
        fs::read(bundle.join(CONFIG_FILE)).ok().and_then(|d| serde_json::from_slice(&d).ok()).unwrap_or_default()
    }
}

/// `runtimeoptions.v1.Options`: `{ string type_url = 1; string config_path = 2; bytes
/// config_body = 3; }`; decoding it by hand avoids generating a proto for two fields.
#[derive(Debug, Default, PartialEq)]
struct RuntimeOptions {
    config_path: String,
    config_body: Vec<u8>,
}

impl RuntimeOptions {
    /// None when the bytes are not a well-formed message of that shape.
    fn decode(mut buf: &[u8]) -> Option<RuntimeOptions> {
        fn varint(buf: &mut &[u8]) -> Option<u64> {
            let mut v = 0u64;
            for shift in (0..64).step_by(7) {
                let (&b, rest) = buf.split_first()?;
                *buf = rest;
                v |= u64::from(b & 0x7f) << shift;
                if b & 0x80 == 0 {
                    return Some(v);
                }
            }
            None
        }
        let mut o = RuntimeOptions::default();
        while !buf.is_empty() {
            let key = varint(&mut buf)?;
            let (field, wire) = (key >> 3, key & 7);
            match wire {
                0 => {
                    varint(&mut buf)?;
                }
                2 => {
                    let len = usize::try_from(varint(&mut buf)?).ok()?;
                    if len > buf.len() {
                        return None;
                    }
                    let (val, rest) = buf.split_at(len);
                    buf = rest;
                    match field {
                        2 => o.config_path = String::from_utf8(val.to_vec()).ok()?,
                        3 => o.config_body = val.to_vec(),
                        _ => {}
                    }
                }
                _ => return None,
            }
        }
        Some(o)
    }
}

/// What the runtime process gets as stdio; `None` is /dev/null.
#[derive(Default)]
pub struct ChildStdio {
    pub stdin: Option<fs::File>,
    pub stdout: Option<fs::File>,
    pub stderr: Option<fs::File>,
}

pub use containerd_shim_protos::shim::oci::CheckpointOptions;

fn checkpoint_args(mut a: Vec<OsString>, id: &str, image_path: &str, o: &CheckpointOptions) -> Vec<OsString> {
    let image = if o.image_path.is_empty() { image_path } else { o.image_path.as_str() };
    a.extend(["--image-path".into(), image.into()]);
    if !o.work_path.is_empty() {
        a.extend(["--work-path".into(), o.work_path.clone().into()]);
    }
    if !o.cgroups_mode.is_empty() {
        a.extend(["--manage-cgroups-mode".into(), o.cgroups_mode.clone().into()]);
    }
    for (on, flag) in [
        (!o.exit, "--leave-running"),
        (o.open_tcp, "--tcp-established"),
        (o.external_unix_sockets, "--ext-unix-sk"),
        (o.terminal, "--shell-job"),
        (o.file_locks, "--file-locks"),
    ] {
        if on {
            a.push(flag.into());
        }
    }
    a.push(id.into());
    a
}

pub struct Runtime {
    binary: String,
    root: PathBuf,
    log: PathBuf,
    systemd_cgroup: bool,
    no_pivot_root: bool,
    no_new_keyring: bool,
}

impl Runtime {
    pub fn new(cfg: &RuntimeConfig, namespace: &str, bundle: &Path) -> Self {
        Runtime {
            binary: cfg.binary.clone(),
            root: Path::new(&cfg.root).join(namespace),
            log: bundle.join(LOG_FILE),
            systemd_cgroup: cfg.systemd_cgroup,
            no_pivot_root: cfg.no_pivot_root,
            no_new_keyring: cfg.no_new_keyring,
        }
    }

    fn args(&self, sub: &str) -> Vec<OsString> {
        let mut a: Vec<OsString> = vec![
            "--root".into(),
            self.root.clone().into(),
            "--log".into(),
            self.log.clone().into(),
            "--log-format".into(),
            "json".into(),
        ];
        if self.systemd_cgroup {
            a.push("--systemd-cgroup".into());
        }
        a.push(sub.into());
        a
    }

    pub fn create(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        console_socket: Option<&Path>,
        stdio: ChildStdio,
    ) -> Result<()> {
        let mut a = self.args("create");
        a.extend(["--bundle".into(), bundle.into(), "--pid-file".into(), pid_file.into()]);
        if let Some(s) = console_socket {
            a.extend(["--console-socket".into(), s.into()]);
        }
        if self.no_pivot_root {
            a.push("--no-pivot".into());
        }
        if self.no_new_keyring {
            a.push("--no-new-keyring".into());
        }
        a.push(id.into());
        self.run("create", a, stdio, None).map(drop)
    }

    pub fn exec(
        &self,
        id: &str,
        process: &Path,
        pid_file: &Path,
        console_socket: Option<&Path>,
        stdio: ChildStdio,
    ) -> Result<()> {
        let mut a = self.args("exec");
        a.extend(["--process".into(), process.into(), "--pid-file".into(), pid_file.into(), "--detach".into()]);
        if let Some(s) = console_socket {
            a.extend(["--console-socket".into(), s.into()]);
        }
        a.push(id.into());
        self.run("exec", a, stdio, None).map(drop)
    }

    pub fn start(&self, id: &str) -> Result<()> {
        self.simple("start", &[id])
    }

    pub fn kill(&self, id: &str, signal: u32, all: bool) -> Result<()> {
        let sig = signal.to_string();
        if all {
            self.simple("kill", &["--all", id, &sig])
        } else {
            self.simple("kill", &[id, &sig])
        }
    }

    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        if force {
            self.simple("delete", &["--force", id])
        } else {
            self.simple("delete", &[id])
        }
    }

    pub fn pause(&self, id: &str) -> Result<()> {
        self.simple("pause", &[id])
    }

    pub fn resume(&self, id: &str) -> Result<()> {
        self.simple("resume", &[id])
    }

    /// `checkpoint` with containerd's runc CheckpointOptions mapped to runc's flags (the
    /// container keeps running unless `exit`).
    pub fn checkpoint(&self, id: &str, image_path: &str, o: &CheckpointOptions) -> Result<()> {
        let a = checkpoint_args(self.args("checkpoint"), id, image_path, o);
        self.run("checkpoint", a, ChildStdio::default(), None).map(drop)
    }

    /// `restore --detach` of the checkpoint containerd unpacked into `image_path` (a task
    /// created with `CreateTaskRequest.checkpoint`), in place of `create`: the init runs again
    /// and its pid is written to `pid_file`. criu connects the init's stdio pipes to `stdio`.
    /// The flags are those containerd-shim-runc-v2 gives runc for the same request; a
    /// terminal's new master is sent to `console_socket`.
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        image_path: &str,
        parent_path: &str,
        console_socket: Option<&Path>,
        stdio: ChildStdio,
    ) -> Result<()> {
        let mut a = self.args("restore");
        a.extend(["--image-path".into(), image_path.into()]);
        // criu's log and work files beside the bundle, not in containerd's image directory.
        a.extend(["--work-path".into(), bundle.join("criu-work").into()]);
        if !parent_path.is_empty() {
            a.extend(["--parent-path".into(), parent_path.into()]);
        }
        a.extend(["--detach".into(), "--pid-file".into(), pid_file.into(), "--bundle".into(), bundle.into()]);
        if let Some(s) = console_socket {
            a.extend(["--console-socket".into(), s.into()]);
        }
        if self.no_pivot_root {
            a.push("--no-pivot".into());
        }
        a.push(id.into());
        self.run("restore", a, stdio, None).map(drop)
    }

    /// `update --resources -` with the LinuxResources JSON on stdin.
    pub fn update(&self, id: &str, resources_json: &[u8]) -> Result<()> {
        let mut a = self.args("update");
        a.extend(["--resources".into(), "-".into(), id.into()]);
        self.run("update", a, ChildStdio::default(), Some(resources_json)).map(drop)
    }

    pub fn ps(&self, id: &str) -> Result<Vec<u32>> {
        let mut a = self.args("ps");
        a.extend(["--format".into(), "json".into(), id.into()]);
        let out = self.run_capture("ps", a)?;
        let pids: Option<Vec<u32>> = serde_json::from_slice(&out)?;
        Ok(pids.unwrap_or_default())
    }

    fn simple(&self, command: &'static str, rest: &[&str]) -> Result<()> {
        let mut a = self.args(command);
        a.extend(rest.iter().map(OsString::from));
        self.run(command, a, ChildStdio::default(), None).map(drop)
    }

    fn run_capture(&self, command: &'static str, args: Vec<OsString>) -> Result<Vec<u8>> {
        self.spawn_wait(command, args, ChildStdio::default(), None, true)
    }

    fn run(
        &self,
        command: &'static str,
        args: Vec<OsString>,
        stdio: ChildStdio,
        input: Option<&[u8]>,
    ) -> Result<Vec<u8>> {
        self.spawn_wait(command, args, stdio, input, false)
    }

    fn spawn_wait(
        &self,
        command: &'static str,
        args: Vec<OsString>,
        stdio: ChildStdio,
        input: Option<&[u8]>,
        capture: bool,
    ) -> Result<Vec<u8>> {
        let mut cmd = Command::new(&self.binary);
        cmd.args(&args);
        cmd.stdin(match (input, stdio.stdin) {
            (Some(_), _) => Stdio::piped(),
            (None, Some(f)) => Stdio::from(f),
            (None, None) => Stdio::null(),
        });
        // create and exec hand their stdio to the container's process, which outlives the
        // runtime: a capture pipe would never reach EOF, so a container without stdio (a CRI
        // pod sandbox) gets /dev/null as runc's shim gives it, and errors come from log.json.
        // restore too: criu hands its own stdio (the runtime's) to the restored init where
        // the checkpointed one had stdio from outside. Other commands' stderr is captured for
        // the error message.
        let starts_process = matches!(command, "create" | "exec" | "run" | "restore");
        let stderr_captured = stdio.stderr.is_none() && !starts_process;
        cmd.stdout(match (capture, stdio.stdout) {
            (true, _) => Stdio::piped(),
            (false, Some(f)) => Stdio::from(f),
            (false, None) => Stdio::null(),
        });
        cmd.stderr(match stdio.stderr {
            Some(f) => Stdio::from(f),
            None if starts_process => Stdio::null(),
            None => Stdio::piped(),
        });
        let failed = |message: String| Error::Runtime { binary: self.binary.clone(), command, message };
        // Subscribe before spawning: the reaper may collect the child before spawn returns.
        let sub = if REAPER_MODE.load(Ordering::SeqCst) { Some(monitor_subscribe(Topic::Pid)?) } else { None };
        let mut child = cmd.spawn().map_err(|e| failed(e.to_string()))?;
        // The Command keeps the container's stdio fds until dropped; close our copies now so
        // the only writers left are the runtime and the container.
        drop(cmd);
        if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin.write_all(data).map_err(io("write runtime stdin"))?;
        }
        let mut out = Vec::new();
        if let Some(mut o) = child.stdout.take() {
            o.read_to_end(&mut out).map_err(io("read runtime stdout"))?;
        }
        let mut err = Vec::new();
        if let Some(mut e) = child.stderr.take() {
            e.read_to_end(&mut err).map_err(io("read runtime stderr"))?;
        }
        let code = wait_child(child, sub)?;
        if code == 0 {
            return Ok(out);
        }
        let mut message = last_log_error(&self.log).unwrap_or_default();
        if message.is_empty() && stderr_captured {
            message = String::from_utf8_lossy(&err).trim().to_string();
        }
        if message.is_empty() {
            message = format!("exit status {code}");
        }
        Err(failed(message))
    }
}

fn wait_child(mut child: Child, sub: Option<Subscription>) -> Result<i32> {
    match sub {
        Some(sub) => {
            let pid = i32::try_from(child.id()).unwrap_or(-1);
            Ok(wait_pid(pid, sub))
        }
        None => {
            let status = child.wait().map_err(io("wait runtime"))?;
            use std::os::unix::process::ExitStatusExt;
            Ok(status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(255))
        }
    }
}

/// The runtime writes runc-style JSON log lines; the last `error`-level message explains a
/// failure better than an exit code. The log is truncated after reading so it stays small and
/// an old error is never reported for a new failure.
fn last_log_error(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    let _ = fs::write(path, b"");
    text.lines().rev().find_map(|line| {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        if v.get("level")?.as_str()? == "error" {
            Some(v.get("msg")?.as_str()?.to_string())
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtimeoptions_config_path_is_decoded() {
        // type_url = "x" (field 1), config_path = "/etc/b.toml" (field 2)
        let mut buf = vec![0x0a, 1, b'x', 0x12, 11];
        buf.extend_from_slice(b"/etc/b.toml");
        let o = RuntimeOptions::decode(&buf).unwrap();
        assert_eq!((o.config_path.as_str(), o.config_body.len()), ("/etc/b.toml", 0));
        assert_eq!(RuntimeOptions::decode(&[0x12, 200]), None);
    }

    /// Docker gives berth's shim no checkpoint options; the options file decides what a
    /// checkpoint without them does (docs/shim.md).
    #[test]
    fn checkpoint_exit_without_options_is_read_from_the_options_file() {
        let mut cfg = RuntimeConfig::default();
        assert!(!cfg.checkpoint_exit_without_options);
        cfg.apply_toml("SystemdCgroup = true\nCheckpointExitWithoutOptions = true\n").unwrap();
        assert!(cfg.checkpoint_exit_without_options && cfg.systemd_cgroup);
        // A bundle's config written before the key existed still loads.
        let old: RuntimeConfig = serde_json::from_str(r#"{"binary":"b","root":"/r"}"#).unwrap();
        assert!(!old.checkpoint_exit_without_options);
    }

    /// containerd 2.x's CRI plugin sends a non-runc handler's `options` table as TOML in
    /// config_body (field 3), as go-toml v2 writes it (single-quoted strings).
    #[test]
    fn runtimeoptions_config_body_gives_the_options() {
        let body = b"BinaryName = '/usr/local/bin/berth'\nSystemdCgroup = true\n";
        let mut value = vec![0x1a, body.len() as u8];
        value.extend_from_slice(body);
        let any = Any {
            type_url: "type.googleapis.com/runtimeoptions.v1.Options".into(),
            value: value.clone(),
            ..Default::default()
        };
        let cfg = RuntimeConfig::from_options(Some(&any)).unwrap();
        assert_eq!(cfg.binary, "/usr/local/bin/berth");
        assert!(cfg.systemd_cgroup);
        assert_eq!(cfg.root, DEFAULT_ROOT);
        // A path wins over a body, as in containerd (it sets the body only without a path).
        let file = std::env::temp_dir().join(format!("berth-shim-opts-{}.toml", std::process::id()));
        fs::write(&file, "Root = '/r'\n").unwrap();
        let path = file.to_str().unwrap().as_bytes();
        let mut both = vec![0x12, path.len() as u8];
        both.extend_from_slice(path);
        both.extend_from_slice(&value);
        let cfg = RuntimeConfig::from_options(Some(&Any { value: both, ..any.clone() })).unwrap();
        let _ = fs::remove_file(&file);
        assert_eq!((cfg.root.as_str(), cfg.systemd_cgroup), ("/r", false));
        let bad = Any { value: vec![0x1a, 2, 0xff, 0xfe], ..any };
        assert!(RuntimeConfig::from_options(Some(&bad)).is_err());
    }

    #[test]
    fn toml_options_override_defaults() {
        let mut cfg = RuntimeConfig::default();
        cfg.apply_toml("# c\nBinaryName = \"/usr/sbin/runc\"\nSystemdCgroup = true\n[x]\nRoot = \"/x\"\n").unwrap();
        assert_eq!(cfg.binary, "/usr/sbin/runc");
        assert!(cfg.systemd_cgroup);
        assert_eq!(cfg.root, DEFAULT_ROOT, "a key of another table is not an option");
        assert!(cfg.apply_toml("garbage").is_err());
        assert!(cfg.apply_toml("SystemdCgroup = \"yes\"").is_err());
    }

    /// The hand-written reader this replaced took `"v" # comment` as the value `v" # comment`.
    #[test]
    fn toml_options_with_trailing_comments_and_unknown_keys() {
        let mut cfg = RuntimeConfig::default();
        let text = "BinaryName = \"/usr/local/bin/berth\" # the runtime\n\
                    Root = '/run/b' # literal string\n\
                    NoPivotRoot = true # for ramdisks\n\
                    ShimCgroup = \"/x\"\n";
        cfg.apply_toml(text).unwrap();
        assert_eq!(cfg.binary, "/usr/local/bin/berth");
        assert_eq!(cfg.root, "/run/b");
        assert!(cfg.no_pivot_root);
        assert!(!cfg.no_new_keyring);
    }

    #[test]
    fn create_arguments_match_runc_shim() {
        let cfg = RuntimeConfig {
            binary: "b".into(),
            root: "/r".into(),
            systemd_cgroup: true,
            no_pivot_root: false,
            no_new_keyring: false,
            checkpoint_exit_without_options: false,
        };
        let rt = Runtime::new(&cfg, "ns", Path::new("/bundle"));
        let a: Vec<String> = rt.args("create").into_iter().map(|s| s.into_string().unwrap()).collect();
        assert_eq!(
            a,
            ["--root", "/r/ns", "--log", "/bundle/log.json", "--log-format", "json", "--systemd-cgroup", "create"]
        );
    }
}

#[cfg(test)]
mod checkpoint_tests {
    use super::*;

    #[test]
    fn checkpoint_options_map_to_runc_flags() {
        let strs = |a: Vec<OsString>| a.into_iter().map(|s| s.to_string_lossy().into_owned()).collect::<Vec<_>>();
        let default = strs(checkpoint_args(vec![], "c1", "/ck", &CheckpointOptions::default()));
        assert_eq!(default, ["--image-path", "/ck", "--leave-running", "c1"]);
        let o = CheckpointOptions {
            exit: true,
            open_tcp: true,
            file_locks: true,
            cgroups_mode: "full".into(),
            work_path: "/w".into(),
            ..Default::default()
        };
        let all = strs(checkpoint_args(vec![], "c1", "/ck", &o));
        assert_eq!(
            all,
            [
                "--image-path",
                "/ck",
                "--work-path",
                "/w",
                "--manage-cgroups-mode",
                "full",
                "--tcp-established",
                "--file-locks",
                "c1"
            ]
        );
    }
}
