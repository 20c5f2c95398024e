//! TaskOOM for every container of the shim, from one epoll thread (started with the first
//! container, never one per container), on the `cgroupfs` crate's OOM primitives:
//! - cgroup v1: an eventfd registered on each container's `memory.oom_control`;
//! - cgroup v2: one inotify instance watching each container's `memory.events`; a TaskOOM is
//!   published when its `oom_kill` counter grows (the file is modified for every counter, and
//!   `max`/`high` events are no OOM kill).
//!
//! With the systemd cgroup driver, systemd removes a scope's cgroup as soon as its last process
//! has exited, which can be before the shim has read the victim's `oom_kill` count (the kernel
//! rate-limits `memory.events` notifications, not `cgroup.events`' that wakes systemd). On
//! cgroup v2 a parent's `oom_kill` counts the kills in every cgroup below it, and the parent
//! stays: each container's count is kept with its parent's count read together with it, and
//! kept current on every change of the parent's `memory.events` (a second inotify instance).
//! When an init dies of SIGKILL and its cgroup is already gone, a parent count beyond the one
//! last read with the container's is that container's kill.

use std::{
    collections::HashMap,
    os::fd::AsFd,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use cgroupfs::oom::{v1_oom_kills, v2_oom_kills, OomEventFd};

use nix::sys::{
    epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout},
    inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor},
};

use crate::{
    error::{io, sys, Result},
    stats::Cgroup,
};

/// The epoll token of the inotify fd watching the containers' `memory.events`.
const INOTIFY_TOKEN: u64 = 0;
/// The epoll token of the inotify fd watching their parents' `memory.events`; eventfd watches
/// count from 2.
const PARENTS_TOKEN: u64 = 1;

/// How often a container's count and its parent's are read again when the container's moved
/// between the two reads (a kill under way) before the pair is given up as unknown.
const SAMPLE_TRIES: usize = 3;

enum Source {
    V1 { eventfd: OomEventFd },
    V2 { wd: WatchDescriptor, parent: Option<PathBuf> },
}

struct Watch {
    container_id: String,
    dir: PathBuf,
    source: Source,
    oom_kills: u64,
    /// cgroup v2: the parent's `oom_kill` read together with `oom_kills` (every kill counted in
    /// it is counted in `oom_kills` too); `None` when unknown.
    parent_oom_kills: Option<u64>,
    /// The cgroup is gone: its inotify watch is dead, and only the parent's count is left.
    gone: bool,
    /// `flush` reported the kill at `oom_kills` already; the v1 eventfd for it is not news.
    flushed: bool,
    /// The number of the last TaskOOM published for this cgroup that `flush` has not yet
    /// handed out to wait for (0: none).
    unawaited: u64,
}

/// What a fresh read of a container's count found.
#[derive(Debug, PartialEq, Eq)]
enum Reading {
    /// The count grew: a kill to publish.
    Grew,
    Same,
    /// The cgroup is gone.
    Gone,
}

impl Watch {
    /// Reads the count again (on v2 with the parent's: the container's, the parent's, the
    /// container's again, so that a kill between the reads is not in the parent's alone).
    fn read(&mut self) -> Reading {
        if self.gone {
            return Reading::Gone;
        }
        let count = match &self.source {
            Source::V1 { .. } => v1_oom_kills(&self.dir),
            Source::V2 { parent: None, .. } => v2_oom_kills(&self.dir),
            Source::V2 { parent: Some(parent), .. } => {
                let mut sample = None;
                for _ in 0..SAMPLE_TRIES {
                    let before = v2_oom_kills(&self.dir);
                    let p = v2_oom_kills(parent);
                    let after = v2_oom_kills(&self.dir);
                    sample = after;
                    match (before, after) {
                        // Steady: the kernel counts a kill in the cgroup before its parents,
                        // so every kill in `p` that is this cgroup's is in `after` too.
                        (Some(b), Some(a)) if b == a => {
                            self.parent_oom_kills = p;
                            break;
                        }
                        // A kill under way: the pair is unknown until read again.
                        (Some(_), Some(_)) => self.parent_oom_kills = None,
                        // Gone: the last pair read while it was there stands.
                        _ => break,
                    }
                }
                sample
            }
        };
        match count {
            // No count in a cgroup that is still there (a file being rewritten, as a test's
            // tmpfs stands-in are) is no news.
            None if self.dir.exists() => Reading::Same,
            None => {
                self.gone = true;
                Reading::Gone
            }
            Some(c) if c > self.oom_kills => {
                self.oom_kills = c;
                Reading::Grew
            }
            Some(_) => Reading::Same,
        }
    }

