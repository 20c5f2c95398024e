//! Tests only: a fake systemd manager on a private bus (a dbus-daemon of its own), so the
//! D-Bus client and the driver are exercised through a real bus: the calls as it carries
//! them, the JobRemoved wait, and systemd's UnitExists / NoSuchUnit answers. Like systemd,
//! it makes a started unit's cgroup directory (under a root of the test's) and removes it
//! on stop.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use zbus::object_server::SignalEmitter;
use zbus::zvariant::{ObjectPath, OwnedValue};

use std::path::PathBuf;
use std::time::Duration;

use zbus::zvariant::OwnedObjectPath;

use super::dbus::{DESTINATION, PATH};
use super::unit_name::expand_slice;

#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.freedesktop.systemd1")]
enum SdError {
    #[zbus(error)]
    ZBus(zbus::Error),
    UnitExists(String),
    NoSuchUnit(String),
    AlreadySubscribed(String),
}

/// What the fake systemd was asked, and its units.
#[derive(Default)]
pub(crate) struct Seen {
    /// One line a call: "start <unit> <mode>", "stop …", "set <unit> runtime=…", "reset-failed …".
    pub calls: Vec<String>,
    pub units: BTreeSet<String>,
    /// Units in state "failed" (the test puts them there).
    pub failed: BTreeSet<String>,
    /// The properties of the last start or set.
    pub props: Vec<(String, OwnedValue)>,
    job: u32,
    /// Clients that called Subscribe.
    subscribed: BTreeSet<String>,
    /// The directory made for each started unit.
    dirs: BTreeMap<String, PathBuf>,
    /// Where unit directories are made ("/sys/fs/cgroup" for systemd), if anywhere.
    root: Option<PathBuf>,
}

impl Seen {
    pub(crate) fn prop(&self, name: &str) -> Option<OwnedValue> {
        self.props.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.try_clone().ok())
    }

    /// The unit's cgroup as systemd places it: a scope in its Slice=, a slice by its name.
    fn unit_dir(&self, name: &str) -> Option<PathBuf> {
        let root = self.root.as_ref()?;
        let rel = if name.ends_with(".slice") {
            expand_slice(name, name).ok()?
        } else {
            let slice = self.prop("Slice").and_then(|v| String::try_from(v).ok())?;
            format!("{}/{name}", expand_slice(&slice, &slice).ok()?)
        };
        Some(root.join(rel.trim_start_matches('/')))
    }
}

struct Manager(Arc<Mutex<Seen>>);

impl Manager {
    fn job(&self, call: String) -> (u32, OwnedObjectPath) {
        let mut s = self.0.lock().expect("lock");
        s.calls.push(call);
        s.job += 1;
        let path = ObjectPath::try_from(format!("/org/freedesktop/systemd1/job/{}", s.job)).expect("path");
        (s.job, path.into())
    }
}

#[zbus::interface(name = "org.freedesktop.systemd1.Manager")]
impl Manager {
    /// As systemd: once per client.
    fn subscribe(&self, #[zbus(header)] hdr: zbus::message::Header<'_>) -> Result<(), SdError> {
        let sender = hdr.sender().map(|s| s.to_string()).unwrap_or_default();
        if !self.0.lock().expect("lock").subscribed.insert(sender) {
            return Err(SdError::AlreadySubscribed("Client is already subscribed.".into()));
        }
        Ok(())
    }

    async fn start_transient_unit(
        &self,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
        name: String,
        mode: String,
        props: Vec<(String, OwnedValue)>,
        _aux: Vec<(String, Vec<(String, OwnedValue)>)>,
    ) -> Result<OwnedObjectPath, SdError> {
        {
            let mut s = self.0.lock().expect("lock");
            if s.units.contains(&name) {
                s.calls.push(format!("start {name}: exists"));
                return Err(SdError::UnitExists(format!("Unit {name} was already loaded")));
            }
            s.units.insert(name.clone());
            s.props = props;
            if let Some(d) = s.unit_dir(&name) {
                // The directory with a few of the kernel's interface files, empty.
                let made = std::fs::create_dir_all(&d).and_then(|()| {
                    ["cgroup.procs", "cgroup.freeze", "memory.max", "pids.max"]
                        .iter()
                        .try_for_each(|f| std::fs::write(d.join(f), ""))
                });
                made.map_err(|e| SdError::ZBus(zbus::Error::Failure(e.to_string())))?;
                s.dirs.insert(name.clone(), d);
            }
        }
        let (id, path) = self.job(format!("start {name} {mode}"));
        Self::job_removed(&emitter, id, path.as_ref(), &name, "done").await?;
        Ok(path)
    }

    async fn stop_unit(
        &self,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
        name: String,
        mode: String,
    ) -> Result<OwnedObjectPath, SdError> {
        {
            let mut s = self.0.lock().expect("lock");
            if !s.units.remove(&name) {
                return Err(SdError::NoSuchUnit(format!("Unit {name} not loaded.")));
            }
            if let Some(d) = s.dirs.remove(&name) {
                let _ = std::fs::remove_dir_all(d);
            }
        }
        let (id, path) = self.job(format!("stop {name} {mode}"));
        Self::job_removed(&emitter, id, path.as_ref(), &name, "done").await?;
        Ok(path)
    }

    fn reset_failed_unit(&self, name: String) -> Result<(), SdError> {
        let mut s = self.0.lock().expect("lock");
        s.calls.push(format!("reset-failed {name}"));
        if s.failed.remove(&name) {
            s.units.remove(&name);
            return Ok(());
        }
        Err(SdError::NoSuchUnit(name))
    }

    fn set_unit_properties(&self, name: String, runtime: bool, props: Vec<(String, OwnedValue)>) {
        let mut s = self.0.lock().expect("lock");
        s.calls.push(format!("set {name} runtime={runtime}"));
        s.props = props;
    }

    #[zbus(signal)]
    async fn job_removed(
        emitter: &SignalEmitter<'_>,
        id: u32,
        job: ObjectPath<'_>,
        unit: &str,
        result: &str,
    ) -> zbus::Result<()>;
}

struct Daemon(Child, tempfile::TempDir);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A fake systemd serving on a private bus; gone (bus and all) when dropped.
pub(crate) struct FakeSystemd {
    pub seen: Arc<Mutex<Seen>>,
    pub address: String,
    _server: zbus::blocking::Connection,
    _daemon: Daemon,
}

impl FakeSystemd {
    /// None where there is no dbus-daemon to run (the test then says it skipped).
    pub(crate) fn start(root: Option<PathBuf>) -> Option<FakeSystemd> {
        let (daemon, address) = private_bus()?;
        let seen = Arc::new(Mutex::new(Seen { root, ..Seen::default() }));
        let server = zbus::blocking::connection::Builder::address(address.as_str())
            .and_then(|b| b.name(DESTINATION))
            .and_then(|b| b.serve_at(PATH, Manager(seen.clone())))
            .and_then(|b| b.build())
            .ok()?;
        Some(FakeSystemd { seen, address, _server: server, _daemon: daemon })
    }

    pub(crate) fn calls(&self) -> Vec<String> {
        self.seen.lock().expect("lock").calls.clone()
    }
}

fn private_bus() -> Option<(Daemon, String)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let address = format!("unix:path={}", dir.path().join("bus").display());
    let child = Command::new("dbus-daemon")
        .args(["--session", "--nofork", "--nopidfile", &format!("--address={address}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let daemon = Daemon(child, dir);
    for _ in 0..200 {
        if daemon.1.path().join("bus").exists() {
            return Some((daemon, address));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}
