//! A handle on the runtime binary under test, driven through runc's CLI.

use serde_json::Value;
use std::ffi::{CString, OsString};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one runtime invocation may take before the test calls it hung.
/// Generous: the machine is shared with compilers.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The runtime binary: $BERTH, or the workspace's newest build.
pub fn runtime_binary() -> PathBuf {
    crate::util::workspace_binary("berth", "BERTH")
}

/// What one invocation did.
#[derive(Debug, Clone)]
pub struct Out {
    pub argv: String,
    /// Exit code, or -1 when killed by a signal.
    pub code: i32,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.code == 0
    }

    /// Panics with the whole invocation unless it exited 0.
    pub fn expect_ok(&self, what: &str) -> &Self {
        assert!(self.ok(), "{what}: expected success\n{self}");
        self
    }

    /// Panics unless the invocation exited non-zero.
    pub fn expect_fail(&self, what: &str) -> &Self {
        assert!(!self.ok() && self.signal.is_none(), "{what}: expected a clean failure (non-zero exit)\n{self}");
        self
    }

    /// Non-empty lines of stderr.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr.lines().filter(|l| !l.trim().is_empty()).collect()
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{self}"))
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "  $ {}\n  exit: {} signal: {:?}\n  stdout: {:?}\n  stderr: {:?}",
            self.argv, self.code, self.signal, self.stdout, self.stderr
        )
    }
}

/// One invocation being prepared.
pub struct Invocation {
    program: PathBuf,
    args: Vec<OsString>,
    stdin: Option<Vec<u8>>,
    stdout_file: Option<PathBuf>,
    stderr_file: Option<PathBuf>,
    leak_fds: Vec<PathBuf>,
    timeout: Duration,
    cwd: Option<PathBuf>,
    envs: Vec<(OsString, OsString)>,
}

impl Invocation {
    pub fn new(program: &Path) -> Invocation {
        Invocation {
            program: program.to_path_buf(),
            args: Vec::new(),
            stdin: None,
            stdout_file: None,
            stderr_file: None,
            leak_fds: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            cwd: None,
            envs: Vec::new(),
        }
    }

    pub fn arg(mut self, a: impl Into<OsString>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, it: I) -> Self {
        self.args.extend(it.into_iter().map(Into::into));
        self
    }

    pub fn stdin(mut self, bytes: &[u8]) -> Self {
        self.stdin = Some(bytes.to_vec());
        self
    }

    /// Sends stdout of the runtime (and of any container that inherits it) to
    /// this file instead of capturing it; stderr stays captured. Needed for
    /// `create`: a detached init keeps its stdio open after the runtime exits,
    /// so a pipe would never reach EOF.
    pub fn stdio_to(mut self, path: &Path) -> Self {
        self.stdout_file = Some(path.to_path_buf());
        self
    }

    /// stderr to the file at `path` (appended to), for a detached init's stderr after the
    /// runtime has exited; the result's `stderr` is what the file held when it did.
    pub fn stderr_to(mut self, path: &Path) -> Self {
        self.stderr_file = Some(path.to_path_buf());
        self
    }

    /// Opens these host paths without O_CLOEXEC in the runtime process, the
    /// way a careless caller would leak them (CVE-2024-21626).
    pub fn leak_fds(mut self, paths: &[PathBuf]) -> Self {
        self.leak_fds = paths.to_vec();
        self
    }

    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    pub fn cwd(mut self, dir: &Path) -> Self {
        self.cwd = Some(dir.to_path_buf());
        self
    }

    /// Sets one variable in the runtime's environment (e.g. BERTH_FAILPOINT).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }

