//! The messages of criu's RPC (`criu swrk <fd>`): the few fields of `criu_req`,
//! `criu_opts` and `criu_resp` berth uses, encoded and decoded by hand with the protobuf
//! crate's wire streams. Field numbers are criu's `images/rpc.proto` (proto2); they have
//! been stable since criu 3.x, so no copy of that file is compiled in and no protoc is
//! needed. Fields berth does not know are skipped when decoding.

use protobuf::{CodedInputStream, CodedOutputStream};

/// `criu_req_type`: what a request asks for, and what a response answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReqType {
    Dump,
    Restore,
    PreDump,
    Notify,
    /// Any other value (criu answers an unparsable request with EMPTY = 0).
    Other(i32),
}

impl ReqType {
    fn to_i32(self) -> i32 {
        match self {
            ReqType::Dump => 1,
            ReqType::Restore => 2,
            ReqType::PreDump => 4,
            ReqType::Notify => 6,
            ReqType::Other(n) => n,
        }
    }

    fn from_i32(n: i32) -> Self {
        match n {
            1 => ReqType::Dump,
            2 => ReqType::Restore,
            4 => ReqType::PreDump,
            6 => ReqType::Notify,
            n => ReqType::Other(n),
        }
    }
}

/// `criu_cg_mode`, from runc's `--manage-cgroups-mode` words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgMode {
    Ignore = 0,
    Soft = 3,
    Full = 4,
    Strict = 5,
}

impl CgMode {
    pub fn parse(word: &str) -> Option<Self> {
        match word {
            "ignore" => Some(CgMode::Ignore),
            "soft" => Some(CgMode::Soft),
            "full" => Some(CgMode::Full),
            "strict" => Some(CgMode::Strict),
            _ => None,
        }
    }
}

/// `criu_opts`: the options of a dump, pre-dump or restore (each field is the flag of
/// the same name on criu's command line).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Opts {
    /// An fd of ours; criu opens it through /proc/<our pid>/fd.
    pub images_dir_fd: i32,
    /// The root of the tree to dump.
    pub pid: Option<i32>,
    pub leave_running: bool,
    pub ext_unix_sk: bool,
    pub tcp_established: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    pub log_level: i32,
    /// Relative to the work directory.
    pub log_file: String,
    /// Notifications (`pre-dump`, `post-restore`, `orphan-pts-master`, …) over the socket.
    pub notify_scripts: bool,
    pub root: Option<String>,
    /// `--prev-images-dir`, relative to the images directory.
    pub parent_img: Option<String>,
    pub track_mem: bool,
    pub work_dir_fd: Option<i32>,
    pub manage_cgroups: bool,
    /// `--cgroup-root [ctrl:]path`.
    pub cg_root: Vec<(Option<String>, String)>,
    /// The restored init becomes our child, not criu's.
    pub rst_sibling: bool,
    /// `--inherit-fd fd[N]:key`: fd N of the criu process (key, N).
    pub inherit_fd: Vec<(String, i32)>,
    pub manage_cgroups_mode: Option<CgMode>,
    /// `--external` values.
    pub external: Vec<String>,
    /// `--freeze-cgroup`: the freezer of a paused container, through which criu takes its
    /// tasks (frozen ones cannot be seized by ptrace).
    pub freeze_cgroup: Option<String>,
    /// A pty slave whose master is outside the dumped tree is dumped as such, and at restore
    /// a new master is made and sent to us (`orphan-pts-master`).
    pub orphan_pts_master: bool,
}

/// `criu_req`.
#[derive(Debug, Clone, PartialEq)]
pub struct Req {
    pub typ: ReqType,
    pub opts: Option<Opts>,
    /// The answer to a notification.
    pub notify_success: Option<bool>,
}

/// `criu_notify`: criu has reached a point of the dump or restore (`script`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Notify {
    pub script: String,
    pub pid: Option<i32>,
}

/// `criu_resp`.
#[derive(Debug, Clone, PartialEq)]
pub struct Resp {
    pub typ: ReqType,
    pub success: bool,
    /// `restore.pid`: the restored init.
    pub restored_pid: Option<i32>,
    pub notify: Option<Notify>,
    pub cr_errno: Option<i32>,
    pub cr_errmsg: Option<String>,
}

type PResult<T> = protobuf::Result<T>;

/// Encodes with a fresh stream over a vector (nested messages are encoded first and
/// written as bytes: the same wire form as an embedded message).
fn encode(f: impl FnOnce(&mut CodedOutputStream<'_>) -> PResult<()>) -> PResult<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut os = CodedOutputStream::vec(&mut out);
        f(&mut os)?;
        os.flush()?;
    }
    Ok(out)
}

fn write_flag(os: &mut CodedOutputStream<'_>, field: u32, on: bool) -> PResult<()> {
    // proto2 optional bools: only the ones set are sent, criu's defaults stand otherwise.
    if on {
        os.write_bool(field, true)?;
    }
    Ok(())
}

