//! The few calls of systemd's D-Bus API (org.freedesktop.systemd1.Manager) the driver
//! makes, over the system bus (rootless: the user's bus, to the user's own manager) with
//! zbus's blocking API: start a transient unit and wait
//! for its job, set unit properties, stop a unit and wait, reset a failed unit.
//!
//! Only the systemd driver connects; nothing here runs on the cgroupfs path. The
//! connection has a thread of zbus's, so it is made after the container's init is cloned
//! (clone3 wants a single-threaded caller) and dropped when the driver is done.

use std::sync::mpsc;
use std::time::Duration;

use zbus::blocking::{Connection, Proxy};
use zbus::zvariant::{OwnedObjectPath, Value as DbusValue};

use super::properties::{Property, Value};

pub(crate) const DESTINATION: &str = "org.freedesktop.systemd1";
pub(crate) const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
/// How long a job may take: runc's 30 s.
const JOB_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the system bus listens when DBUS_SYSTEM_BUS_ADDRESS does not say otherwise.
pub(crate) const SYSTEM_BUS_SOCKET: &str = "/run/dbus/system_bus_socket";

/// The user's bus (rootless): DBUS_SESSION_BUS_ADDRESS, else `$XDG_RUNTIME_DIR/bus` where
/// the user's systemd instance listens.
pub(crate) fn user_bus_address() -> Option<String> {
    if let Some(a) = std::env::var("DBUS_SESSION_BUS_ADDRESS").ok().filter(|a| !a.is_empty()) {
        return Some(a);
    }
    let dir = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty())?;
    let sock = std::path::Path::new(&dir).join("bus");
    sock.exists().then(|| format!("unix:path={}", sock.display()))
}

/// This process's effective uid as the host sees it (through /proc/self/uid_map).
pub(crate) fn host_uid() -> u32 {
    let euid = nix::unistd::geteuid().as_raw();
    let map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    host_id_in(&map, euid).unwrap_or(euid)
}

/// `id` of this namespace in the parent's, per a uid_map's text.
pub(crate) fn host_id_in(map: &str, id: u32) -> Option<u32> {
    map.lines().find_map(|l| {
        let v: Vec<u32> = l.split_whitespace().filter_map(|w| w.parse().ok()).collect();
        let [inside, outside, count] = v[..] else { return None };
        (id >= inside && u64::from(id) < u64::from(inside) + u64::from(count)).then(|| outside + (id - inside))
    })
}