    /// For a cgroup that is gone: whether its parent counted a kill that none of the parent's
    /// other cgroups did by the last time this one was read (and takes that kill as seen).
    fn parent_counted_a_kill(&mut self) -> bool {
        let Source::V2 { parent: Some(parent), .. } = &self.source else {
            return false;
        };
        match (self.parent_oom_kills, v2_oom_kills(parent)) {
            (Some(before), Some(now)) if now > before => {
                self.parent_oom_kills = Some(now);
                true
            }
            _ => false,
        }
    }
}

/// A parent cgroup whose `memory.events` is watched, and how many containers' watches use it.
struct ParentWatch {
    wd: WatchDescriptor,
    users: usize,
}

#[derive(Default)]
struct State {
    watches: HashMap<u64, Watch>,
    parents: HashMap<PathBuf, ParentWatch>,
}

/// Called with the container id on each OOM kill; returns the number of the event it
/// queued (see `Publisher::publish`).
pub type OnOom = Box<dyn Fn(&str) -> u64 + Send + Sync>;

pub struct OomWatcher {
    epoll: Arc<Epoll>,
    inotify: Arc<Inotify>,
    parents: Arc<Inotify>,
    state: Arc<Mutex<State>>,
    next: Mutex<u64>,
    started: std::sync::Once,
    on_oom: Arc<OnOom>,
}

