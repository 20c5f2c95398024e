//! The shim's ttrpc server: one epoll thread reads every connection, two workers shared by all
//! connections run the handlers, and a `Wait` for a process still running is parked (no thread
//! held) until `wake` finds it answerable.
//!
//! ttrpc's own sync server spends three threads per connection plus a worker pool per
//! connection, and a blocked `Wait` holds one of those workers; containerd opens one connection
//! per task, so a pod's shim grew by about six threads per container, all idle. Here the
//! thread count does not depend on how many containers or connections there are.
//!
//! Handlers are the ones ttrpc generates (`create_task`); only the transport is ours: the wire
//! format is ttrpc's (10-byte header: length, stream id, type, flags; a protobuf `Request`, a
//! protobuf `Response` back with the request's stream id).

use std::{
    collections::{HashMap, VecDeque},
    os::{
        fd::{AsFd, AsRawFd},
        unix::net::{UnixListener, UnixStream},
    },
    sync::{Arc, Condvar, Mutex, MutexGuard},
};

use containerd_shim_protos::ttrpc::{
    self, context,
    proto::{Codec, MESSAGE_HEADER_LENGTH, MESSAGE_LENGTH_MAX, MESSAGE_TYPE_REQUEST},
    Code, MessageHeader, MethodHandler, Request, Response, TtrpcContext,
};
use nix::{
    errno::Errno,
    sys::{
        epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout},
        socket::{recv, send, shutdown, MsgFlags, Shutdown},
    },
};

use crate::error::{io, sys, Result};

/// Workers shared by all connections. Two, so that one slow call (a `berth create`) does not
/// hold up a `State` or `Kill` of another container.
const WORKERS: usize = 2;
const LISTENER_TOKEN: u64 = 0;
/// What one connection may have waiting to be sent (two messages of the largest size) before
/// it is dropped: a client that sends requests and never reads the replies costs only itself.
const MAX_QUEUED: usize = 2 * MESSAGE_LENGTH_MAX;

pub type Methods = HashMap<String, Box<dyn MethodHandler + Send + Sync>>;
/// Whether a request may run now; false parks it until `wake` (used for `Wait`).
pub type Ready = Box<dyn Fn(&str, &Request) -> bool + Send + Sync>;

struct Conn {
    id: u64,
    stream: UnixStream,
    epoll: Arc<Epoll>,
    /// Replies not yet taken by the socket. Writes never block: what the socket does not take
    /// now waits here, and the reader thread sends it when epoll says the socket is writable.
    out: Mutex<Outbox>,
}

#[derive(Default)]
struct Outbox {
    buf: Vec<u8>,
    sent: usize,
    /// EPOLLOUT is in the connection's interest set.
    watching_out: bool,
    /// Over [`MAX_QUEUED`] or broken: shut down, replies are discarded.
    dropped: bool,
}

impl Conn {
    /// Sends what the socket takes without blocking, then watches for writability while
    /// something is left. A connection over its bound is shut down (the reader then drops it).
    fn flush(&self, out: &mut Outbox) {
        while out.sent < out.buf.len() && !out.dropped {
            match send(self.stream.as_raw_fd(), &out.buf[out.sent..], MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL) {
                Ok(n) => out.sent += n,
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => break,
                Err(e) => {
                    log::debug!("ttrpc: write response: {e}");
                    out.dropped = true;
                }
            }
        }
        if out.sent == out.buf.len() {
            out.buf.clear();
            out.sent = 0;
        } else if out.sent > out.buf.len() / 2 {
            out.buf.drain(..out.sent);
            out.sent = 0;
        }
        let pending = out.buf.len() - out.sent;
        if pending > MAX_QUEUED && !out.dropped {
            log::warn!("ttrpc: dropping a connection that does not read its replies ({pending} bytes queued)");
            out.dropped = true;
        }
        if out.dropped {
            out.buf = Vec::new();
            out.sent = 0;
            let _ = shutdown(self.stream.as_raw_fd(), Shutdown::Both);
            return;
        }
        let want_out = pending > 0;
        if want_out != out.watching_out {
            let mut flags = EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP;
            if want_out {
                flags |= EpollFlags::EPOLLOUT;
            }
            let mut ev = EpollEvent::new(flags, self.id);
            match self.epoll.modify(self.stream.as_fd(), &mut ev) {
                Ok(()) => out.watching_out = want_out,
                Err(e) => log::warn!("ttrpc: watch connection: {e}"),
            }
        }
    }
}

