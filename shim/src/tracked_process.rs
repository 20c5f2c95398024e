//! The processes a shim tracks per container: the init process and the exec processes, with
//! the state containerd sees (created → running → stopped) and their exit.

use std::time::{SystemTime, UNIX_EPOCH};

use containerd_shim_protos::{
    api::Status,
    protobuf::{well_known_types::timestamp::Timestamp, MessageField},
};

use crate::{
    error::{Error, Result},
    io::{ProcessIo, StdioPaths},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Created,
    Running,
    Stopped,
}

pub struct Process {
    /// The exec id; empty for the init process.
    pub exec_id: String,
    pub pid: u32,
    pub state: State,
    pub exit_status: u32,
    pub exited_at: Option<Timestamp>,
    /// A start is in flight: an exit seen meanwhile is recorded, but its TaskExit waits until
    /// the start's own event has been published, so containerd sees them in order.
    pub starting: bool,
    pub exit_deferred: bool,
    pub stdio: StdioPaths,
    pub io: ProcessIo,
    /// For an exec: the OCI process JSON until it is started.
    pub spec: Vec<u8>,
}

impl Process {
    pub fn new(exec_id: &str, stdio: StdioPaths) -> Self {
        Process {
            exec_id: exec_id.to_string(),
            pid: 0,
            state: State::Created,
            exit_status: 0,
            exited_at: None,
            starting: false,
            exit_deferred: false,
            stdio,
            io: ProcessIo::default(),
            spec: Vec::new(),
        }
    }

    /// Records an exit; false if the process had already exited (exit is reported once).
    pub fn set_exited(&mut self, status: i32) -> bool {
        if self.state == State::Stopped {
            return false;
        }
        self.state = State::Stopped;
        self.exit_status = u32::try_from(status).unwrap_or(255);
        self.exited_at = Some(now());
        true
    }

    pub fn status(&self, paused: bool) -> Status {
        match self.state {
            State::Created => Status::CREATED,
            State::Running if paused => Status::PAUSED,
            State::Running => Status::RUNNING,
            State::Stopped => Status::STOPPED,
        }
    }

    pub fn exited_at_field(&self) -> MessageField<Timestamp> {
        MessageField::from_option(self.exited_at.clone())
    }
}

pub fn now() -> Timestamp {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    Timestamp {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
        ..Default::default()
    }
}

/// Ids become file names (pid files, process JSON) and runtime arguments, so they are held to
/// containerd's identifier rules: `[A-Za-z0-9_.-]`, starting alphanumeric, at most 76 bytes
/// for exec ids; container ids are checked by the runtime too, but not allowed to escape a path.
pub fn validate_id(kind: &str, id: &str, max: usize) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= max
        && id.as_bytes()[0].is_ascii_alphanumeric()
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!("invalid {kind} id {id:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_could_escape_a_path_are_rejected() {
        for bad in ["", ".", "..", "../x", "a/b", "a b", "-x", "é"] {
            assert!(validate_id("exec", bad, 76).is_err(), "{bad:?}");
        }
        assert!(validate_id("exec", "exec-1_a.b", 76).is_ok());
        assert!(validate_id("exec", &"a".repeat(77), 76).is_err());
    }

    #[test]
    fn exit_is_recorded_once() {
        let mut p = Process::new("", StdioPaths::default());
        assert!(p.set_exited(137));
        assert!(!p.set_exited(0));
        assert_eq!(p.exit_status, 137);
        assert_eq!(p.status(false), Status::STOPPED);
    }
}
