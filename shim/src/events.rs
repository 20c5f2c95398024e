//! Publishing task events to containerd over ttrpc `Events.Forward`. One worker thread for the
//! whole shim keeps the events in order and retries while containerd is away (restart), so an
//! exit that happens while containerd is down is still delivered once it is back.

use std::{
    sync::{
        mpsc::{channel, Receiver, Sender},
        Arc, Condvar, Mutex,
    },
    time::{Duration, Instant},
};

use containerd_shim_protos::{
    protobuf::{well_known_types::any::Any, Message},
    shim::{event::Envelope, events::ForwardRequest},
    shim_sync::{Client, EventsClient},
    ttrpc::context,
};

use crate::error::{io, Result};

/// A message with its protobuf type URL, spelled out rather than looked up: protobuf's
/// reflection builds descriptor pools on first use, a few hundred KiB of heap in every shim.
pub trait Named: Message {
    const TYPE_URL: &'static str;
}

macro_rules! named {
    ($($t:ty => $url:literal),* $(,)?) => {
        $(impl Named for $t { const TYPE_URL: &'static str = $url; })*
    };
}

use containerd_shim_protos::{
    cgroups::metrics::Metrics, cgroups_v2::metrics::Metrics as MetricsV2, events::task::*, shim::oci::ProcessDetails,
};
named! {
    TaskCreate => "containerd.events.TaskCreate",
    TaskStart => "containerd.events.TaskStart",
    TaskDelete => "containerd.events.TaskDelete",
    TaskExit => "containerd.events.TaskExit",
    TaskOOM => "containerd.events.TaskOOM",
    TaskExecAdded => "containerd.events.TaskExecAdded",
    TaskExecStarted => "containerd.events.TaskExecStarted",
    TaskPaused => "containerd.events.TaskPaused",
    TaskResumed => "containerd.events.TaskResumed",
    TaskCheckpointed => "containerd.events.TaskCheckpointed",
    Metrics => "io.containerd.cgroups.v1.Metrics",
    MetricsV2 => "io.containerd.cgroups.v2.Metrics",
    ProcessDetails => "containerd.runc.v1.ProcessDetails",
}

pub fn to_any<M: Named>(m: &M) -> Result<Any> {
    Ok(Any { type_url: M::TYPE_URL.to_string(), value: m.write_to_bytes()?, ..Default::default() })
}

/// How often one event is attempted before it is dropped; with the linear back-off below this
/// covers a containerd restart of about a minute.
const ATTEMPTS: u64 = 10;
/// While the shim is exiting, an event gets few attempts: containerd asked for the shutdown,
/// so it is up, and the shim must not hang on its way out.
const ATTEMPTS_CLOSING: u64 = 2;
static CLOSING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

struct Queued {
    topic: &'static str,
    event: Any,
    timestamp: protobuf::well_known_types::timestamp::Timestamp,
}

/// The queue's end: the sender, and how many events went into it (an event's number is its
/// place in the queue, counted from 1).
struct Queue {
    tx: Option<Sender<Queued>>,
    queued: u64,
}

/// How many events the worker is done with (forwarded, or given up on), in queue order.
#[derive(Default)]
struct Done {
    count: Mutex<u64>,
    changed: Condvar,
}

pub struct Publisher {
    queue: Mutex<Queue>,
    done: Arc<Done>,
    worker: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Publisher {
    pub fn start(ttrpc_address: String, namespace: String) -> Result<Publisher> {
        let (tx, rx) = channel();
        let done = Arc::new(Done::default());
        let worker_done = Arc::clone(&done);
        let handle = std::thread::Builder::new()
            .name("events".into())
            .spawn(move || worker(rx, &ttrpc_address, &namespace, &worker_done))
            .map_err(io("spawn events thread"))?;
        Ok(Publisher { queue: Mutex::new(Queue { tx: Some(tx), queued: 0 }), done, worker: Mutex::new(Some(handle)) })
    }

    /// Sends what is queued and stops the worker: the last events of a shim (exit, delete)
    /// are queued just before containerd asks it to shut down, and must not die with it.
    pub fn flush_and_stop(&self) {
        CLOSING.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Ok(mut q) = self.queue.lock() {
            q.tx.take();
        }
        let handle = self.worker.lock().ok().and_then(|mut w| w.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    /// Queues `event` and returns its number, for [`Publisher::wait_done`]; 0 when it could
    /// not be queued.
    pub fn publish<M: Named>(&self, topic: &'static str, event: M) -> u64 {
        let event = match to_any(&event) {
            Ok(a) => a,
            Err(e) => {
                log::error!("encode event {topic}: {e}");
                return 0;
            }
        };
        let queued = Queued { topic, event, timestamp: crate::tracked_process::now() };
        let Ok(mut q) = self.queue.lock() else {
            return 0;
        };
        if q.tx.as_ref().map(|t| t.send(queued)).is_none_or(|r| r.is_err()) {
            log::error!("events worker is gone; dropped {topic}");
            return 0;
        }
        q.queued += 1;
        q.queued
    }

    /// Waits, at most `timeout`, until the worker is done with event `number` (containerd
    /// took it, or it was given up on). Whether it was.
    pub fn wait_done(&self, number: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let Ok(mut count) = self.done.count.lock() else {
            return false;
        };
        while *count < number {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            count = match self.done.changed.wait_timeout(count, left) {
                Ok((c, _)) => c,
                Err(_) => return false,
            };
        }
        true
    }
}

fn connect(address: &str) -> Option<EventsClient> {
    let fd = containerd_shim::util::connect(address).ok()?;
    Client::new(fd).ok().map(EventsClient::new)
}

fn worker(rx: Receiver<Queued>, address: &str, namespace: &str, done: &Done) {
    let mut client: Option<EventsClient> = None;
    for q in rx {
        let mut envelope = Envelope::new();
        envelope.set_topic(q.topic.to_string());
        envelope.set_namespace(namespace.to_string());
        envelope.timestamp = protobuf::MessageField::some(q.timestamp);
        envelope.event = protobuf::MessageField::some(q.event);
        let mut req = ForwardRequest::new();
        req.envelope = protobuf::MessageField::some(envelope);
        for attempt in 1..=ATTEMPTS {
            let closing = CLOSING.load(std::sync::atomic::Ordering::SeqCst);
            if closing && attempt > ATTEMPTS_CLOSING {
                log::error!("dropped event {} while exiting", q.topic);
                break;
            }
            if client.is_none() {
                client = connect(address);
            }
            let sent = client.as_ref().map(|c| c.forward(context::with_timeout(5_000_000_000), &req));
            match sent {
                Some(Ok(_)) => break,
                other => {
                    if let Some(Err(e)) = other {
                        log::warn!("publish {} attempt {attempt}: {e}", q.topic);
                    }
                    client = None;
                    if attempt == ATTEMPTS {
                        log::error!("dropped event {} after {ATTEMPTS} attempts", q.topic);
                    } else {
                        std::thread::sleep(Duration::from_secs(attempt));
                    }
                }
            }
        }
        if let Ok(mut count) = done.count.lock() {
            *count += 1;
            done.changed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim_protos::{
        api::Empty,
        shim_sync::{create_events, Events},
        ttrpc::{self, TtrpcContext},
    };
    use std::os::unix::net::UnixListener;

    /// containerd's Events service, answering each Forward only once the gate is open.
    struct Containerd {
        open: Mutex<bool>,
        opened: Condvar,
        topics: Mutex<Vec<String>>,
    }

    impl Events for Containerd {
        fn forward(&self, _ctx: &TtrpcContext, req: ForwardRequest) -> ttrpc::Result<Empty> {
            let mut open = self.open.lock().unwrap();
            while !*open {
                open = self.opened.wait(open).unwrap();
            }
            self.topics.lock().unwrap().push(req.envelope.topic.clone());
            Ok(Empty::new())
        }
    }

    #[test]
    fn wait_done_returns_once_containerd_took_the_event_and_not_before() {
        let dir = std::env::temp_dir().join(format!("berth-events-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("containerd.sock.ttrpc");
        let containerd =
            Arc::new(Containerd { open: Mutex::new(false), opened: Condvar::new(), topics: Mutex::new(Vec::new()) });
        let service: Arc<dyn Events + Send + Sync> = containerd.clone();
        let server = crate::server::Server::new(create_events(service), Box::new(|_, _| true));
        server.start(UnixListener::bind(&socket).unwrap()).unwrap();
        let publisher = Publisher::start(socket.to_str().unwrap().to_string(), "default".into()).unwrap();

        let create = publisher.publish("/tasks/create", TaskCreate::default());
        let oom = publisher.publish("/tasks/oom", TaskOOM::default());
        assert_eq!((create, oom), (1, 2), "events are numbered in queue order");
        assert!(!publisher.wait_done(oom, Duration::from_millis(200)), "containerd has not answered yet");
        *containerd.open.lock().unwrap() = true;
        containerd.opened.notify_all();
        assert!(publisher.wait_done(oom, Duration::from_secs(10)));
        assert_eq!(*containerd.topics.lock().unwrap(), ["/tasks/create", "/tasks/oom"]);
        assert!(publisher.wait_done(0, Duration::ZERO), "0 (nothing queued) is never waited for");
        publisher.flush_and_stop();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