struct Work {
    conn: Arc<Conn>,
    header: MessageHeader,
    path: String,
    req: Request,
}

struct State {
    queue: VecDeque<Work>,
    parked: Vec<Work>,
    /// Bumped by every `wake`: a worker that found a request not ready parks it only if no
    /// wake happened since it took it, so an exit between the check and the parking is seen.
    wakes: u64,
}

pub struct Server {
    methods: Methods,
    ready: Ready,
    state: Mutex<State>,
    work: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Server {
    pub fn new(methods: Methods, ready: Ready) -> Arc<Self> {
        Arc::new(Server {
            methods,
            ready,
            state: Mutex::new(State { queue: VecDeque::new(), parked: Vec::new(), wakes: 0 }),
            work: Condvar::new(),
        })
    }

    /// Starts the reader and the workers; they run until the process exits.
    pub fn start(self: &Arc<Self>, listener: UnixListener) -> Result<()> {
        listener.set_nonblocking(true).map_err(io("listener nonblocking"))?;
        let epoll = Arc::new(Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(sys("epoll_create"))?);
        epoll
            .add(listener.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, LISTENER_TOKEN))
            .map_err(sys("epoll_ctl add listener"))?;
        for n in 0..WORKERS {
            let me = Arc::clone(self);
            std::thread::Builder::new()
                .name(format!("ttrpc-worker{n}"))
                .spawn(move || me.worker())
                .map_err(io("spawn ttrpc worker"))?;
        }
        let me = Arc::clone(self);
        std::thread::Builder::new()
            .name("ttrpc".into())
            .spawn(move || me.read_loop(&epoll, &listener))
            .map_err(io("spawn ttrpc reader"))?;
        Ok(())
    }

    /// Re-queues the parked requests to be checked again (call after any process exits or is
    /// deleted). Only takes the server's lock, so it may be called with the service's held.
    pub fn wake(&self) {
        let mut st = lock(&self.state);
        st.wakes += 1;
        let parked = std::mem::take(&mut st.parked);
        if !parked.is_empty() {
            st.queue.extend(parked);
            self.work.notify_all();
        }
    }

