//! A blocking D-Bus client of the size the systemd driver needs: one connection used on the
//! calling thread only (no thread of its own), EXTERNAL authentication, method calls, and
//! the signals a match rule lets through. Authentication, `Hello` and the match rules go
//! out in one write, as sd-bus does for crun: a `run` with `--systemd-cgroup` then writes
//! to the bus twice instead of zbus's seven times, and starts no thread (zbus: three).
//!
//! Messages are marshalled by hand (little-endian) for the types the driver sends: s, o, g,
//! b, u, t, arrays, structs and variants of those. Of what comes back only the header and
//! the first fields of a body are read: an object path (a job), an error's message, and
//! JobRemoved's (u, o, s, s).

use std::io::{self, Read, Write};
use std::os::unix::net::{SocketAddr, UnixStream};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("bus address {0:?}: no unix:path= or unix:abstract= in it")]
    Address(String),
    #[error("the bus refused EXTERNAL authentication: {0:?}")]
    Auth(String),
    #[error("{name}: {message}")]
    Remote { name: String, message: String },
    #[error("a malformed message from the bus: {0}")]
    Protocol(&'static str),
    #[error("no answer within {}s", TIMEOUT.as_secs())]
    Timeout,
    #[error("the bus closed the connection")]
    Closed,
}

/// How long the bus, and a job systemd queued, may take to answer: runc's 30 s.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(30);
/// The bus daemon itself: `Hello` and `AddMatch` go to it.
const BUS_NAME: &str = "org.freedesktop.DBus";
const BUS_PATH: &str = "/org/freedesktop/DBus";
/// A message larger than this is refused rather than allocated (the spec's limit is 128 MiB;
/// nothing the driver reads is more than a few hundred bytes).
const MAX_MESSAGE: usize = 1 << 20;

const METHOD_CALL: u8 = 1;
const METHOD_RETURN: u8 = 2;
const ERROR: u8 = 3;
pub(crate) const SIGNAL: u8 = 4;

/// A message read from the bus: its header and its body, undecoded.
#[derive(Debug, Default)]
pub(crate) struct Message {
    pub kind: u8,
    pub reply_serial: Option<u32>,
    pub error_name: Option<String>,
    pub interface: Option<String>,
    pub member: Option<String>,
    pub signature: String,
    big_endian: bool,
    body: Vec<u8>,
}

impl Message {
    /// A reader of the body from its start.
    pub(crate) fn body(&self) -> Reader<'_> {
        Reader { buf: &self.body, pos: 0, big_endian: self.big_endian }
    }

    /// The text of an error reply (its body's first string, if it has one).
    pub(crate) fn error_text(&self) -> String {
        if self.signature.starts_with('s') {
            self.body().string().unwrap_or_default()
        } else {
            String::new()
        }
    }
}

pub(crate) struct Bus {
    sock: UnixStream,
    serial: u32,
    /// Bytes read from the socket and not yet consumed.
    rbuf: Vec<u8>,
    /// Calls whose replies nobody waits for (`Hello`, `AddMatch`): an error reply to one
    /// of them fails whatever call is waiting then.
    unanswered: Vec<u32>,
}

impl Bus {
    /// Connects to the bus at `address`, authenticates as `uid` (the uid the kernel reports
    /// for the socket, as the bus sees it), says `Hello` and adds `match_rules`, without
    /// waiting for any answer: the first call's wait reads them.
    pub(crate) fn connect(address: &str, uid: u32, match_rules: &[&str]) -> Result<Bus, BusError> {
        let sock = UnixStream::connect_addr(&socket_addr(address)?)?;
        let mut bus = Bus { sock, serial: 0, rbuf: Vec::new(), unanswered: Vec::new() };
        let hex: String = uid.to_string().bytes().map(|b| format!("{b:02x}")).collect();
        let mut out = format!("\0AUTH EXTERNAL {hex}\r\nBEGIN\r\n").into_bytes();
        out.extend_from_slice(&bus.message(&Call::to_bus("Hello", "", &[])));
        for rule in match_rules {
            let mut body = Encoder::default();
            body.string(rule);
            out.extend_from_slice(&bus.message(&Call::to_bus("AddMatch", "s", &body.buf)));
        }
        bus.unanswered = (1..=bus.serial).collect();
        bus.sock.write_all(&out)?;
        let deadline = Instant::now() + TIMEOUT;
        let line = bus.read_line(deadline)?;
        if !line.starts_with("OK ") {
            return Err(BusError::Auth(line));
        }
        Ok(bus)
    }

