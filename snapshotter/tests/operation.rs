//! The service as an operator meets it: one instance per root, a clear
//! refusal on a filesystem overlayfs cannot use, Cleanup, and consistency
//! after kill -9 at any point.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::process::{Command, Stdio};

use berth_snapshotter::crashpoint;
use common::*;
use conformance::util::{cpu_ticks, highest_fd, unmount_all_under, NofileLimit};
use tonic::Code;

#[tokio::test]
async fn second_instance_on_same_root_is_refused() {
    let d = Daemon::start().await;
    let out = Command::new(bin())
        .arg("--root")
        .arg(&d.root)
        .arg("--socket")
        .arg(d.dir().join("second.sock"))
        .stdin(Stdio::null())
        .output()
        .expect("run second instance");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already using root"), "{err}");
    assert!(err.contains(&d.pid().to_string()), "names the holder's pid: {err}");
    assert!(!d.dir().join("second.sock").exists());
}

#[test]
fn root_on_a_filesystem_without_upper_support_is_refused() {
    let tmp = tempfile::Builder::new().prefix("berth-snap-badfs-").tempdir().expect("tempdir");
    for d in ["l", "u", "w", "m"] {
        fs::create_dir(tmp.path().join(d)).expect("mkdir");
    }
    let opts = format!("lowerdir={0}/l,upperdir={0}/u,workdir={0}/w", tmp.path().display());
    let st = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &opts])
        .arg(tmp.path().join("m"))
        .status()
        .expect("mount");
    assert!(st.success());
    let guard = Mounted(tmp.path().join("m"));
    // An overlayfs mount cannot be the upper layer of another overlay.
    let out = Command::new(bin())
        .arg("--root")
        .arg(guard.0.join("root"))
        .arg("--socket")
        .arg(tmp.path().join("s.sock"))
        .stdin(Stdio::null())
        .output()
        .expect("run");
    drop(guard);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot host overlayfs upper directories"), "{err}");
    assert!(!tmp.path().join("s.sock").exists());
}

#[tokio::test]
async fn cleanup_removes_orphans_and_keeps_live_layers() {
    let mut d = Daemon::start().await;
    d.prepare("a", "").await.expect("prepare");
    d.commit("c", "a").await.expect("commit");
    d.view("v", "c").await.expect("view");
    let live = d.dirs();
    let snaps = d.root.join("snapshots");
    fs::create_dir_all(snaps.join("9999/fs/etc")).expect("mkdir");
    fs::create_dir_all(snaps.join("new-1-2/fs")).expect("mkdir");
    fs::write(snaps.join("stray"), "x").expect("write");
    d.cleanup().await.expect("cleanup");
    assert_eq!(d.dirs(), live);
    d.remove("v").await.expect("remove");
    d.remove("c").await.expect("remove");
    d.cleanup().await.expect("cleanup");
    assert!(d.dirs().is_empty());
}

/// Every record's layer exists and every layer belongs to a record; every
/// parent is a committed record.
async fn assert_consistent(d: &mut Daemon) {
    let all = d.list(&[]).await.expect("list");
    let n_dirs = d.dirs().len();
    assert_eq!(n_dirs, all.len(), "one directory per snapshot: dirs {:?}, records {:?}", d.dirs(), all.keys());
    for (name, info) in &all {
        if !info.parent.is_empty() {
            let p = all.get(&info.parent).unwrap_or_else(|| panic!("{name}: parent {} missing", info.parent));
            assert_eq!(p.kind, berth_snapshotter::proto::snapshots::Kind::Committed as i32);
        }
        if info.kind != berth_snapshotter::proto::snapshots::Kind::Committed as i32 {
            let ms = d.mounts(name).await.expect("mounts");
            for m in ms {
                for o in m.options.iter().chain(std::iter::once(&m.source)) {
                    for part in o.trim_start_matches(|c: char| c != '/').split(':') {
                        if part.starts_with('/') {
                            assert!(std::path::Path::new(part).exists(), "{name}: {part} missing");
                        }
                    }
                }
            }
        }
    }
}

fn crash_env(point: &str) -> Vec<(String, String)> {
    vec![(crashpoint::ENV.to_string(), point.to_string())]
}