    fn read_loop(&self, epoll: &Arc<Epoll>, listener: &UnixListener) {
        let mut reserve = reserve_fd();
        let mut conns: HashMap<u64, (Arc<Conn>, Vec<u8>)> = HashMap::new();
        let mut next = LISTENER_TOKEN;
        let mut events = [EpollEvent::empty(); 16];
        loop {
            let n = match epoll.wait(&mut events, EpollTimeout::NONE) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    log::error!("ttrpc epoll: {e}");
                    return;
                }
            };
            for ev in &events[..n] {
                let token = ev.data();
                if token == LISTENER_TOKEN {
                    while let Some(stream) = accept(listener, &mut reserve) {
                        next += 1;
                        let flags = EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP;
                        if let Err(e) = epoll.add(stream.as_fd(), EpollEvent::new(flags, next)) {
                            log::warn!("ttrpc: watch connection: {e}");
                            continue;
                        }
                        let conn = Arc::new(Conn {
                            id: next,
                            stream,
                            epoll: Arc::clone(epoll),
                            out: Mutex::new(Outbox::default()),
                        });
                        conns.insert(next, (conn, Vec::new()));
                    }
                    continue;
                }
                let Some((conn, buf)) = conns.get_mut(&token) else {
                    continue;
                };
                if ev.events().contains(EpollFlags::EPOLLOUT) {
                    conn.flush(&mut lock(&conn.out));
                }
                let open = fill(&conn.stream, buf);
                let conn = Arc::clone(conn);
                let ok = self.dispatch_complete(&conn, buf);
                if !open || !ok {
                    let _ = epoll.delete(conn.stream.as_fd());
                    conns.remove(&token);
                    // A parked Wait, or a queued request, of a closed connection has nobody
                    // to answer.
                    let mut st = lock(&self.state);
                    st.parked.retain(|w| w.conn.id != conn.id);
                    st.queue.retain(|w| w.conn.id != conn.id);
                }
            }
        }
    }

    /// Queues every complete message in `buf`; false when the peer sent something malformed.
    fn dispatch_complete(&self, conn: &Arc<Conn>, buf: &mut Vec<u8>) -> bool {
        let mut used = 0;
        let mut ok = true;
        loop {
            let (header, body) = match next_frame(&buf[used..]) {
                Frame::Partial => break,
                Frame::TooLong => {
                    ok = false;
                    break;
                }
                Frame::Whole { header, body } => (header, body),
            };
            used += MESSAGE_HEADER_LENGTH + body.len();
            if header.type_ != MESSAGE_TYPE_REQUEST {
                continue;
            }
            match Request::decode(body) {
                Ok(req) => self.submit(Work {
                    conn: Arc::clone(conn),
                    header,
                    path: format!("/{}/{}", req.service, req.method),
                    req,
                }),
                Err(e) => respond_error(conn, &header, Code::INVALID_ARGUMENT, e.to_string()),
            }
        }
        buf.drain(..used);
        ok
    }

    fn submit(&self, work: Work) {
        let mut st = lock(&self.state);
        // A call that only reads the shim's own records goes ahead of those that run the
        // runtime binary: with many Creates queued (a pod's containers started at once),
        // containerd's State of the sandbox otherwise waits behind all of them, gives up
        // after its 2 s and takes pid 0 for the sandbox (CRI then points the next
        // container at /proc/0/ns/...). Found by `make soak`.
        if quick(&work.path) {
            st.queue.push_front(work);
        } else {
            st.queue.push_back(work);
        }
        drop(st);
        self.work.notify_one();
    }

    fn worker(&self) {
        loop {
            let (work, wakes) = {
                let mut st = lock(&self.state);
                loop {
                    if let Some(w) = st.queue.pop_front() {
                        break (w, st.wakes);
                    }
                    st = self.work.wait(st).unwrap_or_else(|p| p.into_inner());
                }
            };
            // Checked without the server's lock: `ready` takes the service's.
            if !(self.ready)(&work.path, &work.req) {
                let mut st = lock(&self.state);
                if st.wakes == wakes {
                    st.parked.push(work);
                } else {
                    st.queue.push_back(work);
                }
                continue;
            }
            self.run(work);
        }
    }

    fn run(&self, work: Work) {
        let Some(method) = self.methods.get(&work.path) else {
            let msg = format!("{} does not exist", work.path);
            respond_error(&work.conn, &work.header, Code::UNIMPLEMENTED, msg);
            return;
        };
        let (res_tx, res_rx) = std::sync::mpsc::channel();
        let ctx = TtrpcContext {
            fd: work.conn.stream.as_raw_fd(),
            // Cancellation is not offered: every handler but Wait returns promptly, and a
            // parked Wait is dropped with its connection.
            cancel_rx: crossbeam_channel::never(),
            mh: work.header,
            res_tx,
            metadata: context::from_pb(&work.req.metadata),
            timeout_nano: work.req.timeout_nano,
        };
        if let Err(e) = method.handler(ctx, work.req) {
            log::warn!("ttrpc {}: {e:?}", work.path);
        }
        for (header, body) in res_rx.try_iter() {
            write_message(&work.conn, header, &body);
        }
    }
}

/// Methods answered from the shim's records (and the cgroup files) without running the
/// runtime binary, in every task API version.
fn quick(path: &str) -> bool {
    let method = path.rsplit('/').next().unwrap_or_default();
    path.contains(".task.") && matches!(method, "State" | "Stats" | "Connect" | "Wait" | "CloseIO" | "ResizePty")
}

/// An fd held in reserve for when the fd table is full.
fn reserve_fd() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null").ok()
}

/// The next pending connection, or None when there is none (or accept failed). At the fd
/// limit (EMFILE/ENFILE) the listener stays readable while accept fails, and the epoll loop
/// would spin: the reserve fd is given up to accept the connection and close it at once
/// (that client sees its connection closed), then taken again. Without a reserve (another
/// thread took the fd meanwhile) the reader pauses briefly instead of spinning.
fn accept(listener: &UnixListener, reserve: &mut Option<std::fs::File>) -> Option<UnixStream> {
    // One warning per episode at the limit, not one per refused connection.
    static AT_LIMIT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    use std::sync::atomic::Ordering::Relaxed;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                AT_LIMIT.store(false, Relaxed);
                return Some(stream);
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)) => {
                if !AT_LIMIT.swap(true, Relaxed) {
                    log::warn!("ttrpc: out of file descriptors ({e}); refusing connections");
                }
                if reserve.take().is_none() {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    *reserve = reserve_fd();
                    return None;
                }
                drop(listener.accept());
                *reserve = reserve_fd();
                // Not again at once: at the limit accept fails with EMFILE even when nothing
                // is pending. Level-triggered epoll reports the next pending connection.
                return None;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// What the front of a connection's read buffer holds.
pub enum Frame<'a> {
    /// Not a whole message yet: wait for more bytes.
    Partial,
    /// A header announcing a body longer than ttrpc allows: the peer is dropped.
    TooLong,
    /// One whole message: its header and its body (`header.length` bytes).
    Whole { header: MessageHeader, body: &'a [u8] },
}

/// Splits the first ttrpc message off `buf` (header: length u32, stream id u32, type u8,
/// flags u8, big-endian), without trusting the announced length.
pub fn next_frame(buf: &[u8]) -> Frame<'_> {
    if buf.len() < MESSAGE_HEADER_LENGTH {
        return Frame::Partial;
    }
    let header = MessageHeader::from(&buf[..MESSAGE_HEADER_LENGTH]);
    let len = header.length as usize;
    if len > MESSAGE_LENGTH_MAX {
        return Frame::TooLong;
    }
    match buf.get(MESSAGE_HEADER_LENGTH..MESSAGE_HEADER_LENGTH + len) {
        Some(body) => Frame::Whole { header, body },
        None => Frame::Partial,
    }
}

