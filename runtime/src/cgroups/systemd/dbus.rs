//! The few calls of systemd's D-Bus API (org.freedesktop.systemd1.Manager) the driver
//! makes, over the system bus (rootless: the user's bus, to the user's own manager) with
//! berth's own blocking client (`bus.rs`): start a transient unit and wait for its job, set
//! unit properties, stop a unit and wait, reset a failed unit.
//!
//! Only the systemd driver connects; nothing here runs on the cgroupfs path. The client has
//! no thread, but the connection is still made after the container's init is cloned: the
//! unit starts with the init's pid in it.

use std::time::Instant;

use super::bus::{parse_message, Bus, BusError, Call, Encoder, Message, Parsed, SIGNAL, TIMEOUT};
use super::properties::{Property, Value};

pub(crate) const DESTINATION: &str = "org.freedesktop.systemd1";
pub(crate) const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
/// The signal a job's end is told by. systemd sends it to the client that queued the job
/// whether or not that client subscribed (as crun and runc rely on).
const JOB_REMOVED_RULE: &str = "type='signal',sender='org.freedesktop.systemd1',path='/org/freedesktop/systemd1',\
interface='org.freedesktop.systemd1.Manager',member='JobRemoved'";

/// Where the system bus listens when DBUS_SYSTEM_BUS_ADDRESS does not say otherwise.
pub(crate) const SYSTEM_BUS_SOCKET: &str = "/run/dbus/system_bus_socket";

/// The system bus: DBUS_SYSTEM_BUS_ADDRESS, else the standard socket.
fn system_bus_address() -> String {
    std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
        .ok()
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| format!("unix:path={SYSTEM_BUS_SOCKET}"))
}

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
    Connect(Box<BusError>),
    #[error("rootless: no user bus (DBUS_SESSION_BUS_ADDRESS is unset and $XDG_RUNTIME_DIR/bus does not exist)")]
    NoUserBus,
    #[error("{method} {unit}: {source}")]
    Call { method: &'static str, unit: String, source: Box<BusError> },
    #[error("{method} {unit}: the job ended with {result:?}")]
    Job { method: &'static str, unit: String, result: String },
    #[error("{method} {unit}: no answer from systemd within {}s", TIMEOUT.as_secs())]
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

    /// Whether systemd may have taken the request (queued a job) before this error: it
    /// did, or its answer never came.
    pub(crate) fn job_queued(&self) -> bool {
        match self {
            DbusError::Job { .. } | DbusError::Timeout { .. } => true,
            DbusError::Call { source, .. } => matches!(**source, BusError::Timeout | BusError::Closed),
            _ => false,
        }
    }

    fn error_name(&self) -> Option<&str> {
        match self {
            DbusError::Call { source, .. } => match &**source {
                BusError::Remote { name, .. } => Some(name.as_str()),
                _ => None,
            },
            _ => None,
        }
    }
}

/// The D-Bus signature of a property's value.
fn signature(v: &Value) -> &'static str {
    match v {
        Value::Str(_) => "s",
        Value::Bool(_) => "b",
        Value::U64(_) => "t",
        Value::U32s(_) => "au",
        Value::Bytes(_) => "ay",
        Value::Strs(_) => "as",
        Value::Pairs(_) => "a(ss)",
    }
}

/// Appends `props` as an a(sv): each a struct of its name and a variant of its value.
fn encode_properties(e: &mut Encoder, props: &[Property]) {
    e.array(8, |a| {
        for p in props {
            a.align(8);
            a.string(p.name);
            a.signature(signature(&p.value));
            match &p.value {
                Value::Str(s) => a.string(s),
                Value::Bool(b) => a.bool(*b),
                Value::U64(n) => a.u64(*n),
                Value::U32s(v) => a.array(4, |a| v.iter().for_each(|n| a.u32(*n))),
                Value::Bytes(v) => a.array(1, |a| v.iter().for_each(|b| a.u8(*b))),
                Value::Strs(v) => a.array(4, |a| v.iter().for_each(|s| a.string(s))),
                Value::Pairs(v) => a.array(8, |a| {
                    for (x, y) in v {
                        a.align(8);
                        a.string(x);
                        a.string(y);
                    }
                }),
            }
        }
    });
}

