//! The systemd cgroup driver (`--systemd-cgroup`, cgroup v2): the container's cgroup is a
//! transient unit systemd makes and owns, as with runc's systemd driver. linux.cgroupsPath
//! "slice:prefix:name" names a scope `prefix-name.scope` in that slice (`unit_name.rs`);
//! it is started over D-Bus (`dbus.rs`) with the init's pid, delegation and the resources
//! as unit properties (`properties.rs`), so `systemctl` knows the container and a daemon
//! reload keeps its limits. What has no property, and the eBPF device program, is written
//! to the unit's directory by the v2 driver's code, as runc does. Everything that only
//! reads or freezes the directory (ps, kill --all, pause, events, exec) is the v2 driver's.
//!
//! A scope cannot start without a process: `create` records the unit, remembers the
//! resources, and starts the unit in `add_pid` with the init's pid after the clone, before
//! the init goes on ([`Manager::starts_with_init`]). `delete` stops the unit and resets it
//! if it failed, so its name can be used again.

mod bus;
mod dbus;
#[cfg(test)]
mod fake_bus;
mod properties;
mod unit_name;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use oci_spec::runtime::LinuxResources;

use super::devices::DevKind;
use super::v2::{self, V2};
use super::{fsutil, CgroupError, CgroupState, CgroupVersion, Dirs, HierarchyState, Manager, OomWatch, Stats};

pub(crate) use dbus::decode_all as decode_bus_messages;
pub use dbus::DbusError;
pub(crate) use unit_name::{parse, UnitPath};

/// The unit a container's cgroup is, kept in state.json (absent for the cgroupfs drivers).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UnitState {
    /// The slice the unit is in.
    pub slice: String,
    /// "prefix-name.scope" (or a slice).
    pub unit: String,
    /// Rootless: the cgroup of the user's own systemd instance that owns the unit
    /// ("/user.slice/user-1000.slice/user@1000.service"), reached on the user's bus. Empty
    /// for the system manager (and in records of an older berth).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub manager: String,
}

impl UnitState {
    /// Whether the unit is the user manager's (rootless) rather than the system's.
    fn user(&self) -> bool {
        !self.manager.is_empty()
    }
}

/// Rootless: the cgroup of the user's own systemd instance, which owns the units berth
/// starts there. That is the user manager berth runs under when it does (a login session's
/// podman moves itself there: ".../user@1000.service/app.slice/..." → ".../user@1000.service"),
/// else the one systemd gives every user, `user@<uid>.service` in `user-<uid>.slice` (rootless
/// Docker's daemon may run elsewhere, as a service of root's). `uid`: the user, as the host
/// sees it.
pub(crate) fn user_manager_cgroup(proc_self_cgroup: &str, uid: u32) -> String {
    let path = proc_self_cgroup.lines().find_map(|l| l.strip_prefix("0::")).unwrap_or_default();
    let mut out = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        out.push('/');
        out.push_str(part);
        if part == format!("user@{uid}.service") {
            return out;
        }
    }
    format!("/user.slice/user-{uid}.slice/user@{uid}.service")
}

/// The uid the host knows this process by (the user's, in podman's user namespace).
pub(crate) fn host_uid() -> u32 {
    dbus::host_uid()
}

/// Refuses `--systemd-cgroup` where there is no systemd to ask, before anything is made.
pub(crate) fn check_host() -> Result<(), CgroupError> {
    // sd_booted(3)'s test, runc's IsRunningSystemd.
    if !Path::new("/run/systemd/system").is_dir() {
        return Err(CgroupError::NoSystemd("systemd is not running on this host (no /run/systemd/system)".into()));
    }
    if crate::rootless::active() {
        return dbus::user_bus_address().map(|_| ()).ok_or_else(|| {
            CgroupError::NoSystemd(
                "rootless: no user bus to reach the user's systemd instance (DBUS_SESSION_BUS_ADDRESS is \
                 unset and $XDG_RUNTIME_DIR/bus does not exist)"
                    .into(),
            )
        });
    }
    let bus_from_env = std::env::var_os("DBUS_SYSTEM_BUS_ADDRESS").is_some_and(|a| !a.is_empty());
    if !bus_from_env && !Path::new(dbus::SYSTEM_BUS_SOCKET).exists() {
        return Err(CgroupError::NoSystemd(format!(
            "no system bus to reach systemd ({} does not exist)",
            dbus::SYSTEM_BUS_SOCKET
        )));
    }
    Ok(())
}

