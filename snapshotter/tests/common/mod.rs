//! A berth-snapshotter process on a private root and socket, driven over
//! gRPC, and helpers to mount, fill and compare snapshot trees.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use berth_snapshotter::mounts;
use berth_snapshotter::proto::snapshots as pb;
use berth_snapshotter::proto::snapshots::snapshots_client::SnapshotsClient;
use berth_snapshotter::proto::Mount;
use tonic::transport::Channel;

pub use conformance::containerd::{SnapshotterOptions, SnapshotterProcess};

pub type Client = SnapshotsClient<Channel>;

/// A berth-snapshotter (conformance's process fixture, on the binary cargo built for these
/// tests) and a gRPC client connected to it.
pub struct Daemon {
    pub process: SnapshotterProcess,
    pub root: PathBuf,
    pub socket: PathBuf,
    pub client: Client,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_berth-snapshotter")
}

/// Waits until the daemon answers on its socket (or has exited).
pub async fn connect(child: &mut Child, socket: &Path) -> Client {
    for _ in 0..2000 {
        if let Ok(Some(st)) = child.try_wait() {
            panic!("berth-snapshotter exited early: {st}");
        }
        if let Some(c) = try_connect(socket).await {
            return c;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("berth-snapshotter did not come up on {}", socket.display());
}

async fn try_connect(socket: &Path) -> Option<Client> {
    if !socket.exists() {
        return None;
    }
    berth_snapshotter::client::connect(socket).await.ok()
}

/// Connects to a snapshotter whose socket is there: it may not be listening yet.
async fn connect_started(socket: &Path) -> Client {
    for _ in 0..2000 {
        if let Some(c) = try_connect(socket).await {
            return c;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("berth-snapshotter does not answer on {}", socket.display());
}

impl Daemon {
    pub async fn start() -> Daemon {
        Self::start_with(Vec::new()).await
    }

    pub async fn start_with(env: Vec<(String, String)>) -> Daemon {
        let process =
            SnapshotterProcess::start_with(SnapshotterOptions { binary: bin().into(), log_level: "debug".into(), env })
                .expect("start berth-snapshotter");
        let client = connect_started(&process.socket).await;
        Daemon { root: process.root.clone(), socket: process.socket.clone(), process, client }
    }

    /// The daemon's private directory (its root and socket are in it).
    pub fn dir(&self) -> &Path {
        self.process.dir.path()
    }

    pub fn work(&self, name: &str) -> PathBuf {
        let p = self.dir().join("work").join(name);
        fs::create_dir_all(&p).expect("mkdir work");
        p
    }

    pub fn pid(&self) -> i32 {
        self.process.pid().expect("running") as i32
    }

    /// SIGTERM and wait; returns the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        self.process.stop().expect("running")
    }

    pub fn kill9(&mut self) {
        self.process.kill9();
    }

    /// Waits for a child that is expected to kill itself at a crash point.
    pub fn wait_crashed(&mut self) -> std::process::ExitStatus {
        self.process.wait_exit().expect("running")
    }

    pub async fn restart(&mut self, env: Vec<(String, String)>) {
        self.process.restart(env).expect("restart berth-snapshotter");
        self.client = connect_started(&self.socket).await;
    }

    pub async fn prepare(&mut self, key: &str, parent: &str) -> Result<Vec<Mount>, tonic::Status> {
        self.prepare_labels(key, parent, HashMap::new()).await
    }

    pub async fn prepare_labels(
        &mut self,
        key: &str,
        parent: &str,
        labels: HashMap<String, String>,
    ) -> Result<Vec<Mount>, tonic::Status> {
        let r =
            pb::PrepareSnapshotRequest { snapshotter: "berth".into(), key: key.into(), parent: parent.into(), labels };
        Ok(self.client.prepare(r).await?.into_inner().mounts)
    }

    pub async fn view(&mut self, key: &str, parent: &str) -> Result<Vec<Mount>, tonic::Status> {
        let r = pb::ViewSnapshotRequest {
            snapshotter: "berth".into(),
            key: key.into(),
            parent: parent.into(),
            labels: HashMap::new(),
        };
        Ok(self.client.view(r).await?.into_inner().mounts)
    }

    pub async fn mounts(&mut self, key: &str) -> Result<Vec<Mount>, tonic::Status> {
        let r = pb::MountsRequest { snapshotter: "berth".into(), key: key.into() };
        Ok(self.client.mounts(r).await?.into_inner().mounts)
    }

    pub async fn commit(&mut self, name: &str, key: &str) -> Result<(), tonic::Status> {
        self.commit_labels(name, key, HashMap::new()).await
    }

    pub async fn commit_labels(
        &mut self,
        name: &str,
        key: &str,
        labels: HashMap<String, String>,
    ) -> Result<(), tonic::Status> {
        let r = pb::CommitSnapshotRequest { snapshotter: "berth".into(), name: name.into(), key: key.into(), labels };
        self.client.commit(r).await?;
        Ok(())
    }

    pub async fn remove(&mut self, key: &str) -> Result<(), tonic::Status> {
        let r = pb::RemoveSnapshotRequest { snapshotter: "berth".into(), key: key.into() };
        self.client.remove(r).await?;
        Ok(())
    }

    pub async fn stat(&mut self, key: &str) -> Result<pb::Info, tonic::Status> {
        let r = pb::StatSnapshotRequest { snapshotter: "berth".into(), key: key.into() };
        Ok(self.client.stat(r).await?.into_inner().info.expect("info"))
    }

    pub async fn update(&mut self, info: pb::Info, paths: &[&str]) -> Result<pb::Info, tonic::Status> {
        let r = pb::UpdateSnapshotRequest {
            snapshotter: "berth".into(),
            info: Some(info),
            update_mask: if paths.is_empty() {
                None
            } else {
                Some(prost_types::FieldMask { paths: paths.iter().map(|s| s.to_string()).collect() })
            },
        };
        Ok(self.client.update(r).await?.into_inner().info.expect("info"))
    }

    pub async fn list(&mut self, filters: &[&str]) -> Result<BTreeMap<String, pb::Info>, tonic::Status> {
        let r = pb::ListSnapshotsRequest {
            snapshotter: "berth".into(),
            filters: filters.iter().map(|s| s.to_string()).collect(),
        };
        let mut stream = self.client.list(r).await?.into_inner();
        let mut out = BTreeMap::new();
        while let Some(msg) = stream.message().await? {
            for i in msg.info {
                out.insert(i.name.clone(), i);
            }
        }
        Ok(out)
    }

    pub async fn usage(&mut self, key: &str) -> Result<(i64, i64), tonic::Status> {
        let r = pb::UsageRequest { snapshotter: "berth".into(), key: key.into() };
        let u = self.client.usage(r).await?.into_inner();
        Ok((u.size, u.inodes))
    }

    pub async fn cleanup(&mut self) -> Result<(), tonic::Status> {
        self.client.cleanup(pb::CleanupRequest { snapshotter: "berth".into() }).await?;
        Ok(())
    }

    /// Entries of `<root>/snapshots`.
    pub fn dirs(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.root.join("snapshots"))
            .expect("read snapshots dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for Daemon {
    /// SIGKILL rather than the fixture's SIGTERM: the client's connection is still open, and
    /// a graceful stop would wait for it.
    fn drop(&mut self) {
        self.process.kill9();
    }
}

/// A mount that is undone when dropped, even if the test fails.
pub struct Mounted(pub PathBuf);

impl Mounted {
    pub fn new(ms: &[Mount], target: &Path) -> Mounted {
        fs::create_dir_all(target).expect("mkdir target");
        mounts::mount_all(ms, target).unwrap_or_else(|e| panic!("mounting {}: {e}", target.display()));
        Mounted(target.to_path_buf())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = mounts::unmount(&self.0);
    }
}

pub fn code(r: Result<impl std::fmt::Debug, tonic::Status>) -> tonic::Code {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(s) => s.code(),
    }
}

/// One layer's changes, applied to a mounted snapshot or to a plain
/// reference directory alike.
pub type Applier = Box<dyn Fn(&Path)>;

pub fn write(p: &str, data: &str, mode: u32) -> Applier {
    let (p, data) = (p.to_string(), data.to_string());
    Box::new(move |root| {
        let f = root.join(p.trim_start_matches('/'));
        fs::write(&f, &data).expect("write");
        fs::set_permissions(&f, fs::Permissions::from_mode(mode)).expect("chmod");
    })
}

pub fn mkdir(p: &str, mode: u32) -> Applier {
    let p = p.to_string();
    Box::new(move |root| {
        let d = root.join(p.trim_start_matches('/'));
        fs::create_dir(&d).expect("mkdir");
        fs::set_permissions(&d, fs::Permissions::from_mode(mode)).expect("chmod");
    })
}

pub fn remove_all(p: &str) -> Applier {
    let p = p.to_string();
    Box::new(move |root| {
        let t = root.join(p.trim_start_matches('/'));
        let md = fs::symlink_metadata(&t).expect("stat for removal");
        if md.is_dir() { fs::remove_dir_all(&t) } else { fs::remove_file(&t) }.expect("remove");
    })
}

pub fn chown_to(p: &str, uid: u32, gid: u32) -> Applier {
    let p = p.to_string();
    Box::new(move |root| {
        std::os::unix::fs::lchown(root.join(p.trim_start_matches('/')), Some(uid), Some(gid)).expect("chown")
    })
}

pub fn hardlink(old: &str, new: &str) -> Applier {
    let (o, n) = (old.to_string(), new.to_string());
    Box::new(move |root| {
        fs::hard_link(root.join(o.trim_start_matches('/')), root.join(n.trim_start_matches('/'))).expect("link")
    })
}

pub fn symlink(target: &str, p: &str) -> Applier {
    let (t, p) = (target.to_string(), p.to_string());
    Box::new(move |root| std::os::unix::fs::symlink(&t, root.join(p.trim_start_matches('/'))).expect("symlink"))
}

/// Renames with mv(1), which copies when overlayfs answers EXDEV for a
/// directory from a lower layer, as any program renaming in a container must.
pub fn rename_to(from: &str, to: &str) -> Applier {
    let (f, t) = (from.to_string(), to.to_string());
    Box::new(move |root| {
        let st = Command::new("mv")
            .arg(root.join(f.trim_start_matches('/')))
            .arg(root.join(t.trim_start_matches('/')))
            .status()
            .expect("mv");
        assert!(st.success(), "mv {f} {t}");
    })
}

pub fn seq(v: Vec<Applier>) -> Applier {
    Box::new(move |root| v.iter().for_each(|a| a(root)))
}

/// What a tree looks like to a program: names, types, permission bits,
/// owners, contents and link targets (not times, not inode numbers).
pub fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let p = root.join(&rel);
        let md = fs::symlink_metadata(&p).expect("lstat");
        let ft = md.file_type();
        let what = if ft.is_dir() {
            let mut names: Vec<_> = fs::read_dir(&p).expect("readdir").map(|e| e.expect("entry").file_name()).collect();
            names.sort();
            for n in names {
                stack.push(rel.join(n));
            }
            "dir".to_string()
        } else if ft.is_symlink() {
            format!("link->{}", fs::read_link(&p).expect("readlink").display())
        } else if ft.is_file() {
            format!("file:{}", String::from_utf8_lossy(&fs::read(&p).expect("read")))
        } else if ft.is_char_device() {
            format!("chr:{}", md.rdev())
        } else {
            "other".to_string()
        };
        let name = if rel.as_os_str().is_empty() { "/".to_string() } else { format!("/{}", rel.display()) };
        out.insert(name, format!("{what} mode={:o} {}:{}", md.mode() & 0o7777, md.uid(), md.gid()));
    }
    out
}

pub fn assert_same_tree(got: &Path, want: &Path) {
    let (g, w) = (tree(got), tree(want));
    if g != w {
        let mut diff = String::new();
        for (k, v) in &w {
            if g.get(k) != Some(v) {
                diff.push_str(&format!("  {k}: want {v}, got {:?}\n", g.get(k)));
            }
        }
        for (k, v) in &g {
            if !w.contains_key(k) {
                diff.push_str(&format!("  {k}: unexpected {v}\n"));
            }
        }
        panic!("trees differ ({} vs {}):\n{diff}", got.display(), want.display());
    }
}

/// containerd's checkSnapshots: each applier becomes a committed layer on
/// top of the previous; a view and an active snapshot of the top must look
/// like all appliers run in order on an empty directory.
pub async fn check_layers(d: &mut Daemon, appliers: &[Applier]) {
    let reference = d.work("reference");
    fs::set_permissions(&reference, fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut parent = String::new();
    for (i, a) in appliers.iter().enumerate() {
        let key = format!("preparing-{i}");
        let ms = d.prepare(&key, &parent).await.expect("prepare");
        {
            let m = Mounted::new(&ms, &d.work(&format!("layer-{i}")));
            a(&m.0);
        }
        a(&reference);
        let name = format!("committed-{i}");
        d.commit(&name, &key).await.expect("commit");
        parent = name;
    }
    let ms = d.view("check-view", &parent).await.expect("view");
    let v = Mounted::new(&ms, &d.work("check-view"));
    assert_same_tree(&v.0, &reference);
    let ms = d.prepare("check-active", &parent).await.expect("prepare");
    let a = Mounted::new(&ms, &d.work("check-active"));
    assert_same_tree(&a.0, &reference);
}

pub fn is_whiteout(p: &Path) -> bool {
    fs::symlink_metadata(p).map(|m| m.file_type().is_char_device() && m.rdev() == 0).unwrap_or(false)
}

pub fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let cp = CString::new(p.as_os_str().as_bytes()).ok()?;
    let cn = CString::new(OsStr::new(name).as_bytes()).ok()?;
    let mut buf = vec![0u8; 256];
    // SAFETY: valid C strings and a buffer of the length passed.
    let n = unsafe { libc::lgetxattr(cp.as_ptr(), cn.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(buf)
}