/// StartTransientUnit's body, (ssa(sv)a(sa(sv))): name, mode, properties, no auxiliary
/// units. "replace": as runc, a queued conflicting job (a stop of a unit of that name)
/// gives way.
pub(crate) fn start_body(unit: &str, props: &[Property]) -> Vec<u8> {
    let mut e = Encoder::default();
    e.string(unit);
    e.string("replace");
    encode_properties(&mut e, props);
    e.array(8, |_| {});
    e.buf
}

/// A JobRemoved signal's job path and result, if `m` is one.
fn job_removed(m: &Message) -> Option<(String, String)> {
    if m.kind != SIGNAL || m.member.as_deref() != Some("JobRemoved") || m.interface.as_deref() != Some(MANAGER) {
        return None;
    }
    let mut r = m.body();
    let _id = r.u32().ok()?;
    let path = r.string().ok()?;
    let _unit = r.string().ok()?;
    let result = r.string().ok()?;
    Some((path, result))
}

/// Fuzzing (`berth::fuzzing::dbus_messages`): reads `bytes` as the bus would deliver them,
/// message after message, and decodes of each what the driver decodes. Returns how many
/// whole messages there were.
pub(crate) fn decode_all(bytes: &[u8]) -> usize {
    let (mut rest, mut n) = (bytes, 0);
    while let Ok(Parsed::Message(m, used)) = parse_message(rest) {
        let _ = job_removed(&m);
        let _ = m.error_text();
        let _ = m.body().string();
        rest = rest.get(used..).unwrap_or_default();
        n += 1;
    }
    n
}

pub(crate) struct Systemd {
    bus: Bus,
}

impl Systemd {
    /// The system manager on the system bus or, with `user`, the user's own manager on the
    /// user's bus (rootless). EXTERNAL authentication sends our uid, which the bus compares
    /// with the uid the kernel reports for the socket: the host's. In podman's user
    /// namespace berth is uid 0, so it sends the id that maps to (as runc and crun do).
    pub(crate) fn connect(user: bool) -> Result<Systemd, DbusError> {
        let address = if user { user_bus_address().ok_or(DbusError::NoUserBus)? } else { system_bus_address() };
        Self::connect_at(&address)
    }

    /// A connection to the bus at `address` (tests: a private bus with a fake systemd).
    pub(crate) fn connect_at(address: &str) -> Result<Systemd, DbusError> {
        let bus =
            Bus::connect(address, host_uid(), &[JOB_REMOVED_RULE]).map_err(|e| DbusError::Connect(Box::new(e)))?;
        Ok(Systemd { bus })
    }

    /// Starts transient unit `unit` and waits for its job to finish ("done").
    pub(crate) fn start_transient_unit(&mut self, unit: &str, props: &[Property]) -> Result<(), DbusError> {
        self.run_job("StartTransientUnit", unit, "ssa(sv)a(sa(sv))", &start_body(unit, props))
    }

    /// Stops `unit` and waits for the job.
    pub(crate) fn stop_unit(&mut self, unit: &str) -> Result<(), DbusError> {
        let mut e = Encoder::default();
        e.string(unit);
        e.string("replace");
        self.run_job("StopUnit", unit, "ss", &e.buf)
    }

    /// Forgets a failed unit, so that its name can be used again.
    pub(crate) fn reset_failed_unit(&mut self, unit: &str) -> Result<(), DbusError> {
        let mut e = Encoder::default();
        e.string(unit);
        self.call("ResetFailedUnit", unit, "s", &e.buf, &mut |_| {}).map(drop)
    }

