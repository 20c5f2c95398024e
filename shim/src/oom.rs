//! TaskOOM for every container of the shim, from one epoll thread (started with the first
//! container, never one per container), on the `cgroupfs` crate's OOM primitives:
//! - cgroup v1: an eventfd registered on each container's `memory.oom_control`;
//! - cgroup v2: one inotify instance watching each container's `memory.events`; a TaskOOM is
//!   published when its `oom_kill` counter grows (the file is modified for every counter, and
//!   `max`/`high` events are no OOM kill).

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

/// The epoll token of the shared inotify fd; eventfd watches count from 1.
const INOTIFY_TOKEN: u64 = 0;

enum Source {
    V1 { eventfd: OomEventFd },
    V2 { wd: WatchDescriptor },
}

impl Source {
    /// The cgroup's `oom_kill` count; `None` once the cgroup is gone.
    fn oom_kills(&self, dir: &Path) -> Option<u64> {
        match self {
            Source::V1 { .. } => v1_oom_kills(dir),
            Source::V2 { .. } => v2_oom_kills(dir),
        }
    }
}

struct Watch {
    container_id: String,
    dir: PathBuf,
    source: Source,
    oom_kills: u64,
    /// `flush` reported the kill at `oom_kills` already; the v1 eventfd for it is not news.
    flushed: bool,
    /// The number of the last TaskOOM published for this cgroup that `flush` has not yet
    /// handed out to wait for (0: none).
    unawaited: u64,
}

/// Called with the container id on each OOM kill; returns the number of the event it
/// queued (see `Publisher::publish`).
pub type OnOom = Box<dyn Fn(&str) -> u64 + Send + Sync>;

pub struct OomWatcher {
    epoll: Arc<Epoll>,
    inotify: Arc<Inotify>,
    watches: Arc<Mutex<HashMap<u64, Watch>>>,
    next: Mutex<u64>,
    started: std::sync::Once,
    on_oom: Arc<OnOom>,
}

impl OomWatcher {
    pub fn new(on_oom: OnOom) -> Result<Self> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(sys("epoll_create"))?;
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).map_err(sys("inotify_init"))?;
        epoll
            .add(inotify.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, INOTIFY_TOKEN))
            .map_err(sys("epoll_ctl add inotify"))?;
        Ok(OomWatcher {
            epoll: Arc::new(epoll),
            inotify: Arc::new(inotify),
            watches: Arc::new(Mutex::new(HashMap::new())),
            next: Mutex::new(INOTIFY_TOKEN),
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
                (dir, Source::V2 { wd })
            }
        };
        // The counter is read after the watch is in place, so a kill between the two is
        // either in the baseline or produces a later event; none is lost.
        let watch = Watch {
            container_id: container_id.to_string(),
            oom_kills: source.oom_kills(&dir).unwrap_or(0),
            flushed: false,
            unawaited: 0,
            dir,
            source,
        };
        self.watches.lock().map_err(|_| poisoned())?.insert(token, watch);
        self.start_thread()
    }

    /// Reports an OOM kill of `container_id` that the watcher thread has not reported yet,
    /// and returns the number of the container's last TaskOOM that nobody has waited for
    /// (0: none). Called when its init exits, before the exit is visible: containerd 1.x's
    /// CRI plugin takes the exit from its Wait call and the OOM from the event stream, and
    /// reports OOMKilled only when the OOM was handled first (containerd#8180, #12714), so
    /// the caller holds the exit until that event is forwarded. The kernel counts `oom_kill`
    /// before it sends the victim SIGKILL, so the count has moved by the time the exit is
    /// reaped; a kill the thread took off the counter first was published, and its number
    /// kept, before the thread let go of the lock this takes.
    pub fn flush(&self, container_id: &str) -> u64 {
        let mut last = 0;
        if let Ok(mut w) = self.watches.lock() {
            for watch in w.values_mut().filter(|w| w.container_id == container_id) {
                if let Some(count) = watch.source.oom_kills(&watch.dir).filter(|&c| c > watch.oom_kills) {
                    watch.oom_kills = count;
                    watch.flushed = true;
                    watch.unawaited = (self.on_oom)(container_id);
                }
                last = last.max(std::mem::take(&mut watch.unawaited));
            }
        }
        last
    }

    pub fn unwatch(&self, container_id: &str) {
        if let Ok(mut w) = self.watches.lock() {
            w.retain(|_, watch| {
                if watch.container_id == container_id {
                    forget(&self.epoll, &self.inotify, watch);
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
            let watches = Arc::clone(&self.watches);
            let on_oom = Arc::clone(&self.on_oom);
            result = std::thread::Builder::new()
                .name("oom".into())
                .spawn(move || run(&epoll, &inotify, &watches, &on_oom))
                .map(drop)
                .map_err(io("spawn oom thread"));
        });
        result
    }
}

fn forget(epoll: &Epoll, inotify: &Inotify, watch: &Watch) {
    match &watch.source {
        Source::V1 { eventfd } => {
            let _ = epoll.delete(eventfd.as_fd());
        }
        // Fails harmlessly when the kernel already dropped the watch with the cgroup.
        Source::V2 { wd } => {
            let _ = inotify.rm_watch(*wd);
        }
    }
}

fn poisoned() -> crate::error::Error {
    crate::error::Error::FailedPrecondition("oom watcher lock poisoned".into())
}

fn run(epoll: &Epoll, inotify: &Inotify, watches: &Mutex<HashMap<u64, Watch>>, on_oom: &OnOom) {
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
        if let Ok(mut w) = watches.lock() {
            let mut fired = Vec::new();
            for ev in &events[..n] {
                if ev.data() == INOTIFY_TOKEN {
                    v2_events(inotify, &mut w, &mut fired);
                } else {
                    v1_event(epoll, inotify, &mut w, ev.data(), &mut fired);
                }
            }
            // Published, and the number kept, before the lock is let go: `flush` takes it
            // before the victim's exit is let out, and so always learns of this TaskOOM
            // (publishing only queues the event).
            for (token, id) in fired {
                let number = on_oom(&id);
                if let Some(watch) = w.get_mut(&token) {
                    watch.unawaited = number;
                }
            }
        }
    }
}

