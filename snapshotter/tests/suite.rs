//! containerd's snapshotter test suite (core/snapshots/testsuite), ported
//! as tests against a running berth-snapshotter over gRPC. Each test has
//! its own root and socket; mounts are undone and the process is stopped
//! even when an assertion fails.

mod common;

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use berth_snapshotter::proto::snapshots as pb;
use common::*;
use tonic::Code;

fn gc_label() -> HashMap<String, String> {
    HashMap::from([("containerd.io/gc.root".to_string(), "2026-01-01T00:00:00Z".to_string())])
}

#[tokio::test]
async fn basic() {
    let mut d = Daemon::start().await;
    let ms = d.prepare_labels("preparing", "", gc_label()).await.expect("prepare");
    assert_eq!(ms.len(), 1);
    {
        let m = Mounted::new(&ms, &d.work("preparing"));
        seq(vec![write("/foo", "foo\n", 0o777), mkdir("/a", 0o755), mkdir("/a/b", 0o755), mkdir("/a/b/c", 0o755)])(
            &m.0,
        );
    }
    d.commit_labels("committed", "preparing", gc_label()).await.expect("commit");
    let si = d.stat("committed").await.expect("stat");
    assert_eq!(si.parent, "");
    assert_eq!(si.kind, pb::Kind::Committed as i32);
    assert_eq!(si.labels, gc_label());
    assert_eq!(code(d.stat("preparing").await), Code::NotFound, "active key gone after commit");

    let ms = d.prepare("nextlayer", "committed").await.expect("prepare child");
    let reference = d.work("ref");
    fs::set_permissions(&reference, fs::Permissions::from_mode(0o755)).expect("chmod");
    seq(vec![write("/foo", "foo\n", 0o777), mkdir("/a", 0o755), mkdir("/a/b", 0o755), mkdir("/a/b/c", 0o755)])(
        &reference,
    );
    let diff = || seq(vec![write("/bar", "bar\n", 0o777), write("/foo", "bar\n", 0o777), remove_all("/a/b")]);
    {
        let m = Mounted::new(&ms, &d.work("next"));
        assert_same_tree(&m.0, &reference);
        diff()(&m.0);
    }
    diff()(&reference);
    let ni = d.stat("nextlayer").await.expect("stat");
    assert_eq!((ni.parent.as_str(), ni.kind), ("committed", pb::Kind::Active as i32));
    d.commit("committed-next", "nextlayer").await.expect("commit");
    let si2 = d.stat("committed-next").await.expect("stat");
    assert_eq!((si2.parent.as_str(), si2.kind), ("committed", pb::Kind::Committed as i32));

    let walked = d.list(&[]).await.expect("list");
    assert_eq!(walked.get("committed"), Some(&si));
    assert_eq!(walked.get("committed-next"), Some(&si2));
    assert_eq!(walked.len(), 2);

    let ms = d.view("nextnext", "committed-next").await.expect("view");
    {
        let m = Mounted::new(&ms, &d.work("nextnext"));
        assert_same_tree(&m.0, &reference);
    }
    d.remove("nextnext").await.expect("remove view");
    let err = d.remove("committed").await.expect_err("parent with child");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("remove"), "{}", err.message());
    d.remove("committed-next").await.expect("remove");
    d.remove("committed").await.expect("remove");
    assert!(d.dirs().is_empty(), "layer directories left: {:?}", d.dirs());
}

#[tokio::test]
async fn stat_active() {
    let mut d = Daemon::start().await;
    let ms = d.prepare("preparing", "").await.expect("prepare");
    let m = Mounted::new(&ms, &d.work("preparing"));
    fs::write(m.0.join("foo"), "foo\n").expect("write");
    let si = d.stat("preparing").await.expect("stat");
    assert_eq!((si.name.as_str(), si.kind, si.parent.as_str()), ("preparing", pb::Kind::Active as i32, ""));
}

