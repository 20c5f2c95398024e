//! TaskOOM on cgroup v1: an eventfd registered on each container's `memory.oom_control`, all
//! watched by one epoll thread for the whole shim (started with the first container).

use std::{
    collections::HashMap,
    fs::{self, File},
    io::Read,
    os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd},
    path::PathBuf,
    sync::{Arc, Mutex},
};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

use crate::error::{io, sys, Result};

struct Watch {
    container_id: String,
    memory_dir: PathBuf,
    eventfd: File,
    oom_kills: u64,
}

/// Called with the container id on each OOM kill.
pub type OnOom = Box<dyn Fn(&str) + Send + Sync>;

pub struct OomWatcher {
    epoll: Arc<Epoll>,
    watches: Arc<Mutex<HashMap<u64, Watch>>>,
    next: Mutex<u64>,
    started: std::sync::Once,
    on_oom: Arc<OnOom>,
}

fn oom_kill_count(dir: &std::path::Path) -> Option<u64> {
    let text = fs::read_to_string(dir.join("memory.oom_control")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
}

impl OomWatcher {
    pub fn new(on_oom: OnOom) -> Result<Self> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(sys("epoll_create"))?;
        Ok(OomWatcher {
            epoll: Arc::new(epoll),
            watches: Arc::new(Mutex::new(HashMap::new())),
            next: Mutex::new(0),
            started: std::sync::Once::new(),
            on_oom: Arc::new(on_oom),
        })
    }

    pub fn watch(&self, container_id: &str, memory_dir: PathBuf) -> Result<()> {
        // SAFETY: eventfd has no memory arguments; the result is checked before use.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if raw < 0 {
            return Err(io("eventfd")(std::io::Error::last_os_error()));
        }
        // SAFETY: raw is a fresh fd owned by nobody else.
        let eventfd = File::from(unsafe { OwnedFd::from_raw_fd(raw) });
        let control = File::open(memory_dir.join("memory.oom_control"))
            .map_err(io("open memory.oom_control"))?;
        fs::write(
            memory_dir.join("cgroup.event_control"),
            format!("{} {}", eventfd.as_raw_fd(), control.as_raw_fd()),
        )
        .map_err(io("write cgroup.event_control"))?;
        let token = {
            let mut n = self.next.lock().map_err(|_| poisoned())?;
            *n += 1;
            *n
        };
        self.epoll
            .add(eventfd.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, token))
            .map_err(sys("epoll_ctl add"))?;
        let oom_kills = oom_kill_count(&memory_dir).unwrap_or(0);
        self.watches.lock().map_err(|_| poisoned())?.insert(
            token,
            Watch {
                container_id: container_id.to_string(),
                memory_dir,
                eventfd,
                oom_kills,
            },
        );
        self.start_thread()
    }

    pub fn unwatch(&self, container_id: &str) {
        if let Ok(mut w) = self.watches.lock() {
            w.retain(|_, watch| {
                if watch.container_id == container_id {
                    let _ = self.epoll.delete(watch.eventfd.as_fd());
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
            let watches = Arc::clone(&self.watches);
            let on_oom = Arc::clone(&self.on_oom);
            result = std::thread::Builder::new()
                .name("oom".into())
                .spawn(move || run(&epoll, &watches, &on_oom))
                .map(drop)
                .map_err(io("spawn oom thread"));
        });
        result
    }
}

fn poisoned() -> crate::error::Error {
    crate::error::Error::FailedPrecondition("oom watcher lock poisoned".into())
}

fn run(epoll: &Epoll, watches: &Mutex<HashMap<u64, Watch>>, on_oom: &OnOom) {
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
        let mut fired = Vec::new();
        if let Ok(mut w) = watches.lock() {
            for ev in &events[..n] {
                let token = ev.data();
                let Some(watch) = w.get_mut(&token) else {
                    continue;
                };
                let mut buf = [0u8; 8];
                let _ = (&watch.eventfd).read(&mut buf);
                // The eventfd also fires when the cgroup is removed (as containerd's v1
                // watcher does, a vanished cgroup is a removal, anything else an OOM). The
                // kernel can notify before it bumps oom_kill, so the counter is not a filter.
                match oom_kill_count(&watch.memory_dir) {
                    Some(count) => {
                        watch.oom_kills = count;
                        fired.push(watch.container_id.clone());
                    }
                    None => {
                        if let Some(gone) = w.remove(&token) {
                            let _ = epoll.delete(gone.eventfd.as_fd());
                        }
                    }
                }
            }
        }
        for id in fired {
            on_oom(&id);
        }
    }
}
