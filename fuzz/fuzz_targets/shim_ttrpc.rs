//! Bytes a client writes to the shim's ttrpc socket -> the shim's frame splitter, the ttrpc
//! `Request` decode, and the decode and checks the Task service applies to each request's
//! payload (ids, runtime options).
#![no_main]

use containerd_shim_berth_v2::runtime::RuntimeConfig;
use containerd_shim_berth_v2::server::{next_frame, Frame};
use containerd_shim_berth_v2::tracked_process::validate_id;
use containerd_shim_protos::api::{
    CheckpointTaskRequest, CloseIORequest, ConnectRequest, CreateTaskRequest, DeleteRequest, ExecProcessRequest,
    KillRequest, PauseRequest, PidsRequest, ResizePtyRequest, ResumeRequest, ShutdownRequest, StartRequest,
    StateRequest, StatsRequest, UpdateTaskRequest, WaitRequest,
};
use containerd_shim_protos::ttrpc::proto::{Codec, MESSAGE_HEADER_LENGTH, MESSAGE_TYPE_REQUEST};
use containerd_shim_protos::ttrpc::Request;
use libfuzzer_sys::fuzz_target;
use protobuf::Message;

/// The service's own limits (shim/src/service.rs).
const MAX_CONTAINER_ID: usize = 1024;
const MAX_EXEC_ID: usize = 76;

fn payload(method: &str, p: &[u8]) {
    macro_rules! parse {
        ($t:ty) => {
            let _ = <$t>::parse_from_bytes(p);
        };
    }
    match method {
        "Create" => {
            if let Ok(req) = CreateTaskRequest::parse_from_bytes(p) {
                let _ = validate_id("container", &req.id, MAX_CONTAINER_ID);
                // runtimeoptions.v1.Options names a file the shim reads: a fuzzer would read
                // arbitrary host files (and hang on a FIFO); containerd is trusted there.
                let options = req.options.as_ref().filter(|o| !o.type_url.ends_with("runtimeoptions.v1.Options"));
                let _ = RuntimeConfig::from_options(options);
            }
        }
        "Exec" => {
            if let Ok(req) = ExecProcessRequest::parse_from_bytes(p) {
                let _ = validate_id("exec", &req.exec_id, MAX_EXEC_ID);
            }
        }
        "State" => {
            parse!(StateRequest);
        }
        "Start" => {
            parse!(StartRequest);
        }
        "Delete" => {
            parse!(DeleteRequest);
        }
        "Pids" => {
            parse!(PidsRequest);
        }
        "Pause" => {
            parse!(PauseRequest);
        }
        "Resume" => {
            parse!(ResumeRequest);
        }
        "Checkpoint" => {
            parse!(CheckpointTaskRequest);
        }
        "Kill" => {
            parse!(KillRequest);
        }
        "ResizePty" => {
            parse!(ResizePtyRequest);
        }
        "CloseIO" => {
            parse!(CloseIORequest);
        }
        "Update" => {
            parse!(UpdateTaskRequest);
        }
        "Wait" => {
            parse!(WaitRequest);
        }
        "Stats" => {
            parse!(StatsRequest);
        }
        "Connect" => {
            parse!(ConnectRequest);
        }
        "Shutdown" => {
            parse!(ShutdownRequest);
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    loop {
        let (header, body) = match next_frame(rest) {
            Frame::Partial | Frame::TooLong => return,
            Frame::Whole { header, body } => (header, body),
        };
        rest = &rest[MESSAGE_HEADER_LENGTH + body.len()..];
        if header.type_ != MESSAGE_TYPE_REQUEST {
            continue;
        }
        if let Ok(req) = Request::decode(body) {
            let _path = format!("/{}/{}", req.service, req.method);
            if req.service == "containerd.task.v2.Task" {
                payload(&req.method, &req.payload);
            }
        }
    }
});