impl OomWatcher {
    pub fn new(on_oom: OnOom) -> Result<Self> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(sys("epoll_create"))?;
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).map_err(sys("inotify_init"))?;
        let parents = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).map_err(sys("inotify_init"))?;
        for (fd, token) in [(inotify.as_fd(), INOTIFY_TOKEN), (parents.as_fd(), PARENTS_TOKEN)] {
            epoll.add(fd, EpollEvent::new(EpollFlags::EPOLLIN, token)).map_err(sys("epoll_ctl add inotify"))?;
        }
        Ok(OomWatcher {
            epoll: Arc::new(epoll),
            inotify: Arc::new(inotify),
            parents: Arc::new(parents),
            state: Arc::new(Mutex::new(State::default())),
            next: Mutex::new(PARENTS_TOKEN),
            started: std::sync::Once::new(),
            on_oom: Arc::new(on_oom),
        })
    }

    pub fn watch(&self, container_id: &str, cgroup: Cgroup) -> Result<()> {
        let token = {
            let mut n = self.next.lock().map_err(|_| poisoned())?;
            *n += 1;
            *n
        };
        let mut state = self.state.lock().map_err(|_| poisoned())?;
        let (dir, source) = match cgroup {
            Cgroup::V1Memory(dir) => {
                let eventfd = OomEventFd::register(&dir)?;
                self.epoll
                    .add(eventfd.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, token))
                    .map_err(sys("epoll_ctl add"))?;
                (dir, Source::V1 { eventfd })
            }
            Cgroup::V2(dir) => {
                let wd = self
                    .inotify
                    .add_watch(&dir.join("memory.events"), AddWatchFlags::IN_MODIFY)
                    .map_err(sys("inotify_add_watch memory.events"))?;
                let parent = dir.parent().map(Path::to_path_buf).filter(|p| self.watch_parent(&mut state, p));
                (dir, Source::V2 { wd, parent })
            }
        };
        // The counter is read after the watch is in place, so a kill between the two is
        // either in the baseline or produces a later event; none is lost.
        let mut watch = Watch {
            container_id: container_id.to_string(),
            oom_kills: 0,
            parent_oom_kills: None,
            gone: false,
            flushed: false,
            unawaited: 0,
            dir,
            source,
        };
        watch.read();
        state.watches.insert(token, watch);
        drop(state);
        self.start_thread()
    }

    /// Watches `parent`'s `memory.events` for the containers under it (once per parent);
    /// false when it has none (the memory controller is off there).
    fn watch_parent(&self, state: &mut State, parent: &Path) -> bool {
        if let Some(p) = state.parents.get_mut(parent) {
            p.users += 1;
            return true;
        }
        match self.parents.add_watch(&parent.join("memory.events"), AddWatchFlags::IN_MODIFY) {
            Ok(wd) => {
                state.parents.insert(parent.to_path_buf(), ParentWatch { wd, users: 1 });
                true
            }
            Err(_) => false,
        }
    }

    /// Reports an OOM kill of `container_id` that the watcher thread has not reported yet,
    /// and returns the number of the container's last TaskOOM that nobody has waited for
    /// (0: none). Called when its init exits (`killed`: by SIGKILL), before the exit is
    /// visible: containerd 1.x's CRI plugin takes the exit from its Wait call and the OOM from
    /// the event stream, and reports OOMKilled only when the OOM was handled first
    /// (containerd#8180, #12714), so the caller holds the exit until that event is forwarded.
    /// The kernel counts `oom_kill` before it sends the victim SIGKILL, so the count has moved
    /// by the time the exit is reaped; a kill the thread took off the counter first was
    /// published, and its number kept, before the thread let go of the lock this takes. A
    /// cgroup already removed (by systemd) is answered for by its parent's count.
    pub fn flush(&self, container_id: &str, killed: bool) -> u64 {
        let mut last = 0;
        if let Ok(mut state) = self.state.lock() {
            for watch in state.watches.values_mut().filter(|w| w.container_id == container_id) {
                let kill = match watch.read() {
                    Reading::Grew => true,
                    Reading::Same => false,
                    Reading::Gone => killed && watch.parent_counted_a_kill(),
                };
                if kill {
                    watch.flushed = true;
                    watch.unawaited = (self.on_oom)(container_id);
                }
                last = last.max(std::mem::take(&mut watch.unawaited));
            }
        }
        last
    }

    /// The parent's count last read together with `container_id`'s.
    #[cfg(test)]
    fn parent_count(&self, container_id: &str) -> Option<u64> {
        let state = self.state.lock().ok()?;
        state.watches.values().find(|w| w.container_id == container_id).and_then(|w| w.parent_oom_kills)
    }

    pub fn unwatch(&self, container_id: &str) {
        if let Ok(mut state) = self.state.lock() {
            let State { watches, parents } = &mut *state;
            watches.retain(|_, watch| {
                if watch.container_id == container_id {
                    forget(&self.epoll, &self.inotify, &self.parents, parents, watch);
                    false
                } else {
                    true
                }
            });
        }
    }

    fn start_thread(&self) -> Result<()> {
        let mut result = Ok(());
        self.started.call_once(|| {
            let epoll = Arc::clone(&self.epoll);
            let inotify = Arc::clone(&self.inotify);
            let parents = Arc::clone(&self.parents);
            let state = Arc::clone(&self.state);
            let on_oom = Arc::clone(&self.on_oom);
            result = std::thread::Builder::new()
                .name("oom".into())
                .spawn(move || run(&epoll, &inotify, &parents, &state, &on_oom))
                .map(drop)
                .map_err(io("spawn oom thread"));
        });
        result
    }
}

/// Drops a watch's registrations (its parent's when it was the parent's last user).
fn forget(
    epoll: &Epoll,
    inotify: &Inotify,
    parents: &Inotify,
    watched: &mut HashMap<PathBuf, ParentWatch>,
    watch: &Watch,
) {
    match &watch.source {
        Source::V1 { eventfd } => {
            let _ = epoll.delete(eventfd.as_fd());
        }
        Source::V2 { wd, parent } => {
            // A gone cgroup's watch descriptor died with it, and its number may be reused.
            if !watch.gone {
                let _ = inotify.rm_watch(*wd);
            }
            if let Some(p) = parent {
                if let Some(pw) = watched.get_mut(p) {
                    pw.users -= 1;
                    if pw.users == 0 {
                        let _ = parents.rm_watch(pw.wd);
                        watched.remove(p);
                    }
                }
            }
        }
    }
}