    /// Changes properties of a running unit (runtime only: nothing is written to /etc).
    pub(crate) fn set_unit_properties(&mut self, unit: &str, props: &[Property]) -> Result<(), DbusError> {
        let mut e = Encoder::default();
        e.string(unit);
        e.bool(true);
        encode_properties(&mut e, props);
        self.call("SetUnitProperties", unit, "sba(sv)", &e.buf, &mut |_| {}).map(drop)
    }

    fn call(
        &mut self,
        method: &'static str,
        unit: &str,
        signature: &str,
        body: &[u8],
        on_signal: &mut dyn FnMut(&Message),
    ) -> Result<Message, DbusError> {
        let c = Call { destination: DESTINATION, path: PATH, interface: MANAGER, member: method, signature, body };
        let deadline = Instant::now() + TIMEOUT;
        self.bus.call(&c, deadline, on_signal).map_err(|e| call_err(method, unit, e))
    }

    /// Calls `method` (which queues a job and returns its path) and waits for the job's
    /// JobRemoved signal, matched since the connection was made so it cannot be missed:
    /// it may even come before the reply.
    fn run_job(&mut self, method: &'static str, unit: &str, signature: &str, body: &[u8]) -> Result<(), DbusError> {
        let mut ended: Vec<(String, String)> = Vec::new();
        let reply = self.call(method, unit, signature, body, &mut |m| ended.extend(job_removed(m)))?;
        let job = reply.body().string().map_err(|e| call_err(method, unit, e))?;
        let deadline = Instant::now() + TIMEOUT;
        let result = loop {
            if let Some((_, result)) = ended.iter().find(|(path, _)| *path == job) {
                break result.clone();
            }
            match self.bus.next_signal(deadline) {
                Ok(m) => ended.extend(job_removed(&m)),
                Err(BusError::Timeout) => return Err(DbusError::Timeout { method, unit: unit.to_string() }),
                Err(e) => return Err(call_err(method, unit, e)),
            }
        };
        match result.as_str() {
            "done" => Ok(()),
            _ => Err(DbusError::Job { method, unit: unit.to_string(), result }),
        }
    }
}