    /// Makes `call` and returns its reply. Signals read meanwhile go to `on_signal`;
    /// anything else that is not the reply is passed over.
    pub(crate) fn call(
        &mut self,
        call: &Call<'_>,
        deadline: Instant,
        on_signal: &mut dyn FnMut(&Message),
    ) -> Result<Message, BusError> {
        let msg = self.message(call);
        let serial = self.serial;
        self.sock.write_all(&msg)?;
        loop {
            let m = self.read_message(deadline)?;
            if m.kind == SIGNAL {
                on_signal(&m);
                continue;
            }
            let Some(re) = m.reply_serial else { continue };
            if re == serial {
                match m.kind {
                    METHOD_RETURN => return Ok(m),
                    ERROR => return Err(remote(&m)),
                    _ => continue,
                }
            }
            if let Some(i) = self.unanswered.iter().position(|s| *s == re) {
                self.unanswered.swap_remove(i);
                if m.kind == ERROR {
                    return Err(remote(&m));
                }
            }
        }
    }

    /// The next signal that reaches this connection.
    pub(crate) fn next_signal(&mut self, deadline: Instant) -> Result<Message, BusError> {
        loop {
            let m = self.read_message(deadline)?;
            if m.kind == SIGNAL {
                return Ok(m);
            }
            if m.kind == ERROR && m.reply_serial.is_some_and(|re| self.unanswered.contains(&re)) {
                return Err(remote(&m));
            }
        }
    }

    /// `call`, marshalled with the next serial.
    fn message(&mut self, call: &Call<'_>) -> Vec<u8> {
        self.serial += 1;
        method_call(self.serial, call)
    }

    /// Reads until `rbuf` holds `n` bytes.
    fn fill(&mut self, n: usize, deadline: Instant) -> Result<(), BusError> {
        let mut chunk = [0u8; 4096];
        while self.rbuf.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(BusError::Timeout);
            }
            self.sock.set_read_timeout(Some(left))?;
            match self.sock.read(&mut chunk) {
                Ok(0) => return Err(BusError::Closed),
                Ok(k) => self.rbuf.extend_from_slice(&chunk[..k]),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return Err(BusError::Timeout)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// One line of the authentication exchange, without its "\r\n".
    fn read_line(&mut self, deadline: Instant) -> Result<String, BusError> {
        loop {
            if let Some(i) = self.rbuf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.rbuf[..i]).into_owned();
                self.rbuf.drain(..i + 2);
                return Ok(line);
            }
            if self.rbuf.len() > 4096 {
                return Err(BusError::Protocol("an authentication line without an end"));
            }
            let want = self.rbuf.len() + 1;
            self.fill(want, deadline)?;
        }
    }

    fn read_message(&mut self, deadline: Instant) -> Result<Message, BusError> {
        loop {
            match parse_message(&self.rbuf)? {
                Parsed::Message(m, n) => {
                    self.rbuf.drain(..n);
                    return Ok(m);
                }
                Parsed::Need(n) => self.fill(n, deadline)?,
            }
        }
    }
}

/// What the start of a buffer read from the bus holds.
pub(crate) enum Parsed {
    /// A whole message, and how many bytes it took.
    Message(Message, usize),
    /// Not yet a whole message: the buffer must grow to this many bytes.
    Need(usize),
}

