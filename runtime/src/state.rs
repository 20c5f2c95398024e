//! The state store: `<root>/<id>/state.json`, written atomically (temp file, then an exchange
//! or a rename: `replace`) and guarded by an flock on the container's directory for
//! commands that change it.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use oci_spec::runtime::{Hooks, LinuxResources, LinuxSeccomp, Process};
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub const OCI_VERSION: &str = "1.3.0";
const STATE_FILE: &str = "state.json";
/// The socket the created init listens on; `start` connects to it. While it exists the
/// container is "created".
pub const START_SOCKET: &str = "start.sock";

#[derive(Debug, Error)]
pub enum StateError {
    #[error("container \"{0}\" does not exist")]
    NotFound(String),
    #[error("container with id \"{0}\" already exists")]
    Exists(String),
    #[error("state root {path}: {source}")]
    Root { path: PathBuf, source: io::Error },
    #[error("container \"{id}\": {what}: {source}")]
    Io { id: String, what: &'static str, source: io::Error },
    #[error("container \"{id}\": corrupt state file: {source}")]
    Corrupt { id: String, source: serde_json::Error },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // pad, not write_str: `list` aligns its columns with width specifiers.
        f.pad(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What berth keeps about a container between commands.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub id: String,
    pub pid: i32,
    /// Start time of the init (clock ticks since boot): tells a live init from a reused pid.
    pub init_start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    /// The cgroup manager's own record.
    pub cgroup: crate::cgroups::CgroupState,
    #[serde(default)]
    pub hooks: Option<Hooks>,
    /// linux.resources as applied (create, then every `update`), without the device rules,
    /// so that an update changes only what it names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<LinuxResources>,
    /// Without a mount namespace of its own: the id of the container's rootfs mount in
    /// the runtime's mount namespace, which `delete` detaches (rootfs::shared_ns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs_mount: Option<u64>,
    /// The config's `process` and `linux.seccomp` as of `create`: what `exec` builds on. The
    /// bundle's config.json is not read again (runtime-spec: changes after create have no
    /// effect). Absent in records of an older berth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<Process>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<LinuxSeccomp>,
    /// The init has no pid namespace of its own (none in the config, or one joined by
    /// path): its death takes no other process with it, so `kill` with SIGKILL signals the
    /// whole cgroup (runc 1.2 on). False in records of an older berth.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared_pid_ns: bool,
    /// `linux.personality` as of `create`: every process of the container gets it, an
    /// exec'd one too (runc 1.2 on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub personality: Option<oci_spec::runtime::LinuxPersonality>,
}

/// What `state` and `list` print of a container, and what its status is derived from,
/// borrowed from its state file's bytes: the fields of a [`Record`] without the config it
/// keeps for `exec` and `update` (process, seccomp, resources, hooks), which serde then
/// skips without building them (a seccomp profile alone, Docker's default, is ~20 KiB of
/// JSON), and of its cgroup only where the freezer is. `list` reads every container's.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary<'a> {
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    pub pid: i32,
    pub init_start_time: u64,
    #[serde(borrow)]
    pub bundle: Cow<'a, str>,
    #[serde(borrow)]
    pub rootfs: Cow<'a, str>,
    #[serde(borrow)]
    pub created: Cow<'a, str>,
    #[serde(borrow)]
    pub owner: Cow<'a, str>,
    /// Sorted, as runc (Go's encoding/json) prints them.
    #[serde(default, borrow)]
    pub annotations: BTreeMap<Cow<'a, str>, Cow<'a, str>>,
    #[serde(borrow)]
    cgroup: crate::cgroups::RecordedFreezer<'a>,
}

/// The JSON `state` prints: runtime-spec's state, as runc prints it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Public<'a> {
    pub oci_version: &'static str,
    pub id: &'a str,
    pub pid: i32,
    pub status: Status,
    pub bundle: &'a str,
    pub rootfs: &'a str,
    pub created: &'a str,
    pub owner: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: &'a BTreeMap<Cow<'a, str>, Cow<'a, str>>,
}