#[derive(Debug, thiserror::Error)]
pub enum DbusError {
    #[error("connecting to systemd's bus: {0}")]
    // Boxed: zbus's error is large, and CgroupError travels in every Result of the driver.
    Connect(Box<zbus::Error>),
    #[error("rootless: no user bus (DBUS_SESSION_BUS_ADDRESS is unset and $XDG_RUNTIME_DIR/bus does not exist)")]
    NoUserBus,
    #[error("{method} {unit}: {source}")]
    Call { method: &'static str, unit: String, source: Box<zbus::Error> },
    #[error("{method} {unit}: the job ended with {result:?}")]
    Job { method: &'static str, unit: String, result: String },
    #[error("{method} {unit}: no answer from systemd within {}s", JOB_TIMEOUT.as_secs())]
    Timeout { method: &'static str, unit: String },
}

impl DbusError {
    /// systemd's answer when a unit of that name is loaded already.
    pub(crate) fn unit_exists(&self) -> bool {
        self.error_name() == Some("org.freedesktop.systemd1.UnitExists")
    }

    /// systemd's answer for a unit it does not know (stopping a unit that is gone).
    pub(crate) fn no_such_unit(&self) -> bool {
        self.error_name() == Some("org.freedesktop.systemd1.NoSuchUnit")
    }

    /// Whether systemd took the request (it queued a job) before this error.
    pub(crate) fn job_queued(&self) -> bool {
        matches!(self, DbusError::Job { .. } | DbusError::Timeout { .. })
    }

    fn error_name(&self) -> Option<&str> {
        match self {
            DbusError::Call { source, .. } => match &**source {
                zbus::Error::MethodError(name, _, _) => Some(name.as_str()),
                _ => None,
            },
            _ => None,
        }
    }
}

/// A property in its D-Bus encoding (a variant of the type systemd expects for it).
pub(crate) fn encode(p: &Property) -> (&'static str, DbusValue<'static>) {
    let v = match &p.value {
        Value::Str(s) => DbusValue::from(s.clone()),
        Value::Bool(b) => DbusValue::from(*b),
        Value::U64(n) => DbusValue::from(*n),
        Value::U32s(v) => DbusValue::from(v.clone()),
        Value::Bytes(v) => DbusValue::from(v.clone()),
        Value::Strs(v) => DbusValue::from(v.clone()),
        Value::Pairs(v) => DbusValue::from(v.clone()),
    };
    (p.name, v)
}

/// StartTransientUnit's arguments: (name, mode, properties a(sv), auxiliary units a(sa(sv))).
type StartArgs<'a> =
    (&'a str, &'a str, Vec<(&'static str, DbusValue<'static>)>, Vec<(&'a str, Vec<(&'a str, DbusValue<'static>)>)>);

pub(crate) fn start_args<'a>(unit: &'a str, props: &[Property]) -> StartArgs<'a> {
    // "replace": as runc, a queued conflicting job (a stop of a unit of that name) gives way.
    (unit, "replace", props.iter().map(encode).collect(), Vec::new())
}

pub(crate) struct Systemd {
    conn: Connection,
}

impl Systemd {
    /// The system manager on the system bus or, with `user`, the user's own manager on the
    /// user's bus (rootless).
    pub(crate) fn connect(user: bool) -> Result<Systemd, DbusError> {
        if !user {
            return Ok(Systemd { conn: Connection::system().map_err(|e| DbusError::Connect(Box::new(e)))? });
        }
        let address = user_bus_address().ok_or(DbusError::NoUserBus)?;
        // EXTERNAL authentication sends our uid, which the bus compares with the uid the
        // kernel reports for the socket: the host's. In podman's user namespace berth is
        // uid 0, so it sends the id that maps to (as runc and crun do).
        let conn = zbus::blocking::connection::Builder::address(address.as_str())
            .map(|b| b.auth_mechanism(zbus::AuthMechanism::External).user_id(host_uid()))
            .and_then(|b| b.build())
            .map_err(|e| DbusError::Connect(Box::new(e)))?;
        Ok(Systemd { conn })
    }

    /// A connection to the bus at `address` (tests: a private bus with a fake systemd).
    #[cfg(test)]
    pub(crate) fn connect_at(address: &str) -> Result<Systemd, DbusError> {
        let conn = zbus::blocking::connection::Builder::address(address)
            .and_then(|b| b.build())
            .map_err(|e| DbusError::Connect(Box::new(e)))?;
        Ok(Systemd { conn })
    }

    fn manager(&self, method: &'static str, unit: &str) -> Result<Proxy<'_>, DbusError> {
        Proxy::new(&self.conn, DESTINATION, PATH, MANAGER).map_err(|e| call_err(method, unit, e))
    }

    /// Starts transient unit `unit` and waits for its job to finish ("done").
    pub(crate) fn start_transient_unit(&self, unit: &str, props: &[Property]) -> Result<(), DbusError> {
        const M: &str = "StartTransientUnit";
        let mgr = self.manager(M, unit)?;
        self.run_job(&mgr, M, unit, |m| m.call(M, &start_args(unit, props)))
    }

    /// Stops `unit` and waits for the job.
    pub(crate) fn stop_unit(&self, unit: &str) -> Result<(), DbusError> {
        const M: &str = "StopUnit";
        let mgr = self.manager(M, unit)?;
        self.run_job(&mgr, M, unit, |m| m.call(M, &(unit, "replace")))
    }

    /// Forgets a failed unit, so that its name can be used again.
    pub(crate) fn reset_failed_unit(&self, unit: &str) -> Result<(), DbusError> {
        const M: &str = "ResetFailedUnit";
        let mgr = self.manager(M, unit)?;
        mgr.call::<_, _, ()>(M, &(unit,)).map_err(|e| call_err(M, unit, e))
    }

    /// Changes properties of a running unit (runtime only: nothing is written to /etc).
    pub(crate) fn set_unit_properties(&self, unit: &str, props: &[Property]) -> Result<(), DbusError> {
        const M: &str = "SetUnitProperties";
        let mgr = self.manager(M, unit)?;
        let encoded: Vec<(&str, DbusValue<'_>)> = props.iter().map(encode).collect();
        mgr.call::<_, _, ()>(M, &(unit, true, encoded)).map_err(|e| call_err(M, unit, e))
    }

    /// Calls `method` (which queues a job and returns its path) and waits for the job's
    /// JobRemoved signal, subscribed to before the call so it cannot be missed.
    fn run_job(
        &self,
        mgr: &Proxy<'_>,
        method: &'static str,
        unit: &str,
        call: impl FnOnce(&Proxy<'_>) -> zbus::Result<OwnedObjectPath>,
    ) -> Result<(), DbusError> {
        let signals = mgr.receive_signal("JobRemoved").map_err(|e| call_err(method, unit, e))?;
        // systemd sends job signals to subscribed clients. A second Subscribe on the same
        // connection (a slice started before the scope) is refused with AlreadySubscribed.
        match mgr.call::<_, _, ()>("Subscribe", &()).map_err(|e| call_err(method, unit, e)) {
            Err(e) if e.error_name() == Some("org.freedesktop.systemd1.AlreadySubscribed") => {}
            r => r?,
        }
        let job = call(mgr).map_err(|e| call_err(method, unit, e))?;
        // The iterator blocks without a deadline: a thread of its own waits on it.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for msg in signals {
                let Ok((_id, path, _unit, result)) = msg.body().deserialize::<(u32, OwnedObjectPath, String, String)>()
                else {
                    continue;
                };
                if path == job {
                    let _ = tx.send(result);
                    return;
                }
            }
        });
        match rx.recv_timeout(JOB_TIMEOUT) {
            Ok(result) if result == "done" => Ok(()),
            Ok(result) => Err(DbusError::Job { method, unit: unit.to_string(), result }),
            Err(_) => Err(DbusError::Timeout { method, unit: unit.to_string() }),
        }
    }
}

fn call_err(method: &'static str, unit: &str, source: zbus::Error) -> DbusError {
    DbusError::Call { method, unit: unit.to_string(), source: Box::new(source) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::zvariant::DynamicType;

    #[test]
    fn properties_have_systemds_signatures() {
        let cases = [
            (Value::Str("x".into()), "s"),
            (Value::Bool(true), "b"),
            (Value::U64(1), "t"),
            (Value::U32s(vec![7]), "au"),
            (Value::Bytes(vec![1]), "ay"),
            (Value::Strs(vec!["a.slice".into()]), "as"),
            (Value::Pairs(vec![("char-pts".into(), "rwm".into())]), "a(ss)"),
            (Value::Pairs(Vec::new()), "a(ss)"),
        ];
        for (v, sig) in cases {
            let (_, enc) = encode(&Property { name: "X", value: v });
            assert_eq!(enc.value_signature().to_string(), sig);
        }
    }

    #[test]
    fn start_transient_unit_message() {
        let props = super::super::properties::unit("berth container c1".into(), "system.slice", false, Some(42));
        let args = start_args("berth-c1.scope", &props);
        assert_eq!(DynamicType::signature(&args).to_string(), "(ssa(sv)a(sa(sv)))");
        assert_eq!((args.0, args.1), ("berth-c1.scope", "replace"));
        let pids = args.2.iter().find(|(n, _)| *n == "PIDs").expect("PIDs");
        assert_eq!(pids.1, DbusValue::from(vec![42u32]));
        assert!(args.3.is_empty());
    }

    #[test]
    fn start_wait_exists_stop_reset_and_set_against_a_fake_systemd() {
        use zbus::zvariant::OwnedValue;
        let Some(fake) = super::super::fake_bus::FakeSystemd::start(None) else {
            eprintln!("skipped: no dbus-daemon to run a private bus with");
            return;
        };
        let bus = Systemd::connect_at(&fake.address).expect("connect");
        let mut props = super::super::properties::unit("berth container c1".into(), "system.slice", false, Some(4242));
        props.push(Property { name: "MemoryMax", value: Value::U64(64 << 20) });
        bus.start_transient_unit("berth-c1.scope", &props).expect("started, job done");
        {
            let s = fake.seen.lock().expect("lock");
            assert_eq!(s.calls, ["start berth-c1.scope replace"]);
            assert_eq!(s.prop("PIDs"), Some(OwnedValue::try_from(DbusValue::from(vec![4242u32])).expect("v")));
            assert_eq!(s.prop("MemoryMax"), Some(OwnedValue::from(64u64 << 20)));
            assert_eq!(s.prop("Delegate"), Some(OwnedValue::from(true)));
        }
        let e = bus.start_transient_unit("berth-c1.scope", &props).expect_err("a second unit of that name");
        assert!(e.unit_exists(), "{e}");
        bus.set_unit_properties("berth-c1.scope", &props).expect("set");
        bus.stop_unit("berth-c1.scope").expect("stopped, job done");
        let e = bus.stop_unit("berth-c1.scope").expect_err("gone");
        assert!(e.no_such_unit(), "{e}");
        assert!(bus.reset_failed_unit("berth-c1.scope").is_err(), "nothing failed to reset");
        {
            let mut s = fake.seen.lock().expect("lock");
            s.failed.insert("left.scope".into());
            s.units.insert("left.scope".into());
        }
        bus.reset_failed_unit("left.scope").expect("a failed unit is reset");
        assert_eq!(
            fake.calls(),
            [
                "start berth-c1.scope replace",
                "start berth-c1.scope: exists",
                "set berth-c1.scope runtime=true",
                "stop berth-c1.scope replace",
                "reset-failed berth-c1.scope",
                "reset-failed left.scope",
            ]
        );
    }
}
