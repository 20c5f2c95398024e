//! berth-snapshotter as containerd 1.6 uses it: a proxy snapshot plugin
//! that `ctr images import --snapshotter berth` unpacks into and that
//! `ctr run --snapshotter berth` runs containers on (with the default runc
//! runtime). Each test has its own containerd and snapshotter.

use conformance::containerd::{Containerd, Options, SnapshotterProcess};
use conformance::image::{busybox_layer, write_oci_archive, Layer};

const NS: &str = "berth-test";

// Fields drop in declaration order: containerd (and its shims) before the
// snapshotter whose layers they mount.
struct Setup {
    ctd: Containerd,
    snap: SnapshotterProcess,
    work: tempfile::TempDir,
}

fn setup() -> Setup {
    setup_with(Options::default())
}

/// As `setup`, with containerd started as `opts` say (its proxies are set here).
fn setup_with(opts: Options<'_>) -> Setup {
    let snap = SnapshotterProcess::start().expect("start berth-snapshotter");
    let proxies = [("berth", snap.socket.as_path())];
    let ctd = Containerd::start_with(Options { proxies: &proxies, ..opts }).expect("start containerd");
    let work = tempfile::Builder::new().prefix("berth-img-").tempdir().expect("tempdir");
    Setup { snap, ctd, work }
}

/// Stops both daemons and checks they left no process and no mount.
fn teardown_and_check_leaks(s: Setup) {
    let dirs = [s.snap.dir.path().to_path_buf(), s.ctd.dir.path().to_path_buf(), s.work.path().to_path_buf()];
    let pids = [s.snap.pid(), s.ctd.pid()];
    drop(s);
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    for d in &dirs {
        assert!(!info.contains(&*d.to_string_lossy()), "mounts left under {}", d.display());
        assert!(!d.exists(), "{} left behind", d.display());
    }
    for pid in pids.into_iter().flatten() {
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "process {pid} still running");
    }
}

impl Setup {
    fn import(&self, name: &str, layers: &[Layer]) {
        let archive = self.work.path().join("image.tar");
        write_oci_archive(&archive, name, layers, &["/bin/sh"]).expect("build image");
        let out = self
            .ctd
            .ctr(NS, &["images", "import", "--snapshotter", "berth", &archive.to_string_lossy()])
            .unwrap_or_else(|e| panic!("import: {e}\ncontainerd log:\n{}", self.ctd.log()));
        assert!(out.contains(name.trim_start_matches("docker.io/")) || out.contains("unpacking"), "{out}");
    }

    fn run(&self, image: &str, id: &str, script: &str) -> String {
        self.run_with(&[], image, id, script)
    }

    /// `ctr run --rm` on the berth snapshotter, with `extra` flags before the image.
    fn run_with(&self, extra: &[&str], image: &str, id: &str, script: &str) -> String {
        let mut args = vec!["run", "--snapshotter", "berth", "--rm"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[image, id, "/bin/sh", "-c", script]);
        self.ctd.ctr(NS, &args).unwrap_or_else(|e| panic!("run: {e}\ncontainerd log:\n{}", self.ctd.log()))
    }

    fn committed_snapshots(&self) -> usize {
        let out = self.ctd.ctr(NS, &["snapshots", "--snapshotter", "berth", "ls"]).expect("snapshots ls");
        out.lines().skip(1).filter(|l| l.contains("Committed")).count()
    }

    fn remove_image_and_check_empty(&self, image: &str) {
        self.ctd.ctr(NS, &["images", "rm", "--sync", image]).expect("images rm");
        let left = self.ctd.ctr(NS, &["snapshots", "--snapshotter", "berth", "ls"]).expect("snapshots ls");
        assert_eq!(left.lines().skip(1).count(), 0, "snapshots left in containerd: {left}");
        assert!(self.snap.layer_dirs().is_empty(), "layer directories left: {:?}", self.snap.layer_dirs());
    }
}