/// The state root (`--root`).
pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Store { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Creates `<root>/<id>` (0700, like the root itself), failing if the id is taken.
    pub fn create_dir(&self, id: &str) -> Result<PathBuf, StateError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .map_err(|e| StateError::Root { path: self.root.clone(), source: e })?;
        let dir = self.dir(id);
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(StateError::Exists(id.to_string())),
            Err(e) => Err(StateError::Io { id: id.to_string(), what: "creating the state directory", source: e }),
        }
    }

    /// Takes the container's lock; held until the returned guard is dropped.
    pub fn lock(&self, id: &str) -> Result<Flock<File>, StateError> {
        // A directory only: not a FIFO (whose open blocks) or a symlink put in its place.
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(self.dir(id))
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => StateError::NotFound(id.to_string()),
                _ => StateError::Io { id: id.to_string(), what: "opening the state directory", source: e },
            })?;
        Flock::lock(dir, FlockArg::LockExclusive).map_err(|(_, e)| StateError::Io {
            id: id.to_string(),
            what: "locking",
            source: e.into(),
        })
    }

    pub fn save(&self, rec: &Record) -> Result<(), StateError> {
        let io_err = |what, source| StateError::Io { id: rec.id.clone(), what, source };
        let dir = self.dir(&rec.id);
        let tmp = dir.join(".state.json.tmp");
        let data = serde_json::to_vec(rec).map_err(|e| io_err("encoding state", e.into()))?;
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| io_err("writing state", e))?;
        f.write_all(&data).map_err(|e| io_err("writing state", e))?;
        drop(f);
        replace(&tmp, &dir.join(STATE_FILE)).map_err(|e| io_err("writing state", e))
    }

    pub fn load(&self, id: &str) -> Result<Record, StateError> {
        crate::id::validate(id).map_err(|_| StateError::NotFound(id.to_string()))?;
        let data = self.read_state(None, id)?;
        serde_json::from_slice(&data).map_err(|e| StateError::Corrupt { id: id.to_string(), source: e })
    }

    /// The record of `id` and its status as of now.
    pub fn load_with_status(&self, id: &str) -> Result<(Record, Status), StateError> {
        let rec = self.load(id)?;
        let status = self.status(&rec);
        Ok((rec, status))
    }

    /// `f` with what `state` prints of `id` and its status.
    pub fn with_summary<T, E: From<StateError>>(
        &self,
        id: &str,
        f: impl FnOnce(&Summary<'_>, Status) -> Result<T, E>,
    ) -> Result<T, E> {
        crate::id::validate(id).map_err(|_| StateError::NotFound(id.to_string()))?;
        let data = self.read_state(None, id)?;
        let (sum, status) = self.summary_of(None, id, &data)?;
        f(&sum, status)
    }

    /// `f` with the summary and status of every container under the root, sorted by id;
    /// those whose state cannot be read (a create in progress or interrupted) are left out.
    /// Their files are opened relative to the root, opened once: `list` reads two of each.
    pub fn each_summary<E: From<StateError>>(
        &self,
        mut f: impl FnMut(&Summary<'_>, Status) -> Result<(), E>,
    ) -> Result<(), E> {
        let ids = self.ids()?;
        let root: OwnedFd = match File::open(&self.root) {
            Ok(f) => f.into(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StateError::Root { path: self.root.clone(), source: e }.into()),
        };
        for id in ids.iter().filter(|id| crate::id::validate(id).is_ok()) {
            let Ok(data) = self.read_state(Some(root.as_fd()), id) else { continue };
            if let Ok((sum, status)) = self.summary_of(Some(root.as_fd()), id, &data) {
                f(&sum, status)?;
            }
        }
        Ok(())
    }

    /// `id`'s summary in `data` and its status (its files relative to `root`, if given).
    fn summary_of<'a>(
        &self,
        root: Option<BorrowedFd<'_>>,
        id: &str,
        data: &'a [u8],
    ) -> Result<(Summary<'a>, Status), StateError> {
        let sum: Summary =
            serde_json::from_slice(data).map_err(|e| StateError::Corrupt { id: id.to_string(), source: e })?;
        let status = self.status_of(root, &sum.id, sum.pid, sum.init_start_time, || sum.cgroup.is_frozen());
        Ok((sum, status))
    }

    /// The bytes of `id`'s state file (relative to `root`, the root's fd, if given).
    fn read_state(&self, root: Option<BorrowedFd<'_>>, id: &str) -> Result<Vec<u8>, StateError> {
        let rel = format!("{id}/{STATE_FILE}");
        let read = match root {
            Some(fd) => open_regular_at(fd, &rel).and_then(|f| read_regular_file(f, &rel)),
            None => read_regular(&self.root.join(&rel)),
        };
        read.map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StateError::NotFound(id.to_string()),
            _ => StateError::Io { id: id.to_string(), what: "reading state", source: e },
        })
    }

    /// Ids of every container under the root, sorted.
    pub fn ids(&self) -> Result<Vec<String>, StateError> {
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StateError::Root { path: self.root.clone(), source: e }),
        };
        // Every directory: one without a state file (a create in progress, or interrupted)
        // fails to load, and the callers skip it; asking here first would cost a statx each.
        let mut ids: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    pub fn remove(&self, id: &str) -> Result<(), StateError> {
        match fs::remove_dir_all(self.dir(id)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StateError::Io { id: id.to_string(), what: "removing the state directory", source: e }),
        }
    }

    /// The container's status, derived from the live system rather than stored, so it is
    /// right even after the init died behind our back.
    pub fn status(&self, rec: &Record) -> Status {
        self.status_of(None, &rec.id, rec.pid, rec.init_start_time, || rec.cgroup_manager().is_frozen())
    }

    fn status_of(
        &self,
        root: Option<BorrowedFd<'_>>,
        id: &str,
        pid: i32,
        init_start_time: u64,
        is_frozen: impl FnOnce() -> Result<bool, crate::cgroups::CgroupError>,
    ) -> Status {
        // No init yet: a create in progress, or one that was killed (delete --force cleans up).
        if pid == 0 {
            return Status::Creating;
        }
        if !crate::sys::process_alive(pid, init_start_time) {
            return Status::Stopped;
        }
        // runtime-spec has no "paused"; runc reports it while the freezer holds the cgroup
        // (a created container can be paused too).
        if is_frozen().unwrap_or(false) {
            return Status::Paused;
        }
        let start_socket = match root {
            Some(fd) => nix::sys::stat::fstatat(
                fd,
                format!("{id}/{START_SOCKET}").as_str(),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .is_ok(),
            None => self.dir(id).join(START_SOCKET).exists(),
        };
        if start_socket {
            return Status::Created;
        }
        Status::Running
    }
}

