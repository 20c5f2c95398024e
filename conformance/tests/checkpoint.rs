//! `checkpoint` and `restore` on this host: the errors. The full round trip (dump, restore,
//! the counter going on, same pid inside) needs a kernel Debian's criu 3.17 works on, so it
//! runs in the qemu guest on Debian's 6.1 kernel: see tests/cgroup_v2.rs
//! (`checkpoint_*`, `restore_*`) and docs/cgroup-v2-testing.md.

use std::process::Command;

use conformance::Case;

const CRIU: &str = "/usr/sbin/criu";

/// criu's own verdict on this kernel: `None` when `criu check` passes, else its first
/// error message (without the `Error (file:line):` prefix). The messages are read from a
/// log file (`-o`): criu 3.17 does not always print them on stderr.
fn criu_check_problem(dir: &std::path::Path) -> Option<String> {
    let log = dir.join("criu-check.log");
    let out = Command::new(CRIU)
        .arg("check")
        .arg("-o")
        .arg(&log)
        .output()
        .unwrap_or_else(|e| panic!("{CRIU} check: {e} (install criu)"));
    if out.status.success() {
        return None;
    }
    let text = format!(
        "{}{}{}",
        std::fs::read_to_string(&log).unwrap_or_default(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let first = text
        .lines()
        .find_map(|l| l.find("Error (").map(|i| &l[i..]))
        .and_then(|l| l.find("): ").map(|j| l[j + 3..].trim().to_string()))
        .unwrap_or_else(|| panic!("criu check failed without an Error line: {text}"));
    Some(first)
}

fn start_sleeper(c: &mut Case) -> i64 {
    c.bundle.set_args(&["sleep", "1000"]);
    c.create().expect_ok("create");
    c.start().expect_ok("start");
    c.state()["pid"].as_i64().expect("pid")
}

#[test]
fn checkpoint_where_criu_cannot_run_fails_with_criu_error_and_container_keeps_running() {
    let mut c = Case::new("ckpt_host");
    let pid = start_sleeper(&mut c);
    let images = c.dir.join("images");
    let out = c.rt.exec(&["--criu", CRIU, "checkpoint", "--image-path", images.to_str().expect("utf-8"), &c.id]);
    match criu_check_problem(&c.dir) {
        Some(problem) => {
            out.expect_fail("checkpoint where criu check fails");
            let lines = out.stderr_lines();
            assert_eq!(lines.len(), 1, "one error line expected\n{out}");
            assert!(lines[0].contains("criu dump failed"), "{out}");
            assert!(lines[0].contains(&c.id), "the line names the container\n{out}");
            assert!(lines[0].contains(&problem), "the line carries criu's own message {problem:?}\n{out}");
            assert!(lines[0].contains(&images.join("dump.log").display().to_string()), "the line names the log\n{out}");
        }
        None => {
            out.expect_ok("checkpoint where criu check passes");
        }
    }
    let st = c.state();
    assert_eq!(st["status"], "running", "the container must be untouched: {st}");
    assert_eq!(st["pid"].as_i64(), Some(pid), "same init: {st}");
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    c.rt.kill(&c.id, "KILL").expect_ok("kill");
    c.wait_status(&c.id.clone(), "stopped");
    c.rt.delete(&c.id).expect_ok("delete");
    c.assert_no_leaks("after delete");
}

#[test]
fn checkpoint_of_unknown_id_fails_naming_it() {
    let c = Case::new("ckpt_unknown");
    let images = c.dir.join("images");
    let out = c.rt.exec(&["checkpoint", "--image-path", images.to_str().expect("utf-8"), "no-such-ctr"]);
    out.expect_fail("checkpoint of an unknown id");
    let lines = out.stderr_lines();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].contains("no-such-ctr") && lines[0].contains("does not exist"), "{out}");
    assert!(!images.exists(), "nothing is written for an unknown container");
}

#[test]
fn checkpoint_of_created_container_fails_and_leaves_it_created() {
    let mut c = Case::new("ckpt_created");
    c.bundle.set_args(&["true"]);
    c.create().expect_ok("create");
    let pid = c.state()["pid"].as_i64();
    let images = c.dir.join("images");
    let out = c.rt.exec(&["checkpoint", "--image-path", images.to_str().expect("utf-8"), &c.id]);
    out.expect_fail("checkpoint of a created container");
    let lines = out.stderr_lines();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].contains(&c.id) && lines[0].contains("created") && lines[0].contains("running"), "{out}");
    let st = c.state();
    assert_eq!(st["status"], "created", "{st}");
    assert_eq!(st["pid"].as_i64(), pid, "{st}");
    assert!(!images.exists(), "no images for a refused checkpoint");
    c.rt.delete(&c.id).expect_ok("delete");
    c.assert_no_leaks("after delete");
}

#[test]
fn restore_without_images_fails_and_leaves_nothing() {
    let mut c = Case::new("restore_noimg");
    c.bundle.set_args(&["true"]);
    c.write();
    let missing = c.dir.join("no-images-here");
    let out =
        c.rt.cmd()
            .args(["restore", "-d", "--image-path"])
            .arg(&missing)
            .arg("--bundle")
            .arg(&c.bundle.dir)
            .arg(&c.id)
            .run();
    out.expect_fail("restore from a missing image path");
    let lines = out.stderr_lines();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].contains("--image-path") && lines[0].contains(&missing.display().to_string()), "{out}");
    assert!(!missing.exists(), "the missing image path is not created");
    assert!(!c.rt.root.join(&c.id).exists(), "no state dir");
    c.assert_no_leaks("after the failed restore");
    // The id is free again.
    c.create().expect_ok("create of the same id");
    c.rt.delete_force(&c.id).expect_ok("delete");
}

#[test]
fn checkpoint_with_bad_manage_cgroups_mode_fails_and_container_keeps_running() {
    let mut c = Case::new("restore_badmode");
    let pid = start_sleeper(&mut c);
    let images = c.dir.join("images");
    let out = c.rt.exec(&[
        "checkpoint",
        "--manage-cgroups-mode",
        "bogus",
        "--image-path",
        images.to_str().expect("utf-8"),
        &c.id,
    ]);
    out.expect_fail("checkpoint with a bogus cgroups mode");
    let lines = out.stderr_lines();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].contains("--manage-cgroups-mode") && lines[0].contains("bogus"), "{out}");
    let st = c.state();
    assert_eq!((st["status"].as_str(), st["pid"].as_i64()), (Some("running"), Some(pid)), "{st}");
}