/// Reads what the socket has without blocking; false once the peer has closed it.
fn fill(stream: &UnixStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    loop {
        match recv(stream.as_raw_fd(), &mut chunk, MsgFlags::MSG_DONTWAIT) {
            Ok(0) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => return true,
            Err(_) => return false,
        }
    }
}

/// Queues a reply whole and sends what the socket takes now; never blocks (a client that
/// does not read must not hold a worker or the reader).
fn write_message(conn: &Conn, header: MessageHeader, body: &[u8]) {
    let head: Vec<u8> = header.into();
    let mut out = lock(&conn.out);
    if out.dropped {
        return;
    }
    out.buf.extend_from_slice(&head);
    out.buf.extend_from_slice(body);
    conn.flush(&mut out);
}

fn respond_error(conn: &Conn, req: &MessageHeader, code: Code, msg: String) {
    let mut res = Response::new();
    res.set_status(ttrpc::get_status(code, msg));
    let (tx, rx) = std::sync::mpsc::channel();
    if ttrpc::response_to_channel(req.stream_id, res, tx).is_ok() {
        for (header, body) in rx.try_iter() {
            write_message(conn, header, &body);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_of_the_records_go_ahead_of_calls_that_run_the_runtime() {
        for m in ["State", "Stats", "Connect", "Wait", "CloseIO", "ResizePty"] {
            assert!(quick(&format!("/containerd.task.v2.Task/{m}")), "{m}");
            assert!(quick(&format!("/containerd.task.v3.Task/{m}")), "{m}");
        }
        for m in ["Create", "Start", "Delete", "Kill", "Exec", "Pids", "Update", "Shutdown"] {
            assert!(!quick(&format!("/containerd.task.v2.Task/{m}")), "{m}");
        }
        assert!(!quick("/containerd.services.events.ttrpc.v1.Events/State"));
    }

    fn frame(len: u32, stream: u32, ty: u8, body: &[u8]) -> Vec<u8> {
        let mut v = len.to_be_bytes().to_vec();
        v.extend_from_slice(&stream.to_be_bytes());
        v.extend_from_slice(&[ty, 0]);
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn next_frame_splits_whole_messages_and_waits_for_partial_ones() {
        let mut buf = frame(3, 7, MESSAGE_TYPE_REQUEST, b"abc");
        buf.extend_from_slice(&frame(5, 9, MESSAGE_TYPE_REQUEST, b"de"));
        let Frame::Whole { header, body } = next_frame(&buf) else { panic!("first frame is whole") };
        assert_eq!((header.stream_id, body), (7, &b"abc"[..]));
        let rest = &buf[MESSAGE_HEADER_LENGTH + body.len()..];
        assert!(matches!(next_frame(rest), Frame::Partial), "second frame lacks 3 body bytes");
        assert!(matches!(next_frame(&rest[..4]), Frame::Partial), "a partial header");
    }

    #[test]
    fn next_frame_refuses_a_length_above_ttrpc_maximum() {
        let buf = frame(MESSAGE_LENGTH_MAX as u32 + 1, 1, MESSAGE_TYPE_REQUEST, b"");
        assert!(matches!(next_frame(&buf), Frame::TooLong));
        let buf = frame(u32::MAX, 1, MESSAGE_TYPE_REQUEST, b"");
        assert!(matches!(next_frame(&buf), Frame::TooLong));
    }
}