fn poisoned() -> crate::error::Error {
    crate::error::Error::FailedPrecondition("oom watcher lock poisoned".into())
}

fn run(epoll: &Epoll, inotify: &Inotify, parents: &Inotify, state: &Mutex<State>, on_oom: &OnOom) {
    let mut events = [EpollEvent::empty(); 16];
    loop {
        let n = match epoll.wait(&mut events, EpollTimeout::NONE) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                log::error!("oom epoll: {e}");
                return;
            }
        };
        if let Ok(mut state) = state.lock() {
            let mut fired = Vec::new();
            for ev in &events[..n] {
                match ev.data() {
                    INOTIFY_TOKEN => v2_events(inotify, &mut state, &mut fired),
                    PARENTS_TOKEN => parent_events(parents, &mut state, &mut fired),
                    token => v1_event(epoll, &mut state, token, &mut fired),
                }
            }
            // Published, and the number kept, before the lock is let go: `flush` takes it
            // before the victim's exit is let out, and so always learns of this TaskOOM
            // (publishing only queues the event).
            for (token, id) in fired {
                let number = on_oom(&id);
                if let Some(watch) = state.watches.get_mut(&token) {
                    watch.unawaited = number;
                }
            }
        }
    }
}

fn v1_event(epoll: &Epoll, state: &mut State, token: u64, fired: &mut Vec<(u64, String)>) {
    let Some(watch) = state.watches.get_mut(&token) else {
        return;
    };
    if let Source::V1 { eventfd } = &watch.source {
        eventfd.take();
    }
    // The eventfd also fires when the cgroup is removed (as containerd's v1 watcher does, a
    // vanished cgroup is a removal, anything else an OOM). The kernel can notify before it
    // bumps oom_kill, so the counter is not a filter.
    match v1_oom_kills(&watch.dir) {
        Some(count) if watch.flushed && count == watch.oom_kills => watch.flushed = false,
        Some(count) => {
            watch.oom_kills = count;
            watch.flushed = false;
            fired.push((token, watch.container_id.clone()));
        }
        None => {
            if let Some(Source::V1 { eventfd }) = state.watches.remove(&token).map(|w| w.source) {
                let _ = epoll.delete(eventfd.as_fd());
            }
        }
    }
}

/// Drains an inotify fd: the watch descriptor and mask of each event.
fn drain(inotify: &Inotify) -> Vec<(WatchDescriptor, AddWatchFlags)> {
    let mut all = Vec::new();
    loop {
        match inotify.read_events() {
            Ok(events) => all.extend(events.into_iter().map(|ev| (ev.wd, ev.mask))),
            Err(nix::errno::Errno::EINTR) => continue,
            // EAGAIN: drained.
            Err(_) => return all,
        }
    }
}

fn v2_events(inotify: &Inotify, state: &mut State, fired: &mut Vec<(u64, String)>) {
    for (wd, mask) in drain(inotify) {
        let Some((&token, watch)) = state
            .watches
            .iter_mut()
            .find(|(_, watch)| !watch.gone && matches!(watch.source, Source::V2 { wd: w, .. } if w == wd))
        else {
            continue;
        };
        if mask.contains(AddWatchFlags::IN_IGNORED) {
            // The cgroup was removed; the kernel has dropped the watch already. The watch
            // stays for `flush`, which asks the parent.
            watch.gone = true;
        } else if watch.read() == Reading::Grew {
            fired.push((token, watch.container_id.clone()));
        }
    }
}

