//! `events`: the container's resource usage and OOM kills as runc's event JSON, one
//! object a line: `{"type":"stats","id":..,"data":{..}}` and `{"type":"oom","id":..}`.

use std::io::Write;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cgroups::Stats;
use crate::error::{Error, Result};
use crate::state::{Record, Status, Store};

#[derive(Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Stats>,
}

fn not_running(id: &str) -> Error {
    Error::Usage(format!("container with id {id} is not running"))
}

fn live_record(store: &Store, id: &str) -> Result<Record> {
    let rec = store.load(id)?;
    if matches!(store.status(&rec), Status::Stopped | Status::Creating) {
        return Err(not_running(id));
    }
    Ok(rec)
}

fn stats_line(rec: &Record) -> Result<String> {
    let stats = rec.cgroup_manager().stats()?;
    let ev = Event { kind: "stats", id: &rec.id, data: Some(stats) };
    serde_json::to_string(&ev).map_err(|e| Error::io("encoding stats", e.into()))
}

/// `events --stats`: one stats event.
pub fn stats(store: &Store, id: &str) -> Result<String> {
    stats_line(&live_record(store, id)?)
}

/// `events`: a stats event every `interval` and an oom event for every OOM kill in the
/// cgroup, until the container's init exits (or `out` is closed).
pub fn stream(store: &Store, id: &str, interval: Duration, out: &mut dyn Write) -> Result<()> {
    let rec = live_record(store, id)?;
    let cg = rec.cgroup_manager();
    let pidfd = crate::sys::pidfd_open(rec.pid).map_err(|_| not_running(id))?;
    if !crate::sys::process_alive(rec.pid, rec.init_start_time) {
        return Err(not_running(id));
    }
    // Without a memory controller there is nothing to watch; stats still flow.
    let mut oom = match cg.oom_watch() {
        Ok(w) => Some(w),
        Err(e) => {
            crate::log::warn(&format!("events: OOM notifications unavailable: {e}"));
            None
        }
    };
    let interval = interval.max(Duration::from_millis(1));
    let mut next = Instant::now() + interval;
    let emit = |out: &mut dyn Write, line: &str| -> bool { writeln!(out, "{line}").and_then(|()| out.flush()).is_ok() };
    loop {
        let wait = next.saturating_duration_since(Instant::now());
        let ms = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
        let fds = match crate::sys::poll_readable(&[Some(pidfd.as_fd()), oom.as_ref().map(|w| w.fd())], ms) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("events: poll", e)),
        };
        if fds[1] {
            let kills = oom.as_mut().map(|w| w.take()).unwrap_or(0);
            for _ in 0..kills {
                let line = serde_json::to_string(&Event { kind: "oom", id, data: None })
                    .map_err(|e| Error::io("encoding event", e.into()))?;
                if !emit(out, &line) {
                    return Ok(());
                }
            }
        }
        if fds[0] || crate::sys::pidfd_wait_exit(pidfd.as_fd(), 0).unwrap_or(true) {
            return Ok(());
        }
        if Instant::now() >= next {
            next += interval;
            match stats_line(&rec) {
                Ok(line) => {
                    if !emit(out, &line) {
                        return Ok(());
                    }
                }
                // Like runc: a failed read is reported and the stream goes on.
                Err(e) => crate::log::error(&e.to_string()),
            }
        }
    }
}

/// A Go duration as runc's `--interval` takes it: "5s", "500ms", "1m30s", "1.5s".
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let bad = || format!("invalid duration {s:?}");
    let mut rest = s.trim();
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        let num: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += num * scale;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5x").is_err());
    }

    #[test]
    fn oom_event_has_no_data() {
        let j = serde_json::to_string(&Event { kind: "oom", id: "c", data: None }).expect("encode");
        assert_eq!(j, r#"{"type":"oom","id":"c"}"#);
    }
}