#[tokio::test]
async fn stat_committed() {
    let mut d = Daemon::start().await;
    let ms = d.prepare("preparing", "").await.expect("prepare");
    {
        let m = Mounted::new(&ms, &d.work("preparing"));
        fs::write(m.0.join("foo"), "foo\n").expect("write");
    }
    d.commit("committed", "preparing").await.expect("commit");
    let si = d.stat("committed").await.expect("stat");
    assert_eq!((si.name.as_str(), si.kind, si.parent.as_str()), ("committed", pb::Kind::Committed as i32, ""));
}

#[tokio::test]
async fn transitivity() {
    let mut d = Daemon::start().await;
    let ms = d.prepare("preparing", "").await.expect("prepare");
    {
        let m = Mounted::new(&ms, &d.work("a"));
        fs::write(m.0.join("foo"), "foo\n").expect("write");
    }
    d.commit("snapA", "preparing").await.expect("commit");
    let ms = d.prepare("next", "snapA").await.expect("prepare");
    {
        let m = Mounted::new(&ms, &d.work("b"));
        fs::write(m.0.join("foo"), "foo bar\n").expect("write");
    }
    d.commit("snapB", "next").await.expect("commit");
    let a = d.stat("snapA").await.expect("stat");
    let b = d.stat("snapB").await.expect("stat");
    let pb_ = d.stat(&b.parent).await.expect("stat parent");
    assert_eq!((a.parent.as_str(), b.parent.as_str(), pb_.parent.as_str()), ("", "snapA", ""));
}

#[tokio::test]
async fn prepare_view_failing() {
    let mut d = Daemon::start().await;
    d.prepare("preparing", "").await.expect("prepare");
    d.commit("snapA", "preparing").await.expect("commit");
    d.prepare("newlayer", "snapA").await.expect("prepare");
    assert_eq!(code(d.view("newlayer", "snapA").await), Code::AlreadyExists);
    d.prepare("prepLayer", "snapA").await.expect("prepare");
    assert_eq!(code(d.prepare("prepLayer", "snapA").await), Code::AlreadyExists);
    d.view("viewLayer", "snapA").await.expect("view");
    assert_eq!(code(d.view("viewLayer", "snapA").await), Code::AlreadyExists);
    // A failed create leaves no directory behind.
    assert_eq!(d.dirs().len(), 4, "{:?}", d.dirs());
}

#[tokio::test]
async fn error_codes_containerd_checks() {
    let mut d = Daemon::start().await;
    assert_eq!(code(d.prepare("x", "missing").await), Code::NotFound);
    assert_eq!(code(d.view("x", "missing").await), Code::NotFound);
    assert_eq!(code(d.stat("missing").await), Code::NotFound);
    assert_eq!(code(d.mounts("missing").await), Code::NotFound);
    assert_eq!(code(d.remove("missing").await), Code::NotFound);
    assert_eq!(code(d.commit("c", "missing").await), Code::NotFound);
    assert_eq!(code(d.usage("missing").await), Code::NotFound);
    d.prepare("a", "").await.expect("prepare");
    assert_eq!(code(d.prepare("child-of-active", "a").await), Code::InvalidArgument);
    d.commit("c", "a").await.expect("commit");
    assert_eq!(code(d.mounts("c").await), Code::FailedPrecondition);
    d.view("v", "c").await.expect("view");
    assert_eq!(code(d.commit("c2", "v").await), Code::FailedPrecondition);
    d.prepare("b", "c").await.expect("prepare");
    assert_eq!(code(d.commit("c", "b").await), Code::AlreadyExists);
    assert_eq!(code(d.prepare("", "").await), Code::InvalidArgument);
    assert!(d.stat("b").await.is_ok(), "a failed commit keeps the active snapshot");
    assert_eq!(code(d.list(&["name=="]).await), Code::InvalidArgument);
    assert_eq!(d.dirs().len(), 3, "{:?}", d.dirs());
}

async fn base_snapshots(d: &mut Daemon) {
    d.prepare("c1-a", "").await.expect("prepare");
    d.commit("c1", "c1-a").await.expect("commit");
    d.prepare("c2-a", "c1").await.expect("prepare");
    d.commit("c2", "c2-a").await.expect("commit");
    d.prepare("a1", "c2").await.expect("prepare");
    d.prepare("a2", "").await.expect("prepare");
    d.view("v1", "c2").await.expect("view");
    d.view("v2", "").await.expect("view");
}