fn v1_event(epoll: &Epoll, inotify: &Inotify, w: &mut HashMap<u64, Watch>, token: u64, fired: &mut Vec<(u64, String)>) {
    let Some(watch) = w.get_mut(&token) else {
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
            if let Some(gone) = w.remove(&token) {
                forget(epoll, inotify, &gone);
            }
        }
    }
}

fn v2_events(inotify: &Inotify, w: &mut HashMap<u64, Watch>, fired: &mut Vec<(u64, String)>) {
    loop {
        let events = match inotify.read_events() {
            Ok(events) => events,
            Err(nix::errno::Errno::EINTR) => continue,
            // EAGAIN: drained.
            Err(_) => return,
        };
        for ev in events {
            let Some((&token, watch)) =
                w.iter_mut().find(|(_, watch)| matches!(watch.source, Source::V2 { wd } if wd == ev.wd))
            else {
                continue;
            };
            if ev.mask.contains(AddWatchFlags::IN_IGNORED) {
                // The cgroup was removed; the kernel has dropped the watch already.
                w.remove(&token);
                continue;
            }
            if let Some(count) = v2_oom_kills(&watch.dir) {
                if count > watch.oom_kills {
                    watch.oom_kills = count;
                    fired.push((token, watch.container_id.clone()));
                }
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
        let (tx, rx) = std::sync::mpsc::channel();
        let tx = Mutex::new(tx);
        let watcher = OomWatcher::new(Box::new(move |id: &str| {
            tx.lock().unwrap().send(id.to_string()).unwrap();
            0
        }))
        .unwrap();
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
        assert_eq!(watcher.flush("c1"), 7, "flush hands out the number of the thread's TaskOOM");
        published.lock().unwrap().push("TaskExit");
        assert_eq!(*published.lock().unwrap(), ["TaskOOM", "TaskExit"]);
        assert_eq!(watcher.flush("c1"), 0, "and only once");
        watcher.unwatch("c1");
        fs::remove_dir_all(&dir).unwrap();
    }
}
