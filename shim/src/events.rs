//! Publishing task events to containerd over ttrpc `Events.Forward`. One worker thread for the
//! whole shim keeps the events in order and retries while containerd is away (restart), so an
//! exit that happens while containerd is down is still delivered once it is back.

use std::{
    sync::{
        mpsc::{channel, Receiver, Sender},
        Mutex,
    },
    time::Duration,
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

pub struct Publisher {
    tx: Mutex<Option<Sender<Queued>>>,
    worker: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Publisher {
    pub fn start(ttrpc_address: String, namespace: String) -> Result<Publisher> {
        let (tx, rx) = channel();
        let handle = std::thread::Builder::new()
            .name("events".into())
            .spawn(move || worker(rx, &ttrpc_address, &namespace))
            .map_err(io("spawn events thread"))?;
        Ok(Publisher { tx: Mutex::new(Some(tx)), worker: Mutex::new(Some(handle)) })
    }

    /// Sends what is queued and stops the worker: the last events of a shim (exit, delete)
    /// are queued just before containerd asks it to shut down, and must not die with it.
    pub fn flush_and_stop(&self) {
        CLOSING.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        let handle = self.worker.lock().ok().and_then(|mut w| w.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    pub fn publish<M: Named>(&self, topic: &'static str, event: M) {
        let event = match to_any(&event) {
            Ok(a) => a,
            Err(e) => {
                log::error!("encode event {topic}: {e}");
                return;
            }
        };
        let queued = Queued { topic, event, timestamp: crate::tracked_process::now() };
        if let Ok(tx) = self.tx.lock() {
            if tx.as_ref().map(|t| t.send(queued)).is_none_or(|r| r.is_err()) {
                log::error!("events worker is gone; dropped {topic}");
            }
        }
    }
}

fn connect(address: &str) -> Option<EventsClient> {
    let fd = containerd_shim::util::connect(address).ok()?;
    Client::new(fd).ok().map(EventsClient::new)
}

fn worker(rx: Receiver<Queued>, address: &str, namespace: &str) {
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
    }
}