fn labels(kv: &[(&str, &str)]) -> HashMap<String, String> {
    kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[tokio::test]
async fn update_semantics() {
    let mut d = Daemon::start().await;
    base_snapshots(&mut d).await;
    let cases = [
        ("c1", pb::Kind::Committed, ""),
        ("c2", pb::Kind::Committed, "c1"),
        ("a1", pb::Kind::Active, "c2"),
        ("a2", pb::Kind::Active, ""),
        ("v1", pb::Kind::View, "c2"),
        ("v2", pb::Kind::View, ""),
    ];
    for (name, kind, parent) in cases {
        let mut st = d.stat(name).await.expect("stat");
        assert_eq!(st.created_at, st.updated_at, "{name}: created == updated before any update");
        assert_eq!((st.kind, st.parent.as_str(), st.name.as_str()), (kind as i32, parent, name));
        let created = st.created_at;

        let expected = labels(&[("l1", "v1"), ("l2", "v2"), ("l3", "v3"), ("containerd.io/gc.root", "t")]);
        st.parent = "doesnotexist".into();
        st.labels = expected.clone();
        let st2 = d.update(st.clone(), &[]).await.expect("update");
        assert_eq!(st2.created_at, created, "{name}: created kept");
        assert_ne!(st2.updated_at, created, "{name}: updated moves");
        assert_eq!((st2.kind, st2.parent.as_str()), (kind as i32, parent), "{name}: immutable fields kept");
        assert_eq!(st2.labels, expected);

        let mut st3 = st2.clone();
        st3.labels = labels(&[("l1", "updated"), ("l4", "v4")]);
        let st3 = d.update(st3, &["labels.l1", "labels.l2"]).await.expect("update paths");
        assert_eq!(st3.labels, labels(&[("l1", "updated"), ("l3", "v3"), ("containerd.io/gc.root", "t")]));

        let mut st4 = st3.clone();
        st4.labels = labels(&[("l4", "v4"), ("containerd.io/gc.root", "t")]);
        let st4 = d.update(st4, &["labels"]).await.expect("update labels");
        assert_eq!(st4.labels, labels(&[("l4", "v4"), ("containerd.io/gc.root", "t")]));
        assert_eq!(d.stat(name).await.expect("stat").labels, st4.labels, "{name}: persisted");

        let mut st5 = st4.clone();
        st5.parent = "doesnotexist".into();
        assert_eq!(code(d.update(st5, &["parent"]).await), Code::InvalidArgument);
    }
    let missing = pb::Info { name: "missing".into(), ..Default::default() };
    assert_eq!(code(d.update(missing, &[]).await), Code::NotFound);
}

#[tokio::test]
async fn remove_semantics() {
    let mut d = Daemon::start().await;
    d.prepare("committed-a", "").await.expect("prepare");
    d.commit("committed-1", "committed-a").await.expect("commit");
    d.prepare("reuse-1", "committed-1").await.expect("prepare");
    d.remove("reuse-1").await.expect("remove");
    d.view("reuse-1", "committed-1").await.expect("view reusing key");
    d.remove("reuse-1").await.expect("remove");
    d.prepare("reuse-1", "").await.expect("prepare reusing key");
    d.remove("committed-1").await.expect("remove");
    d.commit("committed-1", "reuse-1").await.expect("commit reusing name");
    assert_eq!(d.dirs().len(), 1, "{:?}", d.dirs());
}

#[tokio::test]
async fn walk_with_filters() {
    let mut d = Daemon::start().await;
    base_snapshots(&mut d).await;
    let mut st = d.stat("c2").await.expect("stat");
    st.labels = labels(&[("containerd.io/snapshot/x", "yes"), ("team", "a")]);
    d.update(st, &[]).await.expect("update");
    let names = |m: std::collections::BTreeMap<String, pb::Info>| m.into_keys().collect::<Vec<_>>();
    assert_eq!(names(d.list(&[]).await.expect("list")), ["a1", "a2", "c1", "c2", "v1", "v2"]);
    assert_eq!(names(d.list(&["kind==committed"]).await.expect("list")), ["c1", "c2"]);
    assert_eq!(names(d.list(&["kind==active"]).await.expect("list")), ["a1", "a2"]);
    assert_eq!(names(d.list(&["kind==view"]).await.expect("list")), ["v1", "v2"]);
    assert_eq!(names(d.list(&["parent==c2"]).await.expect("list")), ["a1", "v1"]);
    assert_eq!(names(d.list(&["parent==c2,kind==view"]).await.expect("list")), ["v1"]);
    assert_eq!(names(d.list(&["kind==view", "name==c1"]).await.expect("list")), ["c1", "v1", "v2"]);
    assert_eq!(names(d.list(&[r#"labels."containerd.io/snapshot/x"==yes"#]).await.expect("list")), ["c2"]);
    assert_eq!(names(d.list(&["labels.team"]).await.expect("list")), ["c2"]);
    assert_eq!(names(d.list(&["name~=^c"]).await.expect("list")), ["c1", "c2"]);
    assert_eq!(names(d.list(&["kind!=committed,parent!=c2"]).await.expect("list")), ["a2", "v2"]);
}

#[tokio::test]
async fn list_streams_many() {
    let mut d = Daemon::start().await;
    for i in 0..250 {
        d.view(&format!("v{i:03}"), "").await.expect("view");
    }
    assert_eq!(d.list(&[]).await.expect("list").len(), 250);
}

#[tokio::test]
async fn layer_file_update() {
    let mut d = Daemon::start().await;
    check_layers(
        &mut d,
        &[
            seq(vec![write("/etc/hosts", "mydomain 10.0.0.1", 0o644), write("/etc/profile", "PATH=/usr/bin", 0o644)]),
            seq(vec![write("/etc/hosts", "mydomain 10.0.0.2", 0o644), write("/etc/profile", "PATH=/usr/bin", 0o666)]),
            seq(vec![write("/etc/hosts", "mydomain 10.0.0.3", 0o644), write("/etc/profile", "PATH=/usr/bin", 0o666)]),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, a)| if i == 0 { seq(vec![mkdir("/etc", 0o755), a]) } else { a })
        .collect::<Vec<_>>(),
    )
    .await;
}

#[tokio::test]
async fn remove_directory_in_lower_layer() {
    let mut d = Daemon::start().await;
    check_layers(
        &mut d,
        &[
            seq(vec![
                mkdir("/lib", 0o700),
                write("/lib/hidden", "", 0o644),
                mkdir("/lib/keep", 0o755),
                write("/lib/keep/foo", "", 0o644),
                write("/a", "", 0o644),
            ]),
            seq(vec![remove_all("/lib"), mkdir("/lib", 0o700), write("/lib/newfile", "", 0o644), remove_all("/a")]),
        ],
    )
    .await;
    // The upper layer records the changes the overlayfs way: an opaque
    // directory and a whiteout, which is what containerd's differ reads.
    let c = d.stat("committed-1").await.expect("stat");
    assert_eq!(c.kind, pb::Kind::Committed as i32);
    let id = fs::read_dir(d.root.join("snapshots"))
        .expect("readdir")
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("fs"))
        .find(|p| p.join("lib/newfile").exists() && !p.join("check").exists())
        .expect("upper layer of committed-1");
    assert!(is_whiteout(&id.join("a")), "/a is a whiteout in the upper layer");
    assert_eq!(xattr(&id.join("lib"), "trusted.overlay.opaque").as_deref(), Some(&b"y"[..]), "/lib is opaque");
}

#[tokio::test]
async fn chown() {
    let mut d = Daemon::start().await;
    check_layers(
        &mut d,
        &[
            seq(vec![
                mkdir("/opt", 0o711),
                mkdir("/opt/a", 0o711),
                mkdir("/opt/a/b", 0o711),
                write("/opt/a/b/file.txt", "hello", 0o644),
            ]),
            seq(vec![
                chown_to("/opt", 1, 1),
                chown_to("/opt/a", 1, 1),
                chown_to("/opt/a/b", 1, 1),
                chown_to("/opt/a/b/file.txt", 1, 1),
            ]),
        ],
    )
    .await;
}

#[tokio::test]
async fn directory_permission_on_commit() {
    let mut d = Daemon::start().await;
    check_layers(
        &mut d,
        &[
            seq(vec![mkdir("/dir1", 0o700), mkdir("/dir2", 0o700), mkdir("/dir3", 0o700), chown_to("/dir3", 1, 1)]),
            seq(vec![
                write("/dir1/f", "...", 0o644),
                mkdir("/dir2/f", 0o700),
                chown_to("/dir2/f", 1, 1),
                write("/dir3/f", "...", 0o644),
            ]),
        ],
    )
    .await;
}

#[tokio::test]
async fn remove_intermediate_snapshot() {
    let mut d = Daemon::start().await;
    d.prepare("base", "").await.expect("prepare");
    d.commit("committed-base", "base").await.expect("commit");
    d.prepare("intermediate", "committed-base").await.expect("prepare");
    d.commit("committed-inter", "intermediate").await.expect("commit");
    d.prepare("toplayer", "committed-inter").await.expect("prepare");
    assert_eq!(code(d.remove("committed-inter").await), Code::FailedPrecondition);
    d.remove("toplayer").await.expect("remove");
    d.remove("committed-inter").await.expect("remove");
    d.remove("committed-base").await.expect("remove");
    assert!(d.dirs().is_empty(), "{:?}", d.dirs());
}

#[tokio::test]
async fn deleted_files_in_child_snapshot() {
    let mut d = Daemon::start().await;
    check_layers(
        &mut d,
        &[
            seq(vec![write("/foo", "foo\n", 0o777), write("/foobar", "foobar\n", 0o777)]),
            remove_all("/foobar"),
            seq(vec![]),
        ],
    )
    .await;
}

#[tokio::test]
async fn move_file_from_lower_layer() {
    let mut d = Daemon::start().await;
    check_layers(
        &mut d,
        &[
            seq(vec![
                mkdir("/dir1", 0o700),
                write("/dir1/f1", "Hello", 0o644),
                mkdir("/dir2", 0o700),
                write("/dir2/f2", "...", 0o644),
            ]),
            seq(vec![
                mkdir("/dir3", 0o700),
                write("/dir3/f1", "Hello", 0o644),
                remove_all("/dir1"),
                hardlink("/dir2/f2", "/dir3/f2"),
                remove_all("/dir2/f2"),
            ]),
        ],
    )
    .await;
}

#[tokio::test]
async fn rename() {
    let mut d = Daemon::start().await;
    check_layers(
        &mut d,
        &[
            seq(vec![
                mkdir("/dir1", 0o700),
                write("/somefiles", "something", 0o644),
                write("/dir1/f1", "dummy file", 0o644),
                symlink("f1", "/dir1/l1"),
            ]),
            seq(vec![rename_to("/dir1", "/dir2"), rename_to("/somefiles", "/dir2/somefiles")]),
        ],
    )
    .await;
}

#[tokio::test]
async fn view_readonly() {
    let mut d = Daemon::start().await;
    d.prepare("preparing", "").await.expect("prepare");
    d.commit("committed", "preparing").await.expect("commit");
    let ms = d.view("view", "committed").await.expect("view");
    {
        let m = Mounted::new(&ms, &d.work("view-mount"));
        let err = fs::write(m.0.join("testfile"), "testcontent").expect_err("a view must be read-only");
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
    }
    // Also for a view over several layers (an overlay without upperdir).
    d.prepare("p2", "committed").await.expect("prepare");
    d.commit("committed2", "p2").await.expect("commit");
    let ms = d.view("view2", "committed2").await.expect("view");
    assert_eq!(ms[0].r#type, "overlay");
    {
        let m = Mounted::new(&ms, &d.work("view-mount2"));
        let err = fs::write(m.0.join("testfile"), "x").expect_err("read-only");
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
    }
    d.remove("view").await.expect("remove");
    d.remove("view2").await.expect("remove");
}

#[tokio::test]
async fn stat_in_walk() {
    let mut d = Daemon::start().await;
    base_snapshots(&mut d).await;
    let all = d.list(&[]).await.expect("list");
    for (name, info) in all {
        assert_eq!(d.stat(&name).await.expect("stat"), info);
    }
}

#[tokio::test]
async fn close_twice() {
    let mut d = Daemon::start().await;
    d.prepare("p", "").await.expect("prepare");
    d.commit("n", "p").await.expect("commit");
    d.remove("n").await.expect("remove");
    d.prepare("kept", "").await.expect("prepare");
    let st = d.stop();
    assert!(st.success(), "clean exit on SIGTERM: {st}");
    assert!(!d.socket.exists(), "socket removed on exit");
    d.restart(Vec::new()).await;
    assert_eq!(d.stat("kept").await.expect("state survives a restart").kind, pb::Kind::Active as i32);
    let st = d.stop();
    assert!(st.success(), "second stop: {st}");
}

#[tokio::test]
async fn root_permission() {
    let mut d = Daemon::start().await;
    let ms = d.prepare("preparing", "").await.expect("prepare");
    assert_eq!(ms[0].r#type, "bind", "an empty active snapshot is a bind mount");
    let m = Mounted::new(&ms, &d.work("preparing"));
    let mode = fs::metadata(&m.0).expect("stat").mode() & 0o7777;
    assert_eq!(mode, 0o755);
}

#[tokio::test]
async fn usage_size_and_inodes() {
    let mut d = Daemon::start().await;
    let ms = d.prepare("p", "").await.expect("prepare");
    let (s0, i0) = d.usage("p").await.expect("usage");
    {
        let m = Mounted::new(&ms, &d.work("p"));
        fs::write(m.0.join("big"), vec![7u8; 64 * 1024]).expect("write");
        fs::create_dir(m.0.join("d")).expect("mkdir");
        fs::hard_link(m.0.join("big"), m.0.join("d/link")).expect("link");
    }
    let (s1, i1) = d.usage("p").await.expect("usage");
    assert!(s1 >= s0 + 64 * 1024, "size grew by the file: {s0} -> {s1}");
    assert_eq!(i1, i0 + 2, "one file (two links) and one dir");
    d.commit("c", "p").await.expect("commit");
    assert_eq!(d.usage("c").await.expect("usage"), (s1, i1), "committed usage is frozen at commit");
}

async fn layers(n: usize) {
    let mut d = Daemon::start().await;
    let mut parent = String::new();
    for i in 0..n {
        let key = format!("layer-{i}-active");
        let ms = d.prepare(&key, &parent).await.expect("prepare");
        {
            let m = Mounted::new(&ms, &d.work("layer"));
            fs::write(m.0.join("bottom"), format!("{i}")).expect("write");
            fs::write(m.0.join(format!("only-{i}")), "").expect("write");
        }
        let name = format!("layer-{i}");
        d.commit(&name, &key).await.expect("commit");
        parent = name;
    }
    let ms = d.view("top-view", &parent).await.expect("view");
    let lower = ms[0].options.iter().find(|o| o.starts_with("lowerdir=")).expect("lowerdir");
    assert_eq!(lower.split(':').count(), n, "lowerdir lists every layer");
    assert!(lower.len() > 4096 || n < 128, "long enough to need compaction");
    let m = Mounted::new(&ms, &d.work("view"));
    assert_eq!(fs::read_to_string(m.0.join("bottom")).expect("read"), format!("{}", n - 1), "newest layer wins");
    for i in 0..n {
        assert!(m.0.join(format!("only-{i}")).exists(), "file of layer {i} visible");
    }
    drop(m);
    let ms = d.prepare("top-active", &parent).await.expect("prepare");
    let m = Mounted::new(&ms, &d.work("active"));
    fs::write(m.0.join("bottom"), "top").expect("write through the top overlay");
    assert_eq!(fs::read_to_string(m.0.join("bottom")).expect("read"), "top");
}

#[tokio::test]
async fn layers_128_mount() {
    layers(128).await;
}

#[tokio::test]
async fn layers_500_mount() {
    // overlayfs stacks at most 500 lower layers (OVL_MAX_STACK), plus the
    // upper one of an active snapshot.
    layers(500).await;
}
