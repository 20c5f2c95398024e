//! One test's world: temp dir, bundle, runtime with its own --root, unique id,
//! leak snapshot, and a Drop guard that cleans up even when the test panics.

use crate::bundle::{default_spec, Bundle};
use crate::leak::{scrub, LeakSnapshot};
use crate::runtime::{Out, Runtime};
use crate::util::{base_dir, poll_until};
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct Case {
    pub name: String,
    /// `t-<name>-<pid>`: unique per test and per test process.
    pub id: String,
    /// Private directory; everything the test creates lives below it.
    pub dir: PathBuf,
    pub bundle: Bundle,
    pub rt: Runtime,
    /// Where the detached container's stdout goes (see `create`); its
    /// stderr lands in the runtime's captured stderr, so scripts use `2>&1`.
    pub stdio: PathBuf,
    snapshot: LeakSnapshot,
    extra_ids: Vec<String>,
    cleanups: Vec<Box<dyn FnOnce()>>,
}

impl Case {
    pub fn new(name: &str) -> Case {
        let pid = std::process::id();
        let id = format!("t-{name}-{pid}");
        let dir = base_dir().join(format!("{name}-{pid}"));
        if dir.exists() {
            // A previous run of this very process id: stale, safe to drop.
            let _ = fs::remove_dir_all(&dir);
        }
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let snapshot = LeakSnapshot::take();
        let mut bundle = Bundle::new(&dir.join("bundle"));
        // Marks every process of this test's containers, so the leak check
        // finds them even if they escaped their cgroup and renamed themselves.
        bundle.config["process"]["env"]
            .as_array_mut()
            .expect("default env is an array")
            .push(serde_json::Value::String(format!("BERTH_TEST_ID={id}")));
        let rt = Runtime::new(&dir.join("root"));
        let stdio = dir.join("ctr.out");
        Case {
            name: name.to_string(),
            id,
            dir,
            bundle,
            rt,
            stdio,
            snapshot,
            extra_ids: Vec::new(),
            cleanups: Vec::new(),
        }
    }

    /// A second (third, …) container id for this test, also cleaned up on drop.
    pub fn other_id(&mut self, n: u32) -> String {
        let id = format!("{}-{n}", self.id);
        self.extra_ids.push(id.clone());
        id
    }

    /// Registers a closure run on drop before the leak check (e.g. to kill a
    /// helper process the test started).
    pub fn on_cleanup(&mut self, f: impl FnOnce() + 'static) {
        self.cleanups.push(Box::new(f));
    }

    /// Makes `dir` (created if missing) a bind mount of its own on the host, then runs
    /// `mount <setting> <dir>` for each of `settings` (`-o remount,bind,nosuid` for the flags
    /// a bind source carries, `--make-shared` for its propagation). A fixture of the test's,
    /// not the runtime's: the leak check leaves that mount point alone, and it is unmounted
    /// with whatever is below it before the check, even if the test fails.
    pub fn host_mount(&mut self, dir: &Path, settings: &[&str]) {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let d = dir.to_str().expect("a UTF-8 path").to_string();
        let undo = d.clone();
        self.on_cleanup(move || {
            crate::sh(&format!("umount -R -l {undo}"));
        });
        self.snapshot.own_mount_point(dir);
        let script = std::iter::once(format!("mount --bind {d} {d}"))
            .chain(settings.iter().map(|s| format!("mount {s} {d}")))
            .collect::<Vec<_>>()
            .join(" && ");
        let (rc, o) = crate::sh(&script);
        assert_eq!(rc, 0, "cannot mount {d} ({script}): {o}");
    }

    pub fn config(&mut self) -> &mut Value {
        &mut self.bundle.config
    }

    pub fn write(&self) {
        self.bundle.write();
    }

    /// Foreground `run` of the current config; returns the runtime's result
    /// with the container's stdout/stderr.
    pub fn run(&self) -> Out {
        self.write();
        self.rt.run(&self.id, &self.bundle.dir, &[])
    }

    /// `run` of `sh -c script`.
    pub fn run_sh(&mut self, script: &str) -> Out {
        self.bundle.set_sh(script);
        self.run()
    }

    /// `run` of `sh -c script` that must exit 0; returns the container's stdout.
    pub fn sh_ok(&mut self, script: &str) -> String {
        let out = self.run_sh(script);
        out.expect_ok(&format!("container script {script:?}"));
        out.stdout
    }

    /// `create` of the current config; the container's stdio goes to `self.stdio`.
    pub fn create(&self) -> Out {
        self.create_with(&[])
    }

    pub fn create_with(&self, extra: &[&str]) -> Out {
        self.write();
        self.rt.create(&self.id, &self.bundle.dir, extra, &self.stdio)
    }

    pub fn start(&self) -> Out {
        self.rt.start(&self.id)
    }