impl Summary<'_> {
    pub fn public(&self, status: Status) -> Public<'_> {
        Public {
            oci_version: OCI_VERSION,
            id: &self.id,
            pid: if status == Status::Stopped { 0 } else { self.pid },
            status,
            bundle: &self.bundle,
            rootfs: &self.rootfs,
            created: &self.created,
            owner: &self.owner,
            annotations: &self.annotations,
        }
    }
}

impl Record {
    /// The container's cgroup, reopened from what create recorded.
    pub fn cgroup_manager(&self) -> Box<dyn crate::cgroups::Manager> {
        crate::cgroups::from_state(&self.cgroup)
    }
}

/// The contents of a regular file at `path`, refusing anything else without blocking on it:
/// a FIFO or a device put in place of a state file (whose open or read would wait forever),
/// or a symlink (which could point anywhere).
pub fn read_regular(path: &Path) -> io::Result<Vec<u8>> {
    let f =
        OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY).open(path)?;
    read_regular_file(f, path)
}

/// Opens `rel` below the directory `dir` as [`read_regular`] opens its path.
fn open_regular_at(dir: BorrowedFd<'_>, rel: &str) -> io::Result<File> {
    use nix::fcntl::OFlag;
    let fd = nix::fcntl::openat(
        dir,
        rel,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    Ok(File::from(fd))
}

/// The contents of `f`, opened from `path` as in [`read_regular`], if it is a regular file.
fn read_regular_file(mut f: File, path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    let path = path.as_ref();
    let meta = f.metadata()?;
    let (ty, meta_len) = (meta.file_type(), meta.len());
    if !ty.is_file() {
        let what = if ty.is_fifo() {
            "a FIFO"
        } else if ty.is_symlink() {
            "a symlink"
        } else {
            "not a regular file"
        };
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{} is {what}", path.display())));
    }
    // Sized from the metadata just read, one byte over: a regular file's read comes back
    // short only at its end, so a read that does not fill the buffer was the last one
    // (`list` reads one of these per container; std's read_to_end would read once more).
    let mut data = vec![0u8; usize::try_from(meta_len).unwrap_or(0).saturating_add(1)];
    let mut len = 0;
    loop {
        let n = match f.read(&mut data[len..]) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => r?,
        };
        len += n;
        if len < data.len() {
            break;
        }
        // It grew since the metadata was read: read on.
        data.resize(data.len() * 2, 0);
    }
    data.truncate(len);
    Ok(data)
}