#[test]
fn containerd_imports_and_runs_an_image_with_whiteouts_on_berth() {
    let s = setup();
    let image = "docker.io/berth/whiteouts:latest";
    let layers = vec![
        busybox_layer().expect("busybox layer"),
        Layer::default()
            .dir("data", 0o755)
            .file("data/a.txt", "a2\n", 0o644)
            .file("data/gone.txt", "gone\n", 0o644)
            .dir("olddir", 0o755)
            .file("olddir/f1", "1", 0o644)
            .dir("olddir/sub", 0o700)
            .file("olddir/sub/f2", "2", 0o644)
            .file("etc/layer2", "2\n", 0o600),
        Layer::default()
            .file("data/a.txt", "a3\n", 0o644)
            .whiteout("data/gone.txt")
            .whiteout("etc/layer2")
            .opaque("olddir")
            .file("olddir/new.txt", "new\n", 0o640),
        Layer::default().file("data/b.txt", "b4\n", 0o644).symlink("data/link", "a.txt"),
    ];
    s.import(image, &layers);
    assert_eq!(s.committed_snapshots(), 4, "one committed snapshot per layer");

    let out = s.run(
        image,
        "whiteouts",
        "cat /data/a.txt /data/link /data/b.txt; ls -A /data; echo --; ls -A /olddir; echo --; \
         stat -c '%a %U' /olddir/new.txt /tmp; test -e /etc/layer2 || echo no-layer2; \
         echo w > /data/written && cat /data/written; /bin/busybox true && echo ok",
    );
    assert_eq!(
        out, "a3\na3\nb4\na.txt\nb.txt\nlink\n--\nnew.txt\n--\n640 root\n1777 root\nno-layer2\nw\nok\n",
        "what the container sees"
    );
    // containerd removes a deleted container's snapshot from the backend
    // at its next garbage collection, so the image's 4 layers and maybe
    // the container's are here now; all must go with the image.
    assert!(s.snap.layer_dirs().len() >= 4, "{:?}", s.snap.layer_dirs());
    s.remove_image_and_check_empty(image);
    teardown_and_check_leaks(s);
}

fn many_layers(n: usize) -> Vec<Layer> {
    let mut layers = vec![busybox_layer().expect("busybox layer").dir("layers", 0o755)];
    for i in 1..n {
        layers.push(Layer::default().file(&format!("layers/{i}"), "", 0o644).file(
            "layers/top",
            format!("{i}\n"),
            0o644,
        ));
    }
    layers
}

fn run_on_layers(n: usize) {
    let s = setup();
    let image = format!("docker.io/berth/layers{n}:latest");
    s.import(&image, &many_layers(n));
    assert_eq!(s.committed_snapshots(), n);
    let out = s.run(&image, &format!("layers{n}"), "cat /layers/top; ls /layers | wc -l");
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), [format!("{}", n - 1), format!("{n}")]);
    s.remove_image_and_check_empty(&image);
    teardown_and_check_leaks(s);
}

#[test]
fn containerd_runs_a_container_on_128_layers() {
    run_on_layers(128);
}

#[test]
fn containerd_runs_a_container_on_500_layers() {
    run_on_layers(500);
}