    pub fn run(self) -> Out {
        let argv = std::iter::once(self.program.as_os_str().to_owned())
            .chain(self.args.iter().cloned())
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        cmd.envs(self.envs.iter().map(|(k, v)| (k, v)));
        if let Some(d) = &self.cwd {
            cmd.current_dir(d);
        }
        // Files, not pipes: see `stdio_to`. The capture files are anonymous.
        // stderr is always captured so the runtime's own errors are visible.
        let err_capture = match &self.stderr_file {
            Some(p) => File::options()
                .create(true)
                .append(true)
                .read(true)
                .open(p)
                .unwrap_or_else(|e| panic!("cannot open {}: {e}", p.display())),
            None => tempfile::tempfile().expect("cannot create capture file"),
        };
        cmd.stderr(err_capture.try_clone().expect("cannot dup stderr capture"));
        let mut err_f = Some(err_capture);
        let mut out_f = match &self.stdout_file {
            Some(p) => {
                let f = File::options()
                    .create(true)
                    .append(true)
                    .open(p)
                    .unwrap_or_else(|e| panic!("cannot open {}: {e}", p.display()));
                cmd.stdout(f);
                None
            }
            None => {
                let o = tempfile::tempfile().expect("cannot create capture file");
                cmd.stdout(o.try_clone().expect("dup"));
                Some(o)
            }
        };
        let mut stdin_file = None;
        match &self.stdin {
            Some(bytes) => {
                let mut f = tempfile::tempfile().expect("cannot create stdin file");
                f.write_all(bytes).expect("cannot fill stdin file");
                f.seek(SeekFrom::Start(0)).expect("seek");
                cmd.stdin(f.try_clone().expect("dup"));
                stdin_file = Some(f);
            }
            None => {
                cmd.stdin(Stdio::null());
            }
        }
        if !self.leak_fds.is_empty() {
            let paths: Vec<CString> = self
                .leak_fds
                .iter()
                .map(|p| CString::new(p.as_os_str().as_bytes()).expect("path has no NUL"))
                .collect();
            // SAFETY: open(2) is async-signal-safe and the CStrings were built
            // before fork; the fds are left open on purpose (no O_CLOEXEC).
            unsafe {
                cmd.pre_exec(move || {
                    // Consecutive numbers from 3, so `--preserve-fds N` can name
                    // them. This may close std's exec-error pipe: spawn errors
                    // then surface as a failed run instead.
                    for (i, p) in paths.iter().enumerate() {
                        let fd = libc::open(p.as_ptr(), libc::O_RDONLY);
                        let want = 3 + i as i32;
                        if fd >= 0 && fd != want {
                            libc::dup2(fd, want);
                            libc::close(fd);
                        }
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot spawn {argv}: {e}"));
        drop(stdin_file);
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            match child.try_wait().expect("try_wait") {
                Some(s) => break s,
                None if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("{argv}: still running after {:?}; killed it", self.timeout);
                }
                None => std::thread::sleep(Duration::from_millis(2)),
            }
        };
        let read = |f: &mut Option<File>| -> String {
            match f {
                Some(f) => {
                    let mut s = String::new();
                    f.seek(SeekFrom::Start(0)).expect("seek capture");
                    f.read_to_string(&mut s).ok();
                    s
                }
                None => String::new(),
            }
        };
        Out {
            argv,
            code: status.code().unwrap_or(-1),
            signal: status.signal(),
            stdout: read(&mut out_f),
            stderr: read(&mut err_f),
        }
    }
}

/// The runtime binary plus the global flags of one test (its own `--root`).
#[derive(Clone, Debug)]
pub struct Runtime {
    pub bin: PathBuf,
    pub root: PathBuf,
    /// Extra global flags placed before the subcommand (e.g. `--log`).
    pub globals: Vec<String>,
}

impl Runtime {
    pub fn new(root: &Path) -> Runtime {
        Runtime::with_binary(&runtime_binary(), root)
    }

    pub fn with_binary(bin: &Path, root: &Path) -> Runtime {
        Runtime { bin: bin.to_path_buf(), root: root.to_path_buf(), globals: Vec::new() }
    }

    /// A raw invocation with only `--root` set; the caller adds everything else.
    pub fn cmd(&self) -> Invocation {
        Invocation::new(&self.bin).arg("--root").arg(&self.root).args(self.globals.iter().cloned())
    }

    /// `<rt> --root R <args...>`
    pub fn exec(&self, args: &[&str]) -> Out {
        self.cmd().args(args.iter().copied()).run()
    }

    pub fn create(&self, id: &str, bundle: &Path, extra: &[&str], stdio: &Path) -> Out {
        self.cmd().arg("create").arg("--bundle").arg(bundle).args(extra.iter().copied()).arg(id).stdio_to(stdio).run()
    }

    pub fn start(&self, id: &str) -> Out {
        self.exec(&["start", id])
    }

    pub fn state(&self, id: &str) -> Out {
        self.exec(&["state", id])
    }

    /// `state` that must succeed, parsed.
    pub fn state_json(&self, id: &str) -> Value {
        let out = self.state(id);
        out.expect_ok("state");
        out.json()
    }

    pub fn status(&self, id: &str) -> Option<String> {
        let out = self.state(id);
        if !out.ok() {
            return None;
        }
        out.json()["status"].as_str().map(str::to_string)
    }

    pub fn kill(&self, id: &str, signal: &str) -> Out {
        self.exec(&["kill", id, signal])
    }

    pub fn delete(&self, id: &str) -> Out {
        self.exec(&["delete", id])
    }

    pub fn delete_force(&self, id: &str) -> Out {
        self.exec(&["delete", "--force", id])
    }

    /// Foreground `run`; the container's stdio is captured.
    pub fn run(&self, id: &str, bundle: &Path, extra: &[&str]) -> Out {
        self.cmd().arg("run").arg("--bundle").arg(bundle).args(extra.iter().copied()).arg(id).run()
    }

    pub fn list(&self, extra: &[&str]) -> Out {
        let mut args = vec!["list"];
        args.extend_from_slice(extra);
        self.exec(&args)
    }
}