#[tokio::test]
async fn kill9_during_prepare_leaves_no_record_and_no_directory() {
    let mut d = Daemon::start_with(crash_env(crashpoint::PREPARE_INSTALLED)).await;
    assert!(d.prepare("p", "").await.is_err());
    assert_eq!(d.wait_crashed().code(), None, "killed by a signal");
    assert_eq!(d.dirs().len(), 1, "the layer was in place when it died: {:?}", d.dirs());
    d.restart(Vec::new()).await;
    assert_eq!(code(d.stat("p").await), Code::NotFound);
    assert!(d.dirs().is_empty(), "start-up cleanup removed the orphan: {:?}", d.dirs());
    d.prepare("p", "").await.expect("the key is free again");
    assert_consistent(&mut d).await;
}

#[tokio::test]
async fn kill9_during_commit_keeps_the_active_snapshot() {
    let mut d = Daemon::start_with(crash_env(crashpoint::COMMIT_BEFORE_TXN_COMMIT)).await;
    let ms = d.prepare("p", "").await.expect("prepare");
    {
        let m = Mounted::new(&ms, &d.work("p"));
        fs::write(m.0.join("data"), "kept").expect("write");
    }
    assert!(d.commit("c", "p").await.is_err());
    assert_eq!(d.wait_crashed().code(), None);
    d.restart(Vec::new()).await;
    assert_eq!(code(d.stat("c").await), Code::NotFound);
    assert_eq!(d.stat("p").await.expect("still active").kind, berth_snapshotter::proto::snapshots::Kind::Active as i32);
    assert_consistent(&mut d).await;
    d.commit("c", "p").await.expect("commit after restart");
    let ms = d.view("v", "c").await.expect("view");
    let m = Mounted::new(&ms, &d.work("v"));
    assert_eq!(fs::read_to_string(m.0.join("data")).expect("read"), "kept");
}

async fn kill9_during_remove(point: &str) {
    let mut d = Daemon::start_with(crash_env(point)).await;
    let ms = d.prepare("p", "").await.expect("prepare");
    {
        let m = Mounted::new(&ms, &d.work("p"));
        fs::create_dir_all(m.0.join("a/b/c")).expect("mkdir");
    }
    d.commit("c", "p").await.expect("commit");
    d.prepare("other", "").await.expect("prepare");
    assert!(d.remove("c").await.is_err());
    assert_eq!(d.wait_crashed().code(), None);
    d.restart(Vec::new()).await;
    assert_eq!(code(d.stat("c").await), Code::NotFound, "the removal had committed");
    assert_consistent(&mut d).await;
    assert_eq!(d.dirs().len(), 1);
}

#[tokio::test]
async fn kill9_after_remove_commit_before_delete() {
    kill9_during_remove(crashpoint::REMOVE_AFTER_TXN_COMMIT).await;
}

#[tokio::test]
async fn kill9_halfway_through_deleting_a_removed_layer() {
    kill9_during_remove(crashpoint::REMOVE_MID_DELETE).await;
}

// Killed after the metadata committed, before the reply: the client saw an error and
// retries, as containerd does. The retry gets the answer containerd's own snapshotters give
// for an operation that already happened (already-exists, not-found), which containerd's
// callers take as done; the record and the directory agree.

#[tokio::test]
async fn kill9_before_the_reply_of_prepare_then_retry_finds_it_prepared() {
    let mut d = Daemon::start_with(crash_env(crashpoint::PREPARE_BEFORE_REPLY)).await;
    assert!(d.prepare("p", "").await.is_err());
    assert_eq!(d.wait_crashed().code(), None, "killed by a signal");
    d.restart(Vec::new()).await;
    assert_eq!(code(d.prepare("p", "").await), Code::AlreadyExists);
    assert_eq!(
        d.stat("p").await.expect("the prepare had committed").kind,
        berth_snapshotter::proto::snapshots::Kind::Active as i32
    );
    assert_consistent(&mut d).await;
    {
        let ms = d.mounts("p").await.expect("mounts of the retried key");
        let m = Mounted::new(&ms, &d.work("p"));
        fs::write(m.0.join("data"), "x").expect("the snapshot is writable");
    }
    d.remove("p").await.expect("remove");
    assert!(d.dirs().is_empty(), "no orphan directory: {:?}", d.dirs());
}