    pub fn state(&self) -> Value {
        self.rt.state_json(&self.id)
    }

    /// Polls `state` until the container reports `status`.
    pub fn wait_status(&self, id: &str, status: &str) {
        poll_until(&format!("{id} to be {status}"), Duration::from_secs(30), || {
            (self.rt.status(id).as_deref() == Some(status)).then_some(())
        });
    }

    /// What the detached container wrote to stdout/stderr so far.
    pub fn output(&self) -> String {
        fs::read_to_string(&self.stdio).unwrap_or_default()
    }

    /// create → start → wait until stopped → delete; returns the container's output.
    pub fn create_start_wait(&self) -> String {
        self.create().expect_ok("create");
        self.start().expect_ok("start");
        self.wait_status(&self.id, "stopped");
        let out = self.output();
        self.rt.delete(&self.id).expect_ok("delete");
        out
    }

    /// A directory on the host that no container may touch: it holds one file
    /// with known content. `canary_unchanged` compares it later.
    pub fn canary(&self, name: &str) -> PathBuf {
        let d = self.dir.join(name);
        fs::create_dir_all(&d).expect("cannot create canary dir");
        fs::write(d.join("canary"), "untouched\n").expect("cannot write canary file");
        d
    }

    /// Panics unless the canary dir holds exactly its one original file.
    pub fn assert_canary_untouched(&self, d: &Path) {
        let names: Vec<String> = fs::read_dir(d)
            .unwrap_or_else(|e| panic!("canary {} vanished: {e}", d.display()))
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["canary".to_string()], "host canary {} was modified", d.display());
        assert_eq!(
            fs::read_to_string(d.join("canary")).expect("canary file"),
            "untouched\n",
            "host canary file content changed"
        );
    }

    /// The bad-input contract (SECURITY.md §2): `create` with the current
    /// config fails with exactly one stderr line mentioning one of `needles`
    /// (case-insensitive), leaves nothing behind, and the same id can be
    /// created right after with the default config.
    pub fn expect_create_fails(&mut self, needles: &[&str]) -> Out {
        let out = self.create();
        self.expect_clean_failure(&out, needles);
        out
    }

    /// The same contract for an invocation the caller ran.
    pub fn expect_clean_failure(&mut self, out: &Out, needles: &[&str]) {
        out.expect_fail("bad input");
        let lines = out.stderr_lines();
        assert_eq!(lines.len(), 1, "expected exactly one error line on stderr\n{out}");
        let line = lines[0].to_lowercase();
        assert!(
            needles.iter().any(|n| line.contains(&n.to_lowercase())),
            "error line should name one of {needles:?}\n{out}"
        );
        self.assert_no_leaks("after the failed create");
        assert!(!self.rt.list(&["-q"]).stdout.lines().any(|l| l == self.id), "failed container still listed");
        let bad = std::mem::replace(&mut self.bundle.config, default_spec());
        self.bundle.set_args(&["true"]);
        self.create().expect_ok("create of the same id right after the failure");
        self.rt.delete_force(&self.id).expect_ok("delete after re-create");
        self.bundle.config = bad;
    }

    /// Runs the leak check now (the drop guard runs it again at the end).
    pub fn assert_no_leaks(&self, when: &str) {
        let mut problems = Vec::new();
        for id in std::iter::once(&self.id).chain(self.extra_ids.iter()) {
            problems.extend(self.snapshot.check(id, &self.rt.root, &self.dir));
        }
        assert!(problems.is_empty(), "{}: leaks {when}:\n  {}", self.id, problems.join("\n  "));
    }
}

impl Drop for Case {
    fn drop(&mut self) {
        let ids: Vec<String> = std::iter::once(self.id.clone()).chain(self.extra_ids.clone()).collect();
        let mut deletes = Vec::new();
        for id in &ids {
            // The runtime's own cleanup is part of what is under test, so it
            // goes first; the leak check judges it (and shows what delete said).
            if let Ok(out) = std::panic::catch_unwind(|| self.rt.delete_force(id)) {
                deletes.push(out);
            }
        }
        for f in self.cleanups.drain(..) {
            f();
        }
        let mut problems = Vec::new();
        for id in &ids {
            problems.extend(self.snapshot.check(id, &self.rt.root, &self.dir));
        }
        for id in &ids {
            scrub(id, &self.dir, &self.snapshot);
        }
        let _ = fs::remove_dir_all(&self.dir);
        if !problems.is_empty() {
            let said: String = deletes.iter().map(|o| format!("\n{o}")).collect();
            let msg = format!("{}: left behind on the host:\n  {}{said}", self.id, problems.join("\n  "));
            if std::thread::panicking() {
                eprintln!("{msg}");
            } else {
                panic!("{msg}");
            }
        }
    }
}