impl Opts {
    pub fn encode(&self) -> PResult<Vec<u8>> {
        encode(|os| {
            os.write_int32(1, self.images_dir_fd)?;
            if let Some(pid) = self.pid {
                os.write_int32(2, pid)?;
            }
            write_flag(os, 3, self.leave_running)?;
            write_flag(os, 4, self.ext_unix_sk)?;
            write_flag(os, 5, self.tcp_established)?;
            write_flag(os, 7, self.shell_job)?;
            write_flag(os, 8, self.file_locks)?;
            os.write_int32(9, self.log_level)?;
            os.write_string(10, &self.log_file)?;
            write_flag(os, 12, self.notify_scripts)?;
            if let Some(r) = &self.root {
                os.write_string(13, r)?;
            }
            if let Some(p) = &self.parent_img {
                os.write_string(14, p)?;
            }
            write_flag(os, 15, self.track_mem)?;
            if let Some(fd) = self.work_dir_fd {
                os.write_int32(17, fd)?;
            }
            write_flag(os, 24, self.manage_cgroups)?;
            for (ctrl, path) in &self.cg_root {
                let m = encode(|o| {
                    if let Some(c) = ctrl {
                        o.write_string(1, c)?;
                    }
                    o.write_string(2, path)
                })?;
                os.write_bytes(25, &m)?;
            }
            write_flag(os, 26, self.rst_sibling)?;
            for (key, fd) in &self.inherit_fd {
                let m = encode(|o| {
                    o.write_string(1, key)?;
                    o.write_int32(2, *fd)
                })?;
                os.write_bytes(27, &m)?;
            }
            if let Some(mode) = self.manage_cgroups_mode {
                os.write_enum(34, mode as i32)?;
            }
            for e in &self.external {
                os.write_string(37, e)?;
            }
            if let Some(f) = &self.freeze_cgroup {
                os.write_string(44, f)?;
            }
            write_flag(os, 50, self.orphan_pts_master)
        })
    }
}

impl Req {
    pub fn new(typ: ReqType, opts: Opts) -> Self {
        Req { typ, opts: Some(opts), notify_success: None }
    }

    /// The answer to a notification: carry on.
    pub fn notify_ok() -> Self {
        Req { typ: ReqType::Notify, opts: None, notify_success: Some(true) }
    }

    pub fn encode(&self) -> PResult<Vec<u8>> {
        encode(|os| {
            os.write_enum(1, self.typ.to_i32())?;
            if let Some(o) = &self.opts {
                os.write_bytes(2, &o.encode()?)?;
            }
            if let Some(ok) = self.notify_success {
                os.write_bool(3, ok)?;
            }
            Ok(())
        })
    }
}

/// Wire type of a tag (its low three bits) and its field number.
fn split(tag: u32) -> (u32, u32) {
    (tag >> 3, tag & 7)
}

const VARINT: u32 = 0;
const LEN: u32 = 2;