#[tokio::test]
async fn kill9_before_the_reply_of_commit_then_retry_is_already_exists() {
    let mut d = Daemon::start_with(crash_env(crashpoint::COMMIT_BEFORE_REPLY)).await;
    let ms = d.prepare("p", "").await.expect("prepare");
    {
        let m = Mounted::new(&ms, &d.work("p"));
        fs::write(m.0.join("data"), "kept").expect("write");
    }
    assert!(d.commit("c", "p").await.is_err());
    assert_eq!(d.wait_crashed().code(), None);
    d.restart(Vec::new()).await;
    // containerd's unpacker takes AlreadyExists from a Commit as "this layer is in place".
    assert_eq!(code(d.commit("c", "p").await), Code::AlreadyExists);
    assert_eq!(code(d.stat("p").await), Code::NotFound);
    assert_eq!(d.stat("c").await.expect("committed").kind, berth_snapshotter::proto::snapshots::Kind::Committed as i32);
    assert_consistent(&mut d).await;
    let ms = d.view("v", "c").await.expect("view");
    let m = Mounted::new(&ms, &d.work("v"));
    assert_eq!(fs::read_to_string(m.0.join("data")).expect("read"), "kept");
}

#[tokio::test]
async fn kill9_before_the_reply_of_remove_then_retry_is_not_found() {
    let mut d = Daemon::start_with(crash_env(crashpoint::REMOVE_BEFORE_REPLY)).await;
    d.prepare("p", "").await.expect("prepare");
    d.commit("c", "p").await.expect("commit");
    d.prepare("other", "").await.expect("prepare");
    assert!(d.remove("c").await.is_err());
    assert_eq!(d.wait_crashed().code(), None);
    d.restart(Vec::new()).await;
    // containerd's garbage collector takes NotFound from a Remove as removed.
    assert_eq!(code(d.remove("c").await), Code::NotFound);
    assert_eq!(code(d.stat("c").await), Code::NotFound);
    assert_consistent(&mut d).await;
    assert_eq!(d.dirs().len(), 1, "only the other snapshot's: {:?}", d.dirs());
    d.prepare("c", "").await.expect("the name is free again");
    assert_consistent(&mut d).await;
}