/// The message at the start of `buf`: its header fields decoded, its body kept as bytes.
/// Whatever the bytes, the answer is a message, a wish for more, or an error.
pub(crate) fn parse_message(buf: &[u8]) -> Result<Parsed, BusError> {
    if buf.len() < 16 {
        return Ok(Parsed::Need(16));
    }
    let big_endian = match buf[0] {
        b'l' => false,
        b'B' => true,
        _ => return Err(BusError::Protocol("unknown byte order")),
    };
    let mut r = Reader { buf: &buf[..16], pos: 4, big_endian };
    let body_len = r.u32()? as usize;
    let _serial = r.u32()?;
    let fields_len = r.u32()? as usize;
    if body_len > MAX_MESSAGE || fields_len > MAX_MESSAGE {
        return Err(BusError::Protocol("a message too large"));
    }
    let header_end = (16 + fields_len).next_multiple_of(8);
    let total = header_end + body_len;
    if buf.len() < total {
        return Ok(Parsed::Need(total));
    }
    let mut m = Message { kind: buf[1], big_endian, ..Message::default() };
    let mut fields = Reader { buf: &buf[..16 + fields_len], pos: 16, big_endian };
    while fields.pos < 16 + fields_len {
        fields.align(8)?;
        let code = fields.u8()?;
        let sig = fields.signature()?;
        match sig.as_str() {
            "s" | "o" => {
                let v = fields.string()?;
                match code {
                    2 => m.interface = Some(v),
                    3 => m.member = Some(v),
                    4 => m.error_name = Some(v),
                    _ => {}
                }
            }
            "u" => {
                let v = fields.u32()?;
                if code == 5 {
                    m.reply_serial = Some(v);
                }
            }
            "g" => {
                let v = fields.signature()?;
                if code == 8 {
                    m.signature = v;
                }
            }
            _ => return Err(BusError::Protocol("a header field of an unknown type")),
        }
    }
    m.body = buf[header_end..total].to_vec();
    Ok(Parsed::Message(m, total))
}

/// A method call: where it goes, and its body marshalled (`signature` says its types).
pub(crate) struct Call<'a> {
    pub destination: &'a str,
    pub path: &'a str,
    pub interface: &'a str,
    pub member: &'a str,
    pub signature: &'a str,
    pub body: &'a [u8],
}

impl<'a> Call<'a> {
    /// A call of the bus daemon's own interface.
    fn to_bus(member: &'a str, signature: &'a str, body: &'a [u8]) -> Call<'a> {
        Call { destination: BUS_NAME, path: BUS_PATH, interface: BUS_NAME, member, signature, body }
    }
}

/// The bytes of method call `c` numbered `serial`: the fixed header, the header fields
/// (path, interface, member, destination, signature), padding to 8, the body.
fn method_call(serial: u32, c: &Call<'_>) -> Vec<u8> {
    let mut m = Encoder::default();
    m.buf.extend_from_slice(&[b'l', METHOD_CALL, 0, 1]);
    m.u32(u32::try_from(c.body.len()).unwrap_or(u32::MAX));
    m.u32(serial);
    m.array(8, |a| {
        let mut field = |code: u8, sig: &str, write: &dyn Fn(&mut Encoder)| {
            a.align(8);
            a.u8(code);
            a.signature(sig);
            write(a);
        };
        field(1, "o", &|e| e.string(c.path));
        field(2, "s", &|e| e.string(c.interface));
        field(3, "s", &|e| e.string(c.member));
        field(6, "s", &|e| e.string(c.destination));
        if !c.signature.is_empty() {
            field(8, "g", &|e| e.signature(c.signature));
        }
    });
    m.align(8);
    m.buf.extend_from_slice(c.body);
    m.buf
}

fn remote(m: &Message) -> BusError {
    BusError::Remote { name: m.error_name.clone().unwrap_or_default(), message: m.error_text() }
}

/// The socket of a D-Bus address ("unix:path=/run/dbus/system_bus_socket", possibly
/// several separated by ';', values %-escaped): the first unix one with a path or an
/// abstract name.
fn socket_addr(address: &str) -> Result<SocketAddr, BusError> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    for entry in address.split(';') {
        let Some(params) = entry.strip_prefix("unix:") else { continue };
        for kv in params.split(',') {
            let Some((k, v)) = kv.split_once('=') else { continue };
            let v = unescape(v).ok_or_else(|| BusError::Address(address.to_string()))?;
            match k {
                "path" => return Ok(SocketAddr::from_pathname(std::ffi::OsStr::from_bytes(&v))?),
                "abstract" => return Ok(SocketAddr::from_abstract_name(&v)?),
                _ => {}
            }
        }
    }
    Err(BusError::Address(address.to_string()))
}