/// Reads the fields of one message, calling `f` with each (field, wire type) it knows
/// and skipping the others.
fn each_field(bytes: &[u8], mut f: impl FnMut(u32, &mut CodedInputStream<'_>) -> PResult<bool>) -> PResult<()> {
    let mut is = CodedInputStream::from_bytes(bytes);
    while let Some(tag) = is.read_raw_tag_or_eof()? {
        if !f(tag, &mut is)? {
            protobuf::rt::skip_field_for_tag(tag, &mut is)?;
        }
    }
    Ok(())
}

fn tag(field: u32, wire: u32) -> u32 {
    field << 3 | wire
}

impl Resp {
    pub fn decode(bytes: &[u8]) -> PResult<Self> {
        let mut r = Resp {
            typ: ReqType::Other(0),
            success: false,
            restored_pid: None,
            notify: None,
            cr_errno: None,
            cr_errmsg: None,
        };
        each_field(bytes, |t, is| {
            match split(t) {
                (1, VARINT) => r.typ = ReqType::from_i32(is.read_int32()?),
                (2, VARINT) => r.success = is.read_bool()?,
                (4, LEN) => {
                    let b = is.read_bytes()?;
                    each_field(&b, |t, is| {
                        if t == tag(1, VARINT) {
                            r.restored_pid = Some(is.read_int32()?);
                            return Ok(true);
                        }
                        Ok(false)
                    })?;
                }
                (5, LEN) => {
                    let b = is.read_bytes()?;
                    let mut n = Notify::default();
                    each_field(&b, |t, is| {
                        match split(t) {
                            (1, LEN) => n.script = is.read_string()?,
                            (2, VARINT) => n.pid = Some(is.read_int32()?),
                            _ => return Ok(false),
                        }
                        Ok(true)
                    })?;
                    r.notify = Some(n);
                }
                (7, VARINT) => r.cr_errno = Some(is.read_int32()?),
                (9, LEN) => r.cr_errmsg = Some(is.read_string()?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(r)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A response as criu would encode it (for the tests here and in criu.rs).
    pub(crate) fn encode_resp(r: &Resp) -> Vec<u8> {
        encode(|os| {
            os.write_enum(1, r.typ.to_i32())?;
            os.write_bool(2, r.success)?;
            if let Some(pid) = r.restored_pid {
                os.write_bytes(4, &encode(|o| o.write_int32(1, pid))?)?;
            }
            if let Some(n) = &r.notify {
                let m = encode(|o| {
                    o.write_string(1, &n.script)?;
                    if let Some(p) = n.pid {
                        o.write_int32(2, p)?;
                    }
                    Ok(())
                })?;
                os.write_bytes(5, &m)?;
            }
            if let Some(e) = r.cr_errno {
                os.write_int32(7, e)?;
            }
            if let Some(m) = &r.cr_errmsg {
                os.write_string(9, m)?;
            }
            Ok(())
        })
        .unwrap()
    }

    #[test]
    fn notify_answer_is_type_6_with_notify_success() {
        // criu_req { type: NOTIFY, notify_success: true }, as protoc would encode it.
        assert_eq!(Req::notify_ok().encode().unwrap(), vec![0x08, 6, 0x18, 1]);
    }

    #[test]
    fn opts_fields_carry_rpc_proto_numbers() {
        let o = Opts {
            images_dir_fd: 5,
            pid: Some(300),
            leave_running: true,
            log_level: 4,
            log_file: "dump.log".into(),
            notify_scripts: true,
            cg_root: vec![(None, "/a".into())],
            inherit_fd: vec![("k".into(), 7)],
            manage_cgroups_mode: Some(CgMode::Soft),
            external: vec!["mnt[/d]:/d".into()],
            freeze_cgroup: Some("/f".into()),
            orphan_pts_master: true,
            ..Opts::default()
        };
        let b = o.encode().unwrap();
        let mut want = vec![0x08, 5, 0x10, 0xac, 0x02, 0x18, 1, 0x48, 4, 0x52, 8];
        want.extend_from_slice(b"dump.log");
        want.extend_from_slice(&[0x60, 1]);
        // cg_root (25, length-delimited: two-byte tag 0xca 0x01) { path = "/a" }
        want.extend_from_slice(&[0xca, 0x01, 4, 0x12, 2, b'/', b'a']);
        // inherit_fd (27) { key = "k", fd = 7 }
        want.extend_from_slice(&[0xda, 0x01, 5, 0x0a, 1, b'k', 0x10, 7]);
        // manage_cgroups_mode (34, varint) = SOFT
        want.extend_from_slice(&[0x90, 0x02, 3]);
        // external (37)
        want.extend_from_slice(&[0xaa, 0x02, 10]);
        want.extend_from_slice(b"mnt[/d]:/d");
        // freeze_cgroup (44)
        want.extend_from_slice(&[0xe2, 0x02, 2, b'/', b'f']);
        // orphan_pts_master (50)
        want.extend_from_slice(&[0x90, 0x03, 1]);
        assert_eq!(b, want);
    }

    #[test]
    fn request_nests_its_opts_in_field_2() {
        let o = Opts { images_dir_fd: 3, log_file: "x".into(), ..Opts::default() };
        let inner = o.encode().unwrap();
        let b = Req::new(ReqType::Restore, o).encode().unwrap();
        let mut want = vec![0x08, 2, 0x12, inner.len() as u8];
        want.extend_from_slice(&inner);
        assert_eq!(b, want);
    }

    #[test]
    fn responses_round_trip_and_unknown_fields_are_skipped() {
        for r in [
            Resp {
                typ: ReqType::Notify,
                success: true,
                restored_pid: None,
                notify: Some(Notify { script: "orphan-pts-master".into(), pid: None }),
                cr_errno: None,
                cr_errmsg: None,
            },
            Resp {
                typ: ReqType::Restore,
                success: true,
                restored_pid: Some(4242),
                notify: None,
                cr_errno: None,
                cr_errmsg: None,
            },
            Resp {
                typ: ReqType::Dump,
                success: false,
                restored_pid: None,
                notify: None,
                cr_errno: Some(1),
                cr_errmsg: Some("bad".into()),
            },
        ] {
            let mut b = encode_resp(&r);
            // criu_resp.status (11) and a dump { restored } (3): not read by berth.
            b.extend_from_slice(&[0x58, 9, 0x1a, 2, 0x08, 1]);
            assert_eq!(Resp::decode(&b).unwrap(), r);
        }
    }

    #[test]
    fn truncated_response_is_an_error() {
        let b = encode_resp(&Resp {
            typ: ReqType::Dump,
            success: false,
            restored_pid: None,
            notify: None,
            cr_errno: None,
            cr_errmsg: Some("long message".into()),
        });
        assert!(Resp::decode(&b[..b.len() - 3]).is_err());
    }
}