/// A parent's `memory.events` changed (a kill, or a limit hit, anywhere below it): each of its
/// containers' counts is read again with the parent's, so that a kill in another cgroup below
/// the parent is not taken later for the kill of a container whose cgroup is gone by then.
fn parent_events(parents: &Inotify, state: &mut State, fired: &mut Vec<(u64, String)>) {
    for (wd, mask) in drain(parents) {
        let Some(parent) = state.parents.iter().find(|(_, p)| p.wd == wd).map(|(path, _)| path.clone()) else {
            continue;
        };
        if mask.contains(AddWatchFlags::IN_IGNORED) {
            // Only after every cgroup below it was removed, and their watches with them.
            state.parents.remove(&parent);
            continue;
        }
        for (&token, watch) in state.watches.iter_mut() {
            let below = matches!(&watch.source, Source::V2 { parent: Some(p), .. } if *p == parent);
            if below && watch.read() == Reading::Grew {
                fired.push((token, watch.container_id.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// `memory.events` of a container the kernel OOM-killed in, as read in the cgroup v2 guest
    /// (Debian 6.1): `max` also counts, only `oom_kill` is a kill.
    const MEMORY_EVENTS: &str = "low 0\nhigh 0\nmax 37\noom 1\noom_kill 1\noom_group_kill 0\n";

    #[test]
    fn oom_kill_counter_is_read_from_memory_events() {
        let dir = std::env::temp_dir().join(format!("berth-oom-count-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("memory.events"), MEMORY_EVENTS).unwrap();
        fs::write(dir.join("memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\n").unwrap();
        assert_eq!(v2_oom_kills(&dir), Some(1));
        assert_eq!(v1_oom_kills(&dir), None);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn v2_oom_kill_fires_once_per_increase_from_one_thread() {
        // A directory stands in for the cgroup: inotify reports writes to memory.events the
        // same way on a tmpfs as on cgroupfs.
        let dir = std::env::temp_dir().join(format!("berth-oom-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let events = dir.join("memory.events");
        fs::write(&events, "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n").unwrap();
        let (watcher, rx) = recording();
        watcher.watch("c1", Cgroup::V2(dir.clone())).unwrap();
        let timeout = std::time::Duration::from_secs(10);
        // A memory.max hit without a kill is no TaskOOM.
        fs::write(&events, "low 0\nhigh 0\nmax 5\noom 0\noom_kill 0\n").unwrap();
        fs::write(&events, "low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\n").unwrap();
        assert_eq!(rx.recv_timeout(timeout).unwrap(), "c1");
        fs::write(&events, "low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\n").unwrap();
        assert_eq!(rx.recv_timeout(timeout).unwrap(), "c1");
        assert!(rx.recv_timeout(std::time::Duration::from_millis(300)).is_err());
        watcher.unwatch("c1");
        fs::write(&events, "low 0\nhigh 0\nmax 12\noom 3\noom_kill 3\n").unwrap();
        assert!(rx.recv_timeout(std::time::Duration::from_millis(300)).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_kill_the_thread_took_is_published_and_handed_to_flush_before_the_exit_goes_out() {
        // The watcher thread reads the count and then stalls in publishing (as a thread of a
        // loaded guest can); the reaper's flush must not return, and its TaskExit go out,
        // before that TaskOOM is published.
        let dir = std::env::temp_dir().join(format!("berth-oom-order-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let events = dir.join("memory.events");
        fs::write(&events, "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n").unwrap();
        let published = Arc::new(Mutex::new(Vec::<&str>::new()));
        let (entered_tx, entered) = std::sync::mpsc::channel();
        let entered_tx = Mutex::new(entered_tx);
        let log = Arc::clone(&published);
        let watcher = OomWatcher::new(Box::new(move |_id: &str| {
            entered_tx.lock().unwrap().send(()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(300));
            log.lock().unwrap().push("TaskOOM");
            7
        }))
        .unwrap();
        watcher.watch("c1", Cgroup::V2(dir.clone())).unwrap();
        fs::write(&events, "low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\n").unwrap();
        entered.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        assert_eq!(watcher.flush("c1", true), 7, "flush hands out the number of the thread's TaskOOM");
        published.lock().unwrap().push("TaskExit");
        assert_eq!(*published.lock().unwrap(), ["TaskOOM", "TaskExit"]);
        assert_eq!(watcher.flush("c1", true), 0, "and only once");
        watcher.unwatch("c1");
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A parent cgroup with one container's cgroup below it, on a tmpfs standing in for the
    /// cgroup v2 tree (inotify reports writes and removals there as on cgroupfs).
    fn tree(name: &str) -> (PathBuf, PathBuf) {
        let parent = std::env::temp_dir().join(format!("berth-oom-{name}-{}", std::process::id()));
        let child = parent.join("c1");
        fs::create_dir_all(&child).unwrap();
        fs::write(parent.join("memory.events"), "low 0\nhigh 0\nmax 3\noom 0\noom_kill 0\n").unwrap();
        fs::write(child.join("memory.events"), "low 0\nhigh 0\nmax 3\noom 0\noom_kill 0\n").unwrap();
        (parent, child)
    }

    /// Container c1's cgroup in a fresh tree, watched by a watcher that sends each TaskOOM's
    /// container id.
    fn watching_c1(name: &str) -> (PathBuf, PathBuf, OomWatcher, std::sync::mpsc::Receiver<String>) {
        let (parent, child) = tree(name);
        let (watcher, rx) = recording();
        watcher.watch("c1", Cgroup::V2(child.clone())).unwrap();
        (parent, child, watcher, rx)
    }

    fn unwatch_c1(watcher: &OomWatcher, parent: &Path) {
        watcher.unwatch("c1");
        assert!(watcher.state.lock().unwrap().parents.is_empty(), "the parent's watch went with its last container");
        fs::remove_dir_all(parent).unwrap();
    }

    /// The container's cgroup is removed, and its parent has counted one kill.
    fn removed_with_a_kill_in_the_parent(parent: &Path, child: &Path) {
        fs::remove_file(child.join("memory.events")).unwrap();
        fs::remove_dir(child).unwrap();
        fs::write(parent.join("memory.events"), "low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\n").unwrap();
    }

    /// A watcher that sends each TaskOOM's container id.
    fn recording() -> (OomWatcher, std::sync::mpsc::Receiver<String>) {
        let (tx, rx) = std::sync::mpsc::channel();
        let tx = Mutex::new(tx);
        let watcher = OomWatcher::new(Box::new(move |id: &str| {
            tx.lock().unwrap().send(id.to_string()).unwrap();
            1
        }))
        .unwrap();
        (watcher, rx)
    }

    #[test]
    fn a_kill_in_a_cgroup_systemd_removed_before_the_shim_read_it_is_counted_from_the_parent() {
        let (parent, child, watcher, rx) = watching_c1("gone");
        // systemd removes the emptied scope before the shim reads the victim's count; the
        // parent's count (hierarchical on cgroup v2) has the kill.
        removed_with_a_kill_in_the_parent(&parent, &child);
        assert_eq!(watcher.flush("c1", true), 1, "the init's SIGKILL was the OOM killer's");
        assert_eq!(rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap(), "c1");
        assert_eq!(watcher.flush("c1", true), 0, "and it is reported once");
        assert!(rx.recv_timeout(std::time::Duration::from_millis(300)).is_err());
        unwatch_c1(&watcher, &parent);
    }

    #[test]
    fn a_removed_cgroups_exit_without_sigkill_is_no_oom_kill() {
        let (parent, child, watcher, rx) = watching_c1("nokill");
        removed_with_a_kill_in_the_parent(&parent, &child);
        assert_eq!(watcher.flush("c1", false), 0);
        assert!(rx.recv_timeout(std::time::Duration::from_millis(300)).is_err());
        unwatch_c1(&watcher, &parent);
    }

    #[test]
    fn a_kill_elsewhere_under_the_parent_is_not_taken_for_a_removed_cgroups() {
        let (parent, child, watcher, rx) = watching_c1("sibling");
        // Another cgroup below the parent (another container, another shim's) is OOM-killed
        // while c1 is there: the parent's change makes the thread read c1's count again.
        fs::write(parent.join("memory.events"), "low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\n").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while watcher.parent_count("c1") != Some(1) {
            assert!(std::time::Instant::now() < deadline, "the parent's change was not read");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // c1's init is then killed (not by the OOM killer) and its cgroup removed at once.
        fs::remove_file(child.join("memory.events")).unwrap();
        fs::remove_dir(&child).unwrap();
        assert_eq!(watcher.flush("c1", true), 0, "the parent's kill was another cgroup's");
        assert!(rx.recv_timeout(std::time::Duration::from_millis(300)).is_err());
        unwatch_c1(&watcher, &parent);
    }
}