/// What create asked for before the unit could start.
#[derive(Debug, Default)]
struct Pending {
    started: bool,
    resources: Option<LinuxResources>,
    /// The container's root, to hand the cgroup to (`delegate`).
    owner: Option<(u32, u32)>,
}

#[derive(Debug)]
pub(crate) struct Systemd {
    v2: V2,
    unit: UnitState,
    description: String,
    pending: Mutex<Pending>,
}

impl Systemd {
    /// A new container's unit, not started yet, whose cgroup will be `h.dir` (cgroup2).
    /// `manager`: see [`UnitState::manager`].
    pub(crate) fn new(id: &str, unit: &UnitPath, manager: String, h: HierarchyState) -> Systemd {
        let state = UnitState { slice: unit.slice.clone(), unit: unit.unit.clone(), manager };
        let mut s = Systemd::reopen(&state, Dirs::new(vec![h], Vec::new()));
        s.description = format!("berth container {id}");
        s.lock().started = false;
        s
    }

    /// The unit of a recorded container (started by its create).
    pub(crate) fn reopen(unit: &UnitState, dirs: Dirs) -> Systemd {
        Systemd {
            v2: V2::new(dirs),
            description: format!("berth container {}", unit.unit),
            unit: unit.clone(),
            pending: Mutex::new(Pending { started: true, ..Pending::default() }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        match self.pending.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn dir(&self) -> Result<&Path, CgroupError> {
        self.v2.dir_for("").ok_or_else(|| CgroupError::Discovery("no cgroup2 directory".into()))
    }

    /// The root of the manager's cgroup tree: the hierarchy's, or the user manager's cgroup.
    fn mount_point(&self) -> Option<PathBuf> {
        let m = self.v2.dirs().hierarchies().first().map(|h| h.mount_point.as_path())?;
        Some(m.join(self.unit.manager.trim_start_matches('/')))
    }

    fn connect(&self) -> Result<dbus::Systemd, DbusError> {
        dbus::Systemd::connect(self.unit.user())
    }

    fn unit_path(&self) -> UnitPath {
        let cgroup = self
            .dir()
            .ok()
            .zip(self.mount_point())
            .and_then(|(d, m)| d.strip_prefix(&m).ok())
            .map(|r| format!("/{}", r.display()))
            .unwrap_or_default();
        UnitPath { unit: self.unit.unit.clone(), slice: self.unit.slice.clone(), cgroup }
    }

    /// Starts the unit with `pid` in it and the remembered resources, then writes what has
    /// no property into its directory.
    fn start(&self, pid: i32) -> Result<(), CgroupError> {
        let (resources, owner) = {
            let p = self.lock();
            (p.resources.clone(), p.owner)
        };
        let mut bus = self.connect()?;
        let path = self.unit_path();
        if !path.is_slice() {
            self.make_slice(&mut bus, &path)?;
        }
        let mut props = properties::unit(self.description.clone(), &path.slice, path.is_slice(), Some(pid));
        if let Some(r) = &resources {
            props.extend(properties::resources(r, &device_group)?);
        }
        let started = match bus.start_transient_unit(&path.unit, &props) {
            // A unit of that name left failed by an earlier container: runc resets it and
            // tries once more.
            Err(e) if e.unit_exists() => {
                let _ = bus.reset_failed_unit(&path.unit);
                bus.start_transient_unit(&path.unit, &props)
            }
            r => r,
        };
        // A job that was queued (even one that failed or timed out) may have left a unit:
        // `destroy` must then stop and reset it.
        self.lock().started = started.as_ref().map_or_else(DbusError::job_queued, |()| true);
        started?;
        let dir = self.dir()?;
        if let Some(r) = &resources {
            v2::apply(dir, r)?;
        }
        if let Some((uid, gid)) = owner {
            self.v2.delegate(uid, gid)?;
        }
        Ok(())
    }

    /// A slice that does not exist yet is started as a transient unit of its own (runc's
    /// way for kubelet's pod slices); systemd nests it by its name.
    fn make_slice(&self, bus: &mut dbus::Systemd, path: &UnitPath) -> Result<(), CgroupError> {
        let slice_dir = path.slice_cgroup()?;
        let exists = self.mount_point().is_none_or(|m| m.join(slice_dir.trim_start_matches('/')).is_dir());
        if path.slice == "-.slice" || exists {
            return Ok(());
        }
        let name = path.slice.trim_end_matches(".slice");
        let parent = name.rsplit_once('-').map_or_else(|| "-.slice".to_string(), |(p, _)| format!("{p}.slice"));
        let props = properties::unit(format!("slice of {}", self.description), &parent, true, None);
        match bus.start_transient_unit(&path.slice, &props) {
            // Made meanwhile by another container of the same slice.
            Err(e) if e.unit_exists() => Ok(()),
            r => Ok(r?),
        }
    }

    fn started(&self) -> bool {
        self.lock().started
    }

    /// The recorded unit is the one whose cgroup the record names: a scope (or slice)
    /// named like the directory, in the recorded slice. state.json is only a file, and one
    /// rewritten to name another unit ("ssh.service") must not make `delete` stop it.
    fn check_recorded_unit(&self) -> Result<(), CgroupError> {
        let path = self.unit_path();
        let named_like_dir = Path::new(&path.cgroup).file_name().is_some_and(|n| n == path.unit.as_str());
        let parent = path.cgroup.rsplit_once('/').map(|(p, _)| p);
        let in_slice = path.is_slice() || path.slice_cgroup().is_ok_and(|s| parent == Some(s.as_str()));
        let kind_ok = path.unit.ends_with(".scope") || path.unit.ends_with(".slice");
        if named_like_dir && in_slice && kind_ok {
            return Ok(());
        }
        Err(CgroupError::invalid(
            "the recorded systemd unit",
            format!("{:?} in {:?} is not the unit of {}: refusing to use it", path.unit, path.slice, path.cgroup),
        ))
    }
}

/// The device group of a major, from /proc/devices (runc reads it for "char-pts" rules).
fn device_group(kind: DevKind, major: u32) -> Option<String> {
    let text = std::fs::read_to_string("/proc/devices").ok()?;
    properties::group_in(&text, kind, major)
}

impl Manager for Systemd {
    fn version(&self) -> CgroupVersion {
        CgroupVersion::V2
    }

    fn dirs(&self) -> &Dirs {
        self.v2.dirs()
    }

    fn dir_for(&self, controller: &str) -> Option<&Path> {
        self.v2.dir_for(controller)
    }

    fn validate(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        self.v2.validate(resources)?;
        // The property mapping's own checks (cpu lists), without reading /proc/devices.
        properties::resources(resources, &|_, _| None).map(|_| ())
    }

    /// systemd makes the directory when the unit starts (`add_pid`).
    fn create(&self) -> Result<(), CgroupError> {
        Ok(())
    }

    fn apply(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        self.validate(resources)?;
        if !self.started() {
            self.lock().resources = Some(resources.clone());
            return Ok(());
        }
        self.check_recorded_unit()?;
        let mut bus = self.connect()?;
        let props = properties::resources(resources, &device_group)?;
        if !props.is_empty() {
            bus.set_unit_properties(&self.unit.unit, &props)?;
        }
        v2::apply(self.dir()?, resources)
    }

    fn join_dirs(&self, sub: &[String]) -> Result<Vec<PathBuf>, CgroupError> {
        self.v2.join_dirs(sub)
    }

    fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        self.v2.pids()
    }

    fn is_frozen(&self) -> Result<bool, CgroupError> {
        self.v2.is_frozen()
    }

    fn freezer(&self, frozen: bool) -> Result<(PathBuf, &'static str, &'static str), CgroupError> {
        self.v2.freezer(frozen)
    }

    fn left_frozen(&self, h: &HierarchyState) -> bool {
        self.v2.left_frozen(h)
    }

    fn stats(&self) -> Result<Stats, CgroupError> {
        self.v2.stats()
    }

    fn oom_watch(&self) -> Result<OomWatch, CgroupError> {
        self.v2.oom_watch()
    }

    fn open_v2_dir(&self) -> Option<OwnedFd> {
        self.v2.open_v2_dir()
    }

    fn delegate(&self, uid: u32, gid: u32) -> Result<(), CgroupError> {
        if !self.started() {
            self.lock().owner = Some((uid, gid));
            return Ok(());
        }
        self.v2.delegate(uid, gid)
    }

    fn starts_with_init(&self) -> bool {
        !self.started()
    }

    fn state(&self) -> CgroupState {
        CgroupState { systemd: Some(self.unit.clone()), ..self.v2.state() }
    }

    /// Nothing is made: the unit's directory is systemd's. Only refuses a directory still
    /// in use (B15), as for cgroupfs.
    fn plan(&self) -> Result<(), CgroupError> {
        let Ok(dir) = self.dir() else { return Ok(()) };
        if !dir.is_dir() {
            return Ok(());
        }
        let count = fsutil::all_pids(dir)?.len();
        if count > 0 {
            return Err(CgroupError::NotEmpty { path: dir.to_path_buf(), count });
        }
        Ok(())
    }

    /// Before the unit starts: the first process starts it; after: the directory.
    fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        if self.started() {
            return super::add_pid_to(&self.dirs().leaves(), pid);
        }
        self.start(pid)
    }

    /// Stops the unit (systemd removes its cgroup) and forgets it if it failed; what is
    /// left of the directory (sub-cgroups of a unit that failed to stop) goes as with
    /// cgroupfs.
    fn destroy(&self) -> Result<(), CgroupError> {
        if self.started() {
            self.check_recorded_unit()?;
            let mut bus = self.connect()?;
            match bus.stop_unit(&self.unit.unit) {
                // Gone already: a scope ends by itself once its last process has exited.
                Err(e) if e.no_such_unit() => {}
                r => r?,
            }
            // Only a failed unit stays loaded; any other answer means there is none.
            let _ = bus.reset_failed_unit(&self.unit.unit);
        }
        self.v2.destroy()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{from_state, open};
    use super::*;

    const OLD_STATE: &str = r#"{"created":["/sys/fs/cgroup/c1"],"hierarchies":[{"dir":"/sys/fs/cgroup/c1","mount_point":"/sys/fs/cgroup","name":"","subsystems":[]}],"version":"v2"}"#;

    #[test]
    fn an_older_record_loads_as_cgroupfs_and_is_written_back_unchanged() {
        let st: CgroupState = serde_json::from_str(OLD_STATE).expect("old state.json loads");
        assert_eq!(st.systemd, None);
        assert_eq!(serde_json::to_string(&st).expect("json"), OLD_STATE);
        assert!(!from_state(&st).starts_with_init());
    }

    #[test]
    fn rootless_units_are_the_user_managers_and_checked_below_it() {
        let own = "0::/user.slice/user-1001.slice/user@1001.service/user.slice/libpod-conmon-ab.scope\n";
        let manager = user_manager_cgroup(own, 1001);
        assert_eq!(manager, "/user.slice/user-1001.slice/user@1001.service");
        // Run from a service of root's (rootless Docker started by root's agent): the
        // manager systemd gives the user.
        assert_eq!(user_manager_cgroup("0::/system.slice/agent.service\n", 1001), manager);
        let unit = parse("ab", Some("user.slice:libpod:ab")).expect("podman's path");
        let h = HierarchyState {
            dir: PathBuf::from(format!("/sys/fs/cgroup{manager}/user.slice/libpod-ab.scope")),
            mount_point: PathBuf::from("/sys/fs/cgroup"),
            name: String::new(),
            subsystems: Vec::new(),
        };
        let m = Systemd::new("ab", &unit, manager.clone(), h);
        assert_eq!(m.unit_path().cgroup, "/user.slice/libpod-ab.scope");
        m.check_recorded_unit().expect("the unit of its directory, below the user manager");
        let st = m.state();
        let json = serde_json::to_string(&st).expect("json");
        assert!(json.contains(&format!(r#""manager":"{manager}""#)), "{json}");
        assert_eq!(from_state(&serde_json::from_str(&json).expect("loads")).state(), st);
    }

    #[test]
    fn the_host_uid_comes_from_the_uid_map() {
        assert_eq!(
            dbus::host_id_in("         0       1001          1\n         1     100000      65536\n", 0),
            Some(1001)
        );
        assert_eq!(
            dbus::host_id_in("         0       1001          1\n         1     100000      65536\n", 5),
            Some(100004)
        );
        assert_eq!(dbus::host_id_in("         0          0 4294967295\n", 1001), Some(1001));
        assert_eq!(dbus::host_id_in("         0       1001          1\n", 7), None);
    }

    #[test]
    fn a_unit_is_recorded_and_reopened() {
        let unit = parse("c1", Some("kubepods-pod1.slice:cri:c1")).expect("path");
        let h = HierarchyState {
            dir: PathBuf::from("/sys/fs/cgroup/kubepods.slice/kubepods-pod1.slice/cri-c1.scope"),
            mount_point: PathBuf::from("/sys/fs/cgroup"),
            name: String::new(),
            subsystems: Vec::new(),
        };
        let m = Systemd::new("c1", &unit, String::new(), h);
        assert!(m.starts_with_init(), "a new unit starts with the init");
        let st = m.state();
        assert_eq!(
            st.systemd,
            Some(UnitState {
                slice: "kubepods-pod1.slice".into(),
                unit: "cri-c1.scope".into(),
                manager: String::new()
            })
        );
        assert!(st.created.is_empty(), "the unit's directories are systemd's");
        let json = serde_json::to_string(&st).expect("json");
        assert!(json.contains(r#""systemd":{"slice":"kubepods-pod1.slice","unit":"cri-c1.scope"}"#), "{json}");
        let back: CgroupState = serde_json::from_str(&json).expect("loads");
        let reopened = from_state(&back);
        assert!(!reopened.starts_with_init(), "a recorded unit was started by its create");
        assert_eq!(reopened.state(), st);
        assert_eq!(m.unit_path().cgroup, "/kubepods.slice/kubepods-pod1.slice/cri-c1.scope");
        m.check_recorded_unit().expect("the unit of its directory");
        let mut forged = st.clone();
        forged.systemd =
            Some(UnitState { slice: "kubepods-pod1.slice".into(), unit: "ssh.service".into(), manager: String::new() });
        let e = from_state(&forged).destroy().expect_err("a forged unit is not stopped").to_string();
        assert!(e.contains("refusing"), "{e}");
        let mut elsewhere = st.clone();
        elsewhere.systemd =
            Some(UnitState { slice: "system.slice".into(), unit: "cri-c1.scope".into(), manager: String::new() });
        assert!(from_state(&elsewhere).destroy().is_err(), "a unit in another slice than the directory");
        let root = parse("c1", Some("-.slice::n")).expect("root slice");
        let h = HierarchyState {
            dir: PathBuf::from("/sys/fs/cgroup/n.scope"),
            mount_point: PathBuf::from("/sys/fs/cgroup"),
            name: String::new(),
            subsystems: Vec::new(),
        };
        Systemd::new("c1", &root, String::new(), h).check_recorded_unit().expect("a scope in the root slice");
    }

    #[test]
    fn resources_wait_for_the_unit() {
        let unit = parse("c1", None).expect("path");
        let h = HierarchyState {
            dir: PathBuf::from("/nonexistent/system.slice/berth-c1.scope"),
            mount_point: PathBuf::from("/nonexistent"),
            name: String::new(),
            subsystems: Vec::new(),
        };
        let m = Systemd::new("c1", &unit, String::new(), h);
        let r: LinuxResources = serde_json::from_str(r#"{"pids":{"limit":5}}"#).expect("resources");
        // Nothing to write yet and no bus asked: kept for the unit's start.
        m.create().expect("create");
        m.apply(&r).expect("kept");
        m.delegate(1000, 1000).expect("kept");
        assert_eq!(m.lock().resources.as_ref(), Some(&r));
        assert_eq!(m.lock().owner, Some((1000, 1000)));
        let bad: LinuxResources = serde_json::from_str(r#"{"cpu":{"cpus":"3-1"}}"#).expect("resources");
        let e = m.apply(&bad).expect_err("refused").to_string();
        assert!(e.contains("linux.resources.cpu.cpus"), "{e}");
    }

    #[test]
    fn without_systemd_the_flag_is_named() {
        if Path::new("/run/systemd/system").is_dir() {
            eprintln!("skipped: systemd runs on this host");
            return;
        }
        let e = open("c1", Some("system.slice:berth:c1"), true).expect_err("no systemd").to_string();
        assert!(e.starts_with("--systemd-cgroup: "), "{e}");
        // A malformed path is reported as such first, naming the field.
        let e = open("c1", Some("/plain"), true).expect_err("bad path").to_string();
        assert!(e.contains("linux.cgroupsPath") && e.contains("slice:prefix:name"), "{e}");
    }

    #[test]
    fn create_update_delete_through_a_fake_systemd() {
        use zbus::zvariant::{OwnedValue, Value as DbusValue};
        let root = tempfile::tempdir().expect("tempdir");
        let Some(fake) = super::fake_bus::FakeSystemd::start(Some(root.path().to_path_buf())) else {
            eprintln!("skipped: no dbus-daemon to run a private bus with");
            return;
        };
        // The driver connects to "the system bus": this one. No other test connects.
        std::env::set_var("DBUS_SYSTEM_BUS_ADDRESS", &fake.address);
        let unit = parse("c1", Some("bt-pod1.slice:cri:c1")).expect("path");
        let dir = root.path().join("bt.slice/bt-pod1.slice/cri-c1.scope");
        let hierarchy = |dir: &Path| HierarchyState {
            dir: dir.to_path_buf(),
            mount_point: root.path().to_path_buf(),
            name: String::new(),
            subsystems: Vec::new(),
        };
        let m = Systemd::new("c1", &unit, String::new(), hierarchy(&dir));
        m.plan().expect("plan");
        m.create().expect("create");
        let r: LinuxResources = serde_json::from_str(r#"{"pids":{"limit":5}}"#).expect("resources");
        m.apply(&r).expect("kept for the start");
        assert!(fake.calls().is_empty(), "nothing asked before the init exists");
        assert!(m.starts_with_init());

        let pid = std::process::id() as i32;
        m.add_pid(pid).expect("the unit starts with the init");
        assert_eq!(
            fake.calls(),
            ["start bt-pod1.slice replace", "start cri-c1.scope replace"],
            "the missing slice first"
        );
        {
            let s = fake.seen.lock().expect("lock");
            assert_eq!(s.prop("TasksMax"), Some(OwnedValue::from(5u64)));
            let slice = OwnedValue::try_from(DbusValue::from("bt-pod1.slice")).expect("value");
            assert_eq!(s.prop("Slice"), Some(slice));
            let pids = OwnedValue::try_from(DbusValue::from(vec![pid as u32])).expect("value");
            assert_eq!(s.prop("PIDs"), Some(pids));
        }
        assert_eq!(std::fs::read_to_string(dir.join("pids.max")).expect("pids.max"), "5", "the files too");
        assert!(!m.starts_with_init(), "started");

        // A later command: reopened from the record, update sets properties and files.
        let reopened = from_state(&m.state());
        let r2: LinuxResources = serde_json::from_str(r#"{"pids":{"limit":7}}"#).expect("resources");
        reopened.apply(&r2).expect("update");
        assert_eq!(std::fs::read_to_string(dir.join("pids.max")).expect("pids.max"), "7");
        assert_eq!(fake.calls().last().map(String::as_str), Some("set cri-c1.scope runtime=true"));

        reopened.destroy().expect("delete");
        let calls = fake.calls();
        assert_eq!(&calls[calls.len() - 2..], ["stop cri-c1.scope replace", "reset-failed cri-c1.scope"]);
        assert!(!dir.exists(), "systemd removed the unit's cgroup");

        // The same name again: a fresh create starts a unit of that name; the slice exists.
        let again = Systemd::new("c1", &unit, String::new(), hierarchy(&dir));
        again.add_pid(pid).expect("re-create");
        assert_eq!(fake.calls().last().map(String::as_str), Some("start cri-c1.scope replace"));
        again.destroy().expect("delete again");
        std::env::remove_var("DBUS_SYSTEM_BUS_ADDRESS");
    }
}
