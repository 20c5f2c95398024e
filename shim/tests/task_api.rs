//! Task API calls that `ctr` 1.6 cannot make (Update, Checkpoint, Connect, CloseIO, State of
//! an exec), sent straight to the shim's socket with a ttrpc client, on a container that a
//! private containerd started through the shim. Needs root, containerd and a built shim
//! (`cargo build -p containerd-shim-berth-v2`); skipped otherwise.

use conformance::shim_fixture::{
    shim_containerd, shim_pids, shim_socket_path, wait_for, IMAGE, SHIM_RUNTIME,
};
use containerd_shim_protos::{
    api::{
        CheckpointTaskRequest, CloseIORequest, ConnectRequest, ConnectResponse, StateRequest,
        Status, UpdateTaskRequest,
    },
    protobuf::{well_known_types::any::Any, Message, MessageField},
    shim_sync::{Client, TaskClient},
    ttrpc::{context, Code, Error as TtrpcError},
};

fn root_with_containerd() -> bool {
    // SAFETY: geteuid has no arguments and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    root && std::path::Path::new("/usr/bin/containerd").exists()
}

#[test]
fn update_checkpoint_connect_close_io_and_v3_over_ttrpc() {
    if !root_with_containerd() {
        eprintln!("skipped: needs root and containerd");
        return;
    }
    let cd = shim_containerd().expect("containerd");
    let out = cd
        .ctr_raw(
            "default",
            &[
                "run",
                "-d",
                "--runtime",
                SHIM_RUNTIME,
                IMAGE,
                "api",
                "sleep",
                "1000",
            ],
        )
        .expect("ctr");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sock = shim_socket_path(&cd.address, "default", "api");
    let client = Client::connect(&format!("unix://{}", sock.display())).expect("connect shim");
    let task = TaskClient::new(client);
    let ctx = || context::with_timeout(10_000_000_000);

    let c = task
        .connect(
            ctx(),
            &ConnectRequest {
                id: "api".into(),
                ..Default::default()
            },
        )
        .expect("connect");
    assert_eq!(vec![c.shim_pid], shim_pids(&cd.address));
    assert!(c.task_pid > 0);

    let resources = Any {
        type_url: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources".into(),
        value: br#"{"memory":{"limit":33554432}}"#.to_vec(),
        ..Default::default()
    };
    task.update(
        ctx(),
        &UpdateTaskRequest {
            id: "api".into(),
            resources: MessageField::some(resources),
            ..Default::default()
        },
    )
    .expect("update");
    let limit = std::fs::read_to_string("/sys/fs/cgroup/memory/default/api/memory.limit_in_bytes")
        .unwrap_or_default();
    assert_eq!(limit.trim(), "33554432");

    let bad = task.update(
        ctx(),
        &UpdateTaskRequest {
            id: "api".into(),
            resources: MessageField::some(Any {
                value: b"{not json".to_vec(),
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    assert!(
        bad.is_err(),
        "malformed resources are refused, not passed on"
    );

    // Checkpoint runs `berth checkpoint`; criu 3.17 cannot run on this host's kernel, so
    // the reply carries criu's error (where `criu check` passes, the dump must succeed).
    let images = std::env::temp_dir().join(format!("berth-api-ck-{}", std::process::id()));
    let reply = task.checkpoint(
        ctx(),
        &CheckpointTaskRequest {
            id: "api".into(),
            path: images.display().to_string(),
            ..Default::default()
        },
    );
    let criu_runs = std::process::Command::new("/usr/sbin/criu")
        .arg("check")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    let _ = std::fs::remove_dir_all(&images);
    match reply {
        Err(TtrpcError::RpcStatus(s)) if !criu_runs => {
            // "<runtime> checkpoint failed: …criu…" from berth and runc alike.
            let m = s.message();
            assert!(m.contains("checkpoint failed") && m.contains("criu"), "checkpoint: {s:?}")
        }
        Ok(_) if criu_runs => {}
        other => panic!("checkpoint: {other:?}"),
    }
    task.close_io(
        ctx(),
        &CloseIORequest {
            id: "api".into(),
            stdin: true,
            ..Default::default()
        },
    )
    .expect("close io");
    match task.state(
        ctx(),
        &StateRequest {
            id: "nope".into(),
            ..Default::default()
        },
    ) {
        Err(TtrpcError::RpcStatus(s)) => assert_eq!(s.code(), Code::NOT_FOUND),
        other => panic!("state of unknown: {other:?}"),
    }
    let st = task
        .state(
            ctx(),
            &StateRequest {
                id: "api".into(),
                ..Default::default()
            },
        )
        .expect("state");
    assert_eq!(st.status.enum_value(), Ok(Status::RUNNING));
    drop(task);

    // Task API v3 (containerd 2.x) names reach the same handlers.
    let raw = Client::connect(&format!("unix://{}", sock.display())).expect("connect shim");
    let req = containerd_shim_protos::ttrpc::Request {
        service: "containerd.task.v3.Task".into(),
        method: "Connect".into(),
        payload: ConnectRequest {
            id: "api".into(),
            ..Default::default()
        }
        .write_to_bytes()
        .expect("encode"),
        timeout_nano: 10_000_000_000,
        ..Default::default()
    };
    let resp = raw.request(req).expect("v3 connect");
    let c3 = ConnectResponse::parse_from_bytes(&resp.payload).expect("decode");
    assert_eq!(c3.task_pid, c.task_pid);
    drop(raw);

    assert!(cd
        .ctr_raw("default", &["tasks", "kill", "-s", "KILL", "api"])
        .expect("ctr")
        .status
        .success());
    wait_for("stopped", 30, || {
        let ls =
            String::from_utf8_lossy(&cd.ctr_raw("default", &["tasks", "ls"]).expect("ctr").stdout)
                .into_owned();
        ls.contains("STOPPED").then_some(())
    });
    assert!(cd
        .ctr_raw("default", &["tasks", "rm", "api"])
        .expect("ctr")
        .status
        .success());
    assert!(cd
        .ctr_raw("default", &["containers", "rm", "api"])
        .expect("ctr")
        .status
        .success());
    wait_for("shim gone", 30, || {
        shim_pids(&cd.address).is_empty().then_some(())
    });
    assert!(!sock.exists());
}

#[test]
fn info_reports_the_runtime_features() {
    // berth built next to the shim, unless BERTH_RUNTIME names another runtime (e.g. runc).
    let shim = std::path::Path::new(env!("CARGO_BIN_EXE_containerd-shim-berth-v2"));
    let runtime = std::env::var_os("BERTH_RUNTIME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| shim.with_file_name("berth"));
    if !runtime.exists() {
        eprintln!("skipped: needs {} (cargo build --bins)", runtime.display());
        return;
    }
    let out = std::process::Command::new(shim)
        .arg("-info")
        .env("BERTH_RUNTIME", &runtime)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run shim -info");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info =
        containerd_shim_protos::types::introspection::RuntimeInfo::parse_from_bytes(&out.stdout)
            .expect("RuntimeInfo");
    assert_eq!(info.name, "io.containerd.berth.v2");
    let features: serde_json::Value =
        serde_json::from_slice(&info.features.value).expect("features JSON");
    assert!(features.get("ociVersionMax").is_some(), "{features}");
}