/// ctr's snapshot commands, which go through containerd's metadata layer
/// to the proxy: prepare, commit, view, mounts, info, label, usage, rm.
#[test]
fn ctr_snapshot_commands_work_through_containerd() {
    // `ctr snapshots view` gives v1 neither a lease nor a gc.root label, so any collection
    // takes it, and containerd 1.6's collector leaves it in its parent's children
    // (containerd#11908): c2 could never be removed. CI caught the start-up collection
    // (100ms after boot) between the view and the listing; here it waits beyond the test.
    let s = setup_with(Options { gc_startup_delay: Some("1h"), ..Default::default() });
    let ctr = |args: &[&str]| {
        let mut a = vec!["snapshots", "--snapshotter", "berth"];
        a.extend_from_slice(args);
        s.ctd.ctr(NS, &a).unwrap_or_else(|e| panic!("{e}\ncontainerd log:\n{}", s.ctd.log()))
    };
    ctr(&["prepare", "k1"]);
    let target = s.work.path().join("k1");
    std::fs::create_dir(&target).expect("mkdir");
    let mount_cmd = ctr(&["mounts", &target.to_string_lossy(), "k1"]);
    assert!(mount_cmd.contains("mount -t bind"), "{mount_cmd}");
    ctr(&["commit", "c1", "k1"]);
    ctr(&["prepare", "k2", "c1"]);
    let mount_cmd = ctr(&["mounts", &target.to_string_lossy(), "k2"]);
    assert!(mount_cmd.contains("mount -t overlay") && mount_cmd.contains("upperdir="), "{mount_cmd}");
    ctr(&["commit", "c2", "k2"]);
    // A view: read only, both layers below, no upper directory.
    let view = ctr(&["view", "-t", &target.to_string_lossy(), "v1", "c2"]);
    assert!(view.contains("mount -t overlay") && view.contains("lowerdir=") && !view.contains("upperdir="), "{view}");
    let info = ctr(&["info", "c2"]);
    assert!(info.contains("\"Parent\": \"c1\"") && info.contains("\"Kind\": \"Committed\""), "{info}");
    ctr(&["label", "c2", "team=berth"]);
    assert!(ctr(&["info", "c2"]).contains("\"team\": \"berth\""));
    let usage = ctr(&["usage"]);
    assert!(usage.lines().any(|l| l.starts_with("c2")), "{usage}");
    // `ctr snapshots view` gives its snapshot no gc.root label (prepare and commit do), so
    // containerd's garbage collector, which runs on its own schedule after mutations, may
    // already have removed v1: it is listed until then, c1 and c2 always.
    let ls = ctr(&["ls"]);
    assert_eq!(ls.lines().count(), 4, "header + c1, c2, v1: {ls}");
    assert!(s.ctd.ctr(NS, &["snapshots", "--snapshotter", "berth", "rm", "c1"]).is_err(), "c1 has a child");
    ctr(&["rm", "v1", "c2", "c1"]);
    // containerd forgets at once and removes from the backend at its next
    // garbage collection; an image removal with --sync runs one.
    let image = "docker.io/berth/tiny:latest";
    s.import(image, &[busybox_layer().expect("layer")]);
    s.remove_image_and_check_empty(image);
    teardown_and_check_leaks(s);
}

/// `ctr run --remap-labels --uidmap … --gidmap …`: the container runs in a
/// user namespace and, through berth's idmapped layers, its root owns the
/// image's root-owned files (without remapping, /root (0700) would belong
/// to nobody and the rootfs would not even be writable for runc's mkdirs).
#[test]
fn containerd_runs_a_user_namespaced_container_on_idmapped_layers() {
    let s = setup();
    let image = "docker.io/berth/userns:latest";
    s.import(image, &[busybox_layer().expect("busybox layer").file("etc/hello", "hi\n", 0o600)]);
    let out = s.run_with(
        &["--remap-labels", "--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536"],
        image,
        "userns",
        "cat /proc/self/uid_map; stat -c '%u:%g %a' /root /bin/busybox; \
         cat /etc/hello; echo w > /root/x && cat /root/x",
    );
    assert_eq!(out.split_whitespace().collect::<Vec<_>>().join(" "), "0 100000 65536 0:0 700 0:0 755 hi w", "{out}");
    s.remove_image_and_check_empty(image);
    let views = std::fs::read_dir(s.snap.root.join("idmapped")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(views, 0, "idmapped views released");
    teardown_and_check_leaks(s);
}

/// A test that dies with a container still running must not leak it: the
/// fixture force-deletes tasks, stops containerd, kills its shims by PID
/// and unmounts what is left.
#[test]
fn fixture_cleans_up_a_container_left_running() {
    let s = setup();
    let image = "docker.io/berth/left:latest";
    s.import(image, &[busybox_layer().expect("busybox layer")]);
    s.ctd
        .ctr(NS, &["run", "--snapshotter", "berth", "-d", image, "left", "/bin/sleep", "1000"])
        .unwrap_or_else(|e| panic!("run -d: {e}\ncontainerd log:\n{}", s.ctd.log()));
    let tasks = s.ctd.ctr(NS, &["tasks", "ls"]).expect("tasks ls");
    assert!(tasks.contains("RUNNING"), "{tasks}");
    let dir = s.ctd.dir.path().to_path_buf();
    teardown_and_check_leaks(s);
    let left: Vec<_> = std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok())
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(&*dir.to_string_lossy()))
                .unwrap_or(false)
        })
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "processes of the test's containerd left: {left:?}");
}