/// RFC 3339 UTC time with nanoseconds, as runc's `created`.
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format_rfc3339(now.as_secs() as i64, now.subsec_nanos())
}

pub fn format_rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Puts `new` in place of `target`, which readers always find whole: the old record or the
/// new one. Over an existing record it exchanges the two names and unlinks the old file
/// instead of renaming over it: ext4 (its default `auto_da_alloc`) writes out a file renamed
/// over another at once, and the blocks so allocated are freed when the container is deleted
/// moments later, which on a filesystem mounted with `discard` waits for a discard request
/// to the disk (seen on this project's VM, whose state roots are on such a filesystem). If
/// berth dies between the two steps, `.state.json.tmp` keeps the old record until the next
/// save or the delete. The first record, and a filesystem without RENAME_EXCHANGE, take a
/// plain rename.
fn replace(new: &Path, target: &Path) -> io::Result<()> {
    use nix::errno::Errno;
    use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
    match renameat2(AT_FDCWD, new, AT_FDCWD, target, RenameFlags::RENAME_EXCHANGE) {
        // `new` now names the old record.
        Ok(()) => fs::remove_file(new),
        Err(Errno::ENOENT | Errno::EINVAL) => fs::rename(new, target),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(format_rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(format_rfc3339(951_782_400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(format_rfc3339(1_795_000_000, 0), "2026-11-18T11:06:40.000000000Z");
    }

    #[test]
    fn a_fifo_or_a_symlink_in_place_of_the_state_file_is_refused_at_once() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path());
        store.create_dir("f").unwrap();
        nix::unistd::mkfifo(&store.dir("f").join(STATE_FILE), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let e = store.load("f").unwrap_err().to_string();
        assert!(e.contains("FIFO"), "{e}");
        store.create_dir("l").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", store.dir("l").join(STATE_FILE)).unwrap();
        assert!(store.load("l").is_err());
    }

    /// state.json as berth wrote it before `Record.cgroup` was typed (a `serde_json::Value`
    /// then): a hybrid-host container made by `create`. It must still load, and its cgroup
    /// record be written back byte for byte (the rest holds sets, in no fixed order).
    #[test]
    fn a_state_file_of_an_older_berth_loads_and_is_written_back_the_same() {
        let old = include_str!("testdata/state-v1-hybrid.json");
        let rec: Record = serde_json::from_str(old).unwrap();
        assert_eq!(rec.cgroup.version, crate::cgroups::CgroupVersion::V1);
        assert_eq!(rec.cgroup.hierarchies.len(), 10);
        assert_eq!(rec.cgroup.created.len(), 10);
        let sd = &rec.cgroup.hierarchies[0];
        assert_eq!((sd.name.as_str(), sd.subsystems.as_slice()), ("systemd", &["name=systemd".to_string()][..]));
        assert_eq!(sd.dir, Path::new("/sys/fs/cgroup/systemd/c1"));
        assert!(!rec.cgroup_manager().is_v2());
        let written = old.split_once(r#""cgroup":"#).and_then(|(_, rest)| rest.split_once(r#","hooks":"#));
        assert_eq!(serde_json::to_string(&rec.cgroup).unwrap(), written.unwrap().0);
    }

    /// `list` and `state` read a summary of the record: the same fields as the whole record,
    /// and a dead init reads as stopped with pid 0; an unreadable container is left out.
    #[test]
    fn the_summary_of_a_record_is_what_state_and_list_print_of_it() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path());
        let old = include_str!("testdata/state-v1-hybrid.json");
        let mut v: serde_json::Value = serde_json::from_str(old).unwrap();
        v["annotations"] = serde_json::json!({"z": "last", "a": "first \"quoted\""});
        for id in ["c1", "c2"] {
            v["id"] = id.into();
            store.create_dir(id).unwrap();
            fs::write(store.dir(id).join(STATE_FILE), v.to_string()).unwrap();
        }
        store.create_dir("creating").unwrap();
        let rec = store.load("c1").unwrap();
        let mut seen = Vec::new();
        store
            .each_summary(|sum, status| -> Result<(), StateError> {
                assert_eq!(status, Status::Stopped, "the record's init is long gone");
                let p = serde_json::to_value(sum.public(status)).unwrap();
                assert_eq!(p["pid"], 0);
                assert_eq!(p["bundle"], rec.bundle.to_str().unwrap());
                assert_eq!(p["rootfs"], rec.rootfs.to_str().unwrap());
                assert_eq!((p["created"].as_str(), p["owner"].as_str()), (Some(&*rec.created), Some(&*rec.owner)));
                let keys: Vec<&String> = p["annotations"].as_object().unwrap().keys().collect();
                assert_eq!(keys, ["a", "z"], "sorted, as runc prints them");
                assert_eq!(p["annotations"]["a"], "first \"quoted\"");
                seen.push(sum.id.to_string());
                Ok(())
            })
            .unwrap();
        assert_eq!(seen, ["c1", "c2"]);
        let state = store.with_summary("c2", |sum, status| Ok::<_, StateError>((sum.id.to_string(), status))).unwrap();
        assert_eq!(state, ("c2".to_string(), Status::Stopped));
        assert!(matches!(store.with_summary("creating", |_, _| Ok::<_, StateError>(())), Err(StateError::NotFound(_))));
    }

    /// A record saved over another replaces it whole: a reader at the same time finds the old
    /// record or the new one, never none or a part, and no temporary file is left behind.
    #[test]
    fn a_record_saved_over_another_is_always_found_whole_and_leaves_no_temporary_file() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path());
        let mut rec: Record = serde_json::from_str(include_str!("testdata/state-v1-hybrid.json")).unwrap();
        store.create_dir(&rec.id).unwrap();
        store.save(&rec).unwrap();
        let id = rec.id.clone();
        let reader = {
            let store = Store::new(tmp.path());
            std::thread::spawn(move || {
                let mut pids = std::collections::BTreeSet::new();
                for _ in 0..2000 {
                    pids.insert(store.load(&id).expect("the record is there, whole, at every moment").pid);
                }
                pids
            })
        };
        for pid in 1..=300 {
            rec.pid = pid;
            store.save(&rec).unwrap();
        }
        let seen = reader.join().unwrap();
        assert!(seen.iter().all(|p| (1..=300).contains(p) || *p == 18639), "{seen:?}");
        assert_eq!(store.load(&rec.id).unwrap().pid, 300);
        let names: Vec<_> = fs::read_dir(store.dir(&rec.id)).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, [STATE_FILE]);
    }

    #[test]
    fn create_dir_refuses_an_existing_id() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path().join("root"));
        store.create_dir("a").unwrap();
        assert!(matches!(store.create_dir("a"), Err(StateError::Exists(_))));
    }
}