/// kill -9 from outside while a client keeps preparing, committing and
/// removing: wherever it lands, the restarted service is consistent.
#[tokio::test]
async fn kill9_under_load_leaves_database_and_directories_in_agreement() {
    let mut d = Daemon::start().await;
    for round in 0..6u32 {
        let socket = d.socket.clone();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let done2 = done.clone();
        let worker = tokio::spawn(async move {
            let Ok(mut c) = berth_snapshotter::client::connect(&socket).await else {
                return;
            };
            use berth_snapshotter::proto::snapshots as pb;
            for i in 0u32.. {
                let key = format!("r{round}-{i}");
                let p = pb::PrepareSnapshotRequest { key: format!("{key}-a"), ..Default::default() };
                if c.prepare(p).await.is_err() {
                    return;
                }
                let cm = pb::CommitSnapshotRequest { name: key.clone(), key: format!("{key}-a"), ..Default::default() };
                if c.commit(cm).await.is_err() {
                    return;
                }
                if i % 2 == 0 {
                    let r = pb::RemoveSnapshotRequest { key, ..Default::default() };
                    if c.remove(r).await.is_err() {
                        return;
                    }
                }
                done2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        // Let a different number of operations through each round so the
        // kill lands at different points of the cycle.
        let target = 3 + round * 2;
        while done.load(std::sync::atomic::Ordering::SeqCst) < target && !worker.is_finished() {
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_micros(200 * u64::from(round + 1))).await;
        }
        d.kill9();
        let _ = worker.await;
        d.restart(Vec::new()).await;
        assert_consistent(&mut d).await;
    }
    let names: BTreeSet<String> = d.list(&[]).await.expect("list").into_keys().collect();
    assert!(!names.is_empty());
}

/// Inside a user namespace overlayfs cannot write trusted.* xattrs, so the
/// mounts must carry `userxattr`; whiteouts then still work.
#[tokio::test]
async fn in_a_user_namespace_overlay_mounts_use_userxattr() {
    let tmp = tempfile::Builder::new().prefix("berth-snap-userns-").tempdir().expect("tempdir");
    let root = tmp.path().join("root");
    let socket = tmp.path().join("s.sock");
    let mut child = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount"])
        .arg(bin())
        .arg("--root")
        .arg(&root)
        .arg("--socket")
        .arg(&socket)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn under unshare");
    struct Reap(std::process::Child, std::path::PathBuf);
    impl Drop for Reap {
        fn drop(&mut self) {
            unmount_all_under(&self.1);
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut c = connect(&mut child, &socket).await;
    let _reap = Reap(child, tmp.path().to_path_buf());
    use berth_snapshotter::proto::snapshots as pb;
    let prep = |key: &str, parent: &str| pb::PrepareSnapshotRequest {
        key: key.into(),
        parent: parent.into(),
        ..Default::default()
    };
    let ms = c.prepare(prep("a", "")).await.expect("prepare").into_inner().mounts;
    {
        let m = Mounted::new(&ms, &tmp.path().join("a"));
        fs::write(m.0.join("gone"), "x").expect("write");
    }
    let cm = pb::CommitSnapshotRequest { name: "c".into(), key: "a".into(), ..Default::default() };
    c.commit(cm).await.expect("commit");
    let ms = c.prepare(prep("b", "c")).await.expect("prepare").into_inner().mounts;
    assert!(ms[0].options.iter().any(|o| o == "userxattr"), "{:?}", ms[0].options);
    let m = Mounted::new(&ms, &tmp.path().join("b"));
    fs::remove_file(m.0.join("gone")).expect("delete a lower file");
    assert!(!m.0.join("gone").exists());
    let upper = ms[0].options.iter().find_map(|o| o.strip_prefix("upperdir=")).expect("upperdir");
    assert!(is_whiteout(&std::path::Path::new(upper).join("gone")), "whiteout recorded in the upper dir");
}

/// Mounts racing Remove from several connections: every Mounts answer is
/// either the mounts or NotFound, and once Remove returns the layer is gone.
#[tokio::test]
async fn mounts_racing_remove_see_the_snapshot_or_not_found() {
    let mut d = Daemon::start().await;
    d.prepare("base-a", "").await.expect("prepare");
    d.commit("base", "base-a").await.expect("commit");
    for round in 0..20 {
        let key = format!("victim-{round}");
        d.prepare(&key, "base").await.expect("prepare");
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let socket = d.socket.clone();
            let key = key.clone();
            tasks.push(tokio::spawn(async move {
                let mut c = berth_snapshotter::client::connect(&socket).await.expect("connect");
                let mut codes = Vec::new();
                for _ in 0..10 {
                    let r =
                        berth_snapshotter::proto::snapshots::MountsRequest { key: key.clone(), ..Default::default() };
                    codes.push(match c.mounts(r).await {
                        Ok(m) => {
                            assert_eq!(m.into_inner().mounts[0].r#type, "overlay");
                            Code::Ok
                        }
                        Err(s) => s.code(),
                    });
                }
                codes
            }));
        }
        d.remove(&key).await.expect("remove");
        assert_eq!(code(d.mounts(&key).await), Code::NotFound);
        for t in tasks {
            for c in t.await.expect("task") {
                assert!(c == Code::Ok || c == Code::NotFound, "{c:?}");
            }
        }
        assert_eq!(d.dirs().len(), 1, "only the base layer is left: {:?}", d.dirs());
    }
}

/// issue 16: with its fd table full, the listener stays readable while accept fails with
/// EMFILE; the snapshotter must not spin on it (it accepts and closes with a reserve fd, or
/// pauses), and it serves again once fds are free.
#[tokio::test]
async fn at_the_fd_limit_the_snapshotter_does_not_spin() {
    let mut d = Daemon::start().await;
    let pid = u32::try_from(d.pid()).expect("pid");
    let highest = highest_fd(pid);
    let limit = NofileLimit::lower(pid, highest + 4);
    // Idle connections fill the table; the ones after them cannot be accepted.
    let conns: Vec<_> =
        (0..highest + 16).map(|_| std::os::unix::net::UnixStream::connect(&d.socket).expect("connect")).collect();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let before = cpu_ticks(pid);
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let spent = cpu_ticks(pid) - before;
    drop(limit);
    drop(conns);
    // A busy loop takes most of a core; idle is ~0 (USER_HZ ticks, 200 in 2 s).
    assert!(spent < 50, "the snapshotter spun at its fd limit: {spent} ticks in 2 s");
    d.prepare("a", "").await.expect("prepare once fds are free again");
    d.remove("a").await.expect("remove");
}