fn call_err(method: &'static str, unit: &str, source: BusError) -> DbusError {
    DbusError::Call { method, unit: unit.to_string(), source: Box::new(source) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::zvariant::{self, Value as ZValue};

    /// A property as zbus encodes it: the reference the hand marshalling is checked against.
    fn zbus_property(p: &Property) -> (&'static str, ZValue<'static>) {
        let v = match &p.value {
            Value::Str(s) => ZValue::from(s.clone()),
            Value::Bool(b) => ZValue::from(*b),
            Value::U64(n) => ZValue::from(*n),
            Value::U32s(v) => ZValue::from(v.clone()),
            Value::Bytes(v) => ZValue::from(v.clone()),
            Value::Strs(v) => ZValue::from(v.clone()),
            Value::Pairs(v) => ZValue::from(v.clone()),
        };
        (p.name, v)
    }

    fn zbus_bytes<T: serde::Serialize + zvariant::DynamicType>(v: &T) -> Vec<u8> {
        let ctxt = zvariant::serialized::Context::new_dbus(zvariant::LE, 0);
        zvariant::to_bytes(ctxt, v).expect("zbus encodes it").to_vec()
    }

    #[test]
    fn every_property_type_is_marshalled_as_zbus_marshals_it() {
        let values = [
            Value::Str("x".into()),
            Value::Bool(true),
            Value::U64(1 << 40),
            Value::U32s(vec![7, 8]),
            Value::Bytes(vec![1, 2, 3]),
            Value::Strs(vec!["a.slice".into(), "b".into()]),
            Value::Pairs(vec![("char-pts".into(), "rwm".into()), ("/dev/null".into(), "rw".into())]),
            Value::Pairs(Vec::new()),
            Value::U32s(Vec::new()),
        ];
        for v in values {
            let props = [Property { name: "Xy", value: v.clone() }];
            let mut ours = Encoder::default();
            encode_properties(&mut ours, &props);
            let theirs: Vec<(&str, ZValue<'_>)> = props.iter().map(zbus_property).collect();
            assert_eq!(ours.buf, zbus_bytes(&theirs), "{v:?}");
        }
    }

    #[test]
    fn start_transient_unit_body_is_marshalled_as_zbus_marshals_it() {
        let mut props = super::super::properties::unit("berth container c1".into(), "system.slice", false, Some(42));
        props.push(Property { name: "MemoryMax", value: Value::U64(64 << 20) });
        type Props<'a> = Vec<(&'a str, ZValue<'a>)>;
        let theirs: (&str, &str, Props<'_>, Vec<(&str, Props<'_>)>) =
            ("berth-c1.scope", "replace", props.iter().map(zbus_property).collect(), Vec::new());
        assert_eq!(zvariant::DynamicType::signature(&theirs).to_string(), "(ssa(sv)a(sa(sv)))");
        assert_eq!(start_body("berth-c1.scope", &props), zbus_bytes(&theirs));
    }

    /// The fuzz target's seeds (fuzz/corpus/dbus_messages): what systemd and the bus send.
    fn seed(name: &str) -> Vec<u8> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/dbus_messages");
        std::fs::read(dir.join(name)).expect("seed")
    }

    #[test]
    fn replies_signals_and_errors_as_systemd_sends_them_are_decoded() {
        assert_eq!(decode_all(&seed("hello-reply-and-name-acquired")), 2);
        let bytes = seed("job-removed-before-the-reply");
        let Ok(Parsed::Message(signal, used)) = parse_message(&bytes) else { panic!("a message") };
        let job = "/org/freedesktop/systemd1/job/1234".to_string();
        assert_eq!(job_removed(&signal), Some((job.clone(), "done".into())));
        let Ok(Parsed::Message(reply, _)) = parse_message(&bytes[used..]) else { panic!("a second message") };
        assert_eq!((reply.kind, reply.reply_serial), (2, Some(3)));
        assert_eq!(reply.body().string().expect("the job's path"), job);
        let Ok(Parsed::Message(err, _)) = parse_message(&seed("unit-exists-error")) else { panic!("a message") };
        assert_eq!(err.error_name.as_deref(), Some("org.freedesktop.systemd1.UnitExists"));
        assert!(err.error_text().contains("already loaded"), "{}", err.error_text());
        // Cut anywhere, a message asks for more bytes and is not misread.
        for cut in 0..bytes.len() {
            match parse_message(&bytes[..cut]) {
                Ok(Parsed::Need(n)) => assert!(n > cut),
                Ok(Parsed::Message(_, used)) => assert!(used <= cut),
                Err(e) => panic!("cut at {cut}: {e}"),
            }
        }
    }

    #[test]
    fn start_wait_exists_stop_reset_and_set_against_a_fake_systemd() {
        use zbus::zvariant::OwnedValue;
        let Some(fake) = super::super::fake_bus::FakeSystemd::start(None) else {
            eprintln!("skipped: no dbus-daemon to run a private bus with");
            return;
        };
        let mut bus = Systemd::connect_at(&fake.address).expect("connect");
        let mut props = super::super::properties::unit("berth container c1".into(), "system.slice", false, Some(4242));
        props.push(Property { name: "MemoryMax", value: Value::U64(64 << 20) });
        bus.start_transient_unit("berth-c1.scope", &props).expect("started, job done");
        {
            let s = fake.seen.lock().expect("lock");
            assert_eq!(s.calls, ["start berth-c1.scope replace"]);
            assert_eq!(s.prop("PIDs"), Some(OwnedValue::try_from(ZValue::from(vec![4242u32])).expect("v")));
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