/// A D-Bus address value with its %XX escapes decoded.
fn unescape(v: &str) -> Option<Vec<u8>> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Marshals values in D-Bus's little-endian wire format, each aligned to its type's
/// boundary from the start of `buf` (a body, or a whole message).
#[derive(Default)]
pub(crate) struct Encoder {
    pub buf: Vec<u8>,
}

impl Encoder {
    pub(crate) fn align(&mut self, n: usize) {
        while !self.buf.len().is_multiple_of(n) {
            self.buf.push(0);
        }
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.align(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.align(8);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn bool(&mut self, v: bool) {
        self.u32(u32::from(v));
    }

    /// A string or an object path.
    pub(crate) fn string(&mut self, s: &str) {
        self.u32(u32::try_from(s.len()).unwrap_or(u32::MAX));
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    pub(crate) fn signature(&mut self, s: &str) {
        self.buf.push(u8::try_from(s.len()).unwrap_or(u8::MAX));
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    /// An array whose elements `f` writes; `element_align` is its element type's alignment
    /// (8 for structs), to which the start is padded even when the array is empty, as the
    /// format wants.
    pub(crate) fn array(&mut self, element_align: usize, f: impl FnOnce(&mut Encoder)) {
        self.align(4);
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        self.align(element_align);
        let start = self.buf.len();
        f(self);
        let len = u32::try_from(self.buf.len() - start).unwrap_or(u32::MAX);
        self.buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }
}

/// Reads the fields of a body (or a header) in order, each aligned to its boundary.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    big_endian: bool,
}

impl Reader<'_> {
    fn align(&mut self, n: usize) -> Result<(), BusError> {
        self.pos = self.pos.next_multiple_of(n);
        if self.pos > self.buf.len() {
            return Err(BusError::Protocol("a field past the end of its message"));
        }
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&[u8], BusError> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len());
        let end = end.ok_or(BusError::Protocol("a field past the end of its message"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, BusError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32, BusError> {
        self.align(4)?;
        let b: [u8; 4] = self.take(4)?.try_into().map_err(|_| BusError::Protocol("a short u32"))?;
        Ok(if self.big_endian { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) })
    }

    /// A string or an object path.
    pub(crate) fn string(&mut self) -> Result<String, BusError> {
        let n = self.u32()? as usize;
        let s = String::from_utf8_lossy(self.take(n)?).into_owned();
        self.take(1)?;
        Ok(s)
    }

    fn signature(&mut self) -> Result<String, BusError> {
        let n = usize::from(self.u8()?);
        let s = String::from_utf8_lossy(self.take(n)?).into_owned();
        self.take(1)?;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_name_a_path_or_an_abstract_socket() {
        let a = socket_addr("unix:path=/run/dbus/system_bus_socket").expect("path");
        assert_eq!(a.as_pathname(), Some(std::path::Path::new("/run/dbus/system_bus_socket")));
        let a = socket_addr("tcp:host=x;unix:path=/run/user/1000/bus,guid=abc").expect("second entry");
        assert_eq!(a.as_pathname(), Some(std::path::Path::new("/run/user/1000/bus")));
        let a = socket_addr("unix:path=/tmp/a%20b").expect("escaped");
        assert_eq!(a.as_pathname(), Some(std::path::Path::new("/tmp/a b")));
        use std::os::linux::net::SocketAddrExt;
        let a = socket_addr("unix:abstract=/tmp/dbus-x").expect("abstract");
        assert_eq!(a.as_abstract_name(), Some(&b"/tmp/dbus-x"[..]));
        assert!(matches!(socket_addr("tcp:host=localhost,port=1"), Err(BusError::Address(_))));
        assert!(matches!(socket_addr("unix:path=/x%zz"), Err(BusError::Address(_))));
    }

    #[test]
    fn hello_is_marshalled_byte_for_byte_as_sd_bus_sends_it() {
        // crun's Hello under strace in the Debian 13 guest: 128 bytes, 109 of them header
        // fields, no body.
        let msg = method_call(1, &Call::to_bus("Hello", "", &[]));
        assert_eq!(msg.len(), 128);
        assert_eq!(&msg[..12], b"l\x01\x00\x01\x00\x00\x00\x00\x01\x00\x00\x00");
        assert_eq!(u32::from_le_bytes(msg[12..16].try_into().unwrap()), 109);
        // The path field: code 1, signature "o", the path's length at 20 (4-aligned).
        assert_eq!(&msg[16..20], b"\x01\x01o\x00");
        assert_eq!(&msg[20..24], &21u32.to_le_bytes());
        assert_eq!(&msg[24..46], b"/org/freedesktop/DBus\0");
    }

    #[test]
    fn a_call_read_back_from_a_socket_has_its_header_and_body() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let mut body = Encoder::default();
        body.string("berth-c1.scope");
        body.string("replace");
        let c = Call {
            destination: "org.freedesktop.systemd1",
            path: "/org/freedesktop/systemd1",
            interface: "org.freedesktop.systemd1.Manager",
            member: "StopUnit",
            signature: "ss",
            body: &body.buf,
        };
        a.write_all(&method_call(7, &c)).unwrap();
        let mut bus = Bus { sock: b, serial: 0, rbuf: Vec::new(), unanswered: Vec::new() };
        let m = bus.read_message(Instant::now() + Duration::from_secs(5)).unwrap();
        assert_eq!(m.kind, METHOD_CALL);
        assert_eq!(m.interface.as_deref(), Some("org.freedesktop.systemd1.Manager"));
        assert_eq!(m.member.as_deref(), Some("StopUnit"));
        assert_eq!(m.signature, "ss");
        let mut r = m.body();
        assert_eq!((r.string().unwrap(), r.string().unwrap()), ("berth-c1.scope".into(), "replace".into()));
        assert!(bus.rbuf.is_empty());
    }

    #[test]
    fn an_empty_array_of_structs_is_padded_to_eight() {
        let mut e = Encoder::default();
        e.u8(1);
        e.array(8, |_| {});
        // Length at 4, then padding to 8, not counted in the length.
        assert_eq!(e.buf, [1, 0, 0, 0, 0, 0, 0, 0]);
        let mut e = Encoder::default();
        e.array(8, |a| {
            a.align(8);
            a.string("x");
        });
        assert_eq!(e.buf[..4], 6u32.to_le_bytes());
        assert_eq!(e.buf.len(), 8 + 6);
    }

    #[test]
    fn a_reader_reads_what_the_encoder_wrote_and_refuses_short_input() {
        let mut e = Encoder::default();
        e.u32(7);
        e.string("/org/freedesktop/systemd1/job/42");
        e.string("done");
        let mut r = Reader { buf: &e.buf, pos: 0, big_endian: false };
        assert_eq!(r.u32().unwrap(), 7);
        assert_eq!(r.string().unwrap(), "/org/freedesktop/systemd1/job/42");
        assert_eq!(r.string().unwrap(), "done");
        let mut short = Reader { buf: &e.buf[..10], pos: 0, big_endian: false };
        short.u32().unwrap();
        assert!(matches!(short.string(), Err(BusError::Protocol(_))));
        let huge = 0xffff_fff0u32.to_le_bytes();
        assert!(Reader { buf: &huge, pos: 0, big_endian: false }.string().is_err());
    }
}
