//! Kubernetes' view of berth: a private containerd 1.6 with its CRI plugin enabled, the berth
//! snapshotter as a proxy plugin, runtime handlers `berth` (containerd-shim-berth-v2) and `runc`
//! (containerd-shim-runc-v2), CNI loopback + bridge on a private subnet, and a CRI v1 client
//! that calls it exactly as kubelet does (with [`CriOptions::containerd2`], a containerd 2.x
//! with config version 3 and a snapshotter per handler instead). Dropping a [`CriEnv`]
//! removes every pod it still knows, stops containerd and the snapshotter, and removes the
//! bridge, the cgroup parent and the state directories.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::Channel;

use crate::containerd::SnapshotterProcess;
use crate::image::{busybox_layer, write_oci_archive, Layer};
use crate::util::unmount_all_under;

pub use k8s_cri::v1;

pub const PAUSE_IMAGE: &str = "docker.io/berth/pause:1";
pub const BUSYBOX_IMAGE: &str = "docker.io/berth/busybox:1";
/// The handlers every CRI test runs with: berth's shim, and runc's as the reference.
pub const HANDLERS: [&str; 2] = ["berth", "runc"];
const K8S_NAMESPACE: &str = "k8s.io";

#[derive(Debug, thiserror::Error)]
pub enum CriError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Setup(String),
    #[error("{call}: {status}")]
    Rpc { call: &'static str, status: tonic::Status },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> CriError {
    let context = context.into();
    move |source| CriError::Io { context, source }
}

pub type Result<T> = std::result::Result<T, CriError>;

/// A unique, short tag per environment: it names the bridge (IFNAMSIZ: 15 bytes), the
/// subnet's third octet and the pods' cgroup parent.
fn run_tag() -> (String, u8) {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let seq = SEQ.fetch_add(1, Ordering::SeqCst);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let mix = (std::process::id() << 8) ^ nanos ^ (seq << 20);
    (format!("bcri{:06x}", mix & 0xff_ffff), (mix % 250) as u8 + 1)
}

/// The pause image: berth-pause as `/pause`, nothing else.
pub fn pause_layer() -> Result<Layer> {
    let bin = crate::util::workspace_binary("berth-pause", "BERTH_PAUSE");
    let data = fs::read(&bin).map_err(io(format!("reading {} (cargo build -p berth-pause)", bin.display())))?;
    Ok(Layer::default().file("pause", data, 0o755))
}

/// Writes the pause and busybox images as OCI archives under `dir`.
pub fn write_images(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let img = |e: crate::image::ImageError| CriError::Setup(e.to_string());
    let pause = dir.join("pause-oci.tar");
    write_oci_archive(&pause, PAUSE_IMAGE, &[pause_layer()?], &["/pause"]).map_err(img)?;
    let mut bb = busybox_layer().map_err(img)?;
    for applet in ["grep", "dd", "kill", "touch", "mkdir", "readlink", "tail", "ps", "tr"] {
        bb = bb.symlink(&format!("bin/{applet}"), "busybox");
    }
    let busybox = dir.join("busybox-oci.tar");
    write_oci_archive(&busybox, BUSYBOX_IMAGE, &[bb], &["sh"]).map_err(img)?;
    Ok((pause, busybox))
}

/// How the CRI plugin runs pods, beyond what every env shares.
#[derive(Debug, Clone, Copy, Default)]
pub struct CriOptions {
    /// `SystemdCgroup = true` for both handlers, as on a node whose kubelet uses the systemd
    /// cgroup driver: the shims pass `--systemd-cgroup` and pods' cgroup parents are slices.
    pub systemd_cgroup: bool,
    /// Let the CRI plugin apply its default AppArmor profile (where AppArmor is enabled);
    /// off by default, as this lab host has no AppArmor.
    pub apparmor: bool,
    /// A containerd 2.x (config version 3, [`CriConfig::render_v3`]): handler berth keeps
    /// its options inline and has the berth snapshotter as its own (`snapshotter = "berth"`),
    /// handler runc the default overlayfs; plus handler [`BERTH_RUNC_TYPE`].
    pub containerd2: bool,
}

/// With [`CriOptions::containerd2`]: berth's shim registered with runc's runtime type and
/// its own path (`runtime_path`), the only way a non-runc shim's features (`-info`) reach
/// CRI's status in containerd 2.1, which introspects only `io.containerd.runc.v2` handlers.
pub const BERTH_RUNC_TYPE: &str = "berth-runc-type";

/// The containerd config: CRI with both handlers, the berth snapshotter, private CNI.
pub struct CriConfig<'a> {
    pub dir: &'a Path,
    pub snapshotter_socket: &'a Path,
    /// The runtime binary containerd-shim-berth-v2 runs (written to its options file).
    pub berth_binary: &'a Path,
    pub options: CriOptions,
}

impl CriConfig<'_> {
    pub fn socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    pub fn render(&self) -> String {
        if self.options.containerd2 {
            return self.render_v3();
        }
        let d = self.dir.display();
        format!(
            r#"version = 2
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
{daemon}[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  disable_apparmor = {no_apparmor}
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "berth"
    default_runtime_name = "berth"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.berth]
      runtime_type = "io.containerd.berth.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.berth.options]
        ConfigPath = "{d}/berth-shim.toml"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        SystemdCgroup = {systemd}
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{d}/cni"
    max_conf_num = 1
"#,
            daemon = self.daemon_sections(),
            no_apparmor = !self.options.apparmor,
            systemd = self.options.systemd_cgroup,
        )
    }

    /// What both config versions say alike: containerd's own directories and sockets, and
    /// berth-snapshotter as a proxy plugin.
    fn daemon_sections(&self) -> String {
        format!(
            r#"root = "{d}/root"
state = "{d}/state"
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[proxy_plugins.berth]
  type = "snapshot"
  address = "{snap}"
"#,
            d = self.dir.display(),
            sock = self.socket().display(),
            snap = self.snapshotter_socket.display(),
        )
    }

    /// containerd 2.x's config (version 3), as docs/production-guest.md shows it to users:
    /// the CRI plugin split into images and runtime, the options of handler berth inline
    /// (containerd hands them to the shim as TOML in `runtimeoptions.v1.Options`'
    /// config_body), a snapshotter per handler, NRI off (its socket is the host's). The
    /// transfer service (`ctr images import/pull`, and the CRI plugin's pulls in 2.1)
    /// unpacks only for the snapshotters of its `unpack_config`, overlayfs alone by default:
    /// berth is added there, else importing for it fails "no unpack platforms defined".
    pub fn render_v3(&self) -> String {
        let d = self.dir.display();
        let cri = "plugins.'io.containerd.cri.v1.runtime'";
        let rt = format!("{cri}.containerd.runtimes");
        format!(
            r#"version = 3
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.blockfile", "io.containerd.snapshotter.v1.erofs"]
{daemon}[plugins.'io.containerd.nri.v1.nri']
  disable = true
[[plugins.'io.containerd.transfer.v1.local'.unpack_config]]
  platform = "linux/amd64"
  snapshotter = "overlayfs"
[[plugins.'io.containerd.transfer.v1.local'.unpack_config]]
  platform = "linux/amd64"
  snapshotter = "berth"
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "{PAUSE_IMAGE}"
[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
[{cri}]
  restrict_oom_score_adj = true
  disable_apparmor = {no_apparmor}
  [{cri}.containerd]
    default_runtime_name = "runc"
    [{rt}.berth]
      runtime_type = "io.containerd.berth.v2"
      snapshotter = "berth"
      [{rt}.berth.options]
        BinaryName = "{berth}"
        Root = "{d}/berth-root"
        SystemdCgroup = {systemd}
    [{rt}.runc]
      runtime_type = "io.containerd.runc.v2"
      [{rt}.runc.options]
        BinaryName = "/usr/sbin/runc"
        SystemdCgroup = {systemd}
    [{rt}.{BERTH_RUNC_TYPE}]
      runtime_type = "io.containerd.runc.v2"
      runtime_path = "{shim}"
      snapshotter = "berth"
      [{rt}.{BERTH_RUNC_TYPE}.options]
        BinaryName = "{berth}"
        Root = "{d}/berth-root"
        SystemdCgroup = {systemd}
  [{cri}.cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "{d}/cni"
    max_conf_num = 1
"#,
            daemon = self.daemon_sections(),
            no_apparmor = !self.options.apparmor,
            systemd = self.options.systemd_cgroup,
            berth = self.berth_binary.display(),
            shim = shim_binary().display(),
        )
    }

    /// The berth shim's own options file (containerd 1.6 hands a non-runc runtime type only
    /// `ConfigPath`): the runtime binary, its root and the cgroup driver.
    pub fn shim_options(&self) -> String {
        format!(
            "BinaryName = \"{}\"\nRoot = \"{}/berth-root\"\nSystemdCgroup = {}\n",
            self.berth_binary.display(),
            self.dir.display(),
            self.options.systemd_cgroup
        )
    }
}

pub fn cni_conflist(bridge: &str, octet: u8, ipam_dir: &Path) -> String {
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": bridge,
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": true,
                "ipMasq": false,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{ "subnet": format!("10.231.{octet}.0/24") }]],
                    "dataDir": ipam_dir,
                },
            },
            { "type": "loopback" },
        ],
    })
    .to_string()
}

/// The runtime binary for handler berth: `BERTH_RUNTIME` (e.g. /usr/sbin/runc to test the
/// shim alone), else the workspace's berth.
pub fn berth_runtime_binary() -> PathBuf {
    std::env::var_os("BERTH_RUNTIME")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::util::workspace_binary("berth", "BERTH"))
}

pub fn shim_binary() -> PathBuf {
    crate::util::workspace_binary("containerd-shim-berth-v2", "BERTH_SHIM")
}

pub struct CriEnv {
    pub dir: PathBuf,
    pub tag: String,
    /// The pods' cgroup parent: a directory under the env's tag, or with the systemd driver
    /// a pod slice as kubelet names it (`kubepods-burstable-pod<tag>.slice`).
    pub cgroup_parent: String,
    pub options: CriOptions,
    pub rt: tokio::runtime::Runtime,
    pub runtime: RuntimeServiceClient<Channel>,
    pub images: ImageServiceClient<Channel>,
    containerd: Option<Child>,
    snapshotter: Option<SnapshotterProcess>,
    pods: std::sync::Mutex<Vec<String>>,
    /// Dropped after [`CriEnv`]'s own drop has stopped containerd and its pods.
    _ip_forward: IpForwardHold,
}

const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// The envs of this process alive, and the host's net.ipv4.ip_forward as the first of them
/// found it: the CNI bridge plugin turns forwarding on for every pod it gives an address,
/// and the setting goes back when the last env is gone (envs of parallel tests overlap).
static IP_FORWARD_HOLDERS: std::sync::Mutex<(usize, Option<String>)> = std::sync::Mutex::new((0, None));

struct IpForwardHold;

impl IpForwardHold {
    fn take() -> IpForwardHold {
        let mut h = IP_FORWARD_HOLDERS.lock().unwrap_or_else(|p| p.into_inner());
        if h.0 == 0 {
            h.1 = fs::read_to_string(IP_FORWARD).ok();
        }
        h.0 += 1;
        IpForwardHold
    }
}

impl Drop for IpForwardHold {
    fn drop(&mut self) {
        let mut h = IP_FORWARD_HOLDERS.lock().unwrap_or_else(|p| p.into_inner());
        h.0 = h.0.saturating_sub(1);
        if h.0 == 0 {
            if let Some(host) = h.1.take() {
                let _ = fs::write(IP_FORWARD, host);
            }
        }
    }
}

impl CriEnv {
    pub fn start() -> Result<CriEnv> {
        CriEnv::start_with(CriOptions::default())
    }

    pub fn start_with(options: CriOptions) -> Result<CriEnv> {
        let (tag, octet) = run_tag();
        // Short: the shim and ttrpc sockets live below it.
        let dir = PathBuf::from(format!("/tmp/{tag}"));
        fs::create_dir_all(dir.join("cni")).map_err(io("creating the env dir"))?;
        // Multi-threaded so that several test threads can call through one env at once.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(io("tokio runtime"))?;
        let snapshotter = SnapshotterProcess::start().map_err(|e| CriError::Setup(e.to_string()))?;
        let berth = berth_runtime_binary();
        let cfg = CriConfig { dir: &dir, snapshotter_socket: &snapshotter.socket, berth_binary: &berth, options };
        fs::write(dir.join("config.toml"), cfg.render()).map_err(io("config.toml"))?;
        fs::write(dir.join("berth-shim.toml"), cfg.shim_options()).map_err(io("berth-shim.toml"))?;
        fs::write(dir.join("cni/10-berth.conflist"), cni_conflist(&tag, octet, &dir.join("ipam")))
            .map_err(io("cni conflist"))?;
        let shim = shim_binary();
        let shim_dir = shim.parent().map(Path::to_path_buf).unwrap_or_default();
        let path = format!("{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", shim_dir.display());
        let log = fs::File::create(dir.join("containerd.log")).map_err(io("containerd.log"))?;
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .env_clear()
            .env("PATH", path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(io("starting containerd (apt-get install containerd)"))?;
        let socket = cfg.socket();
        // Placeholders until connect() replaces them; a lazy channel needs the runtime entered.
        let guard = rt.enter();
        let runtime = RuntimeServiceClient::new(Channel::from_static("http://[::1]:1").connect_lazy());
        let images = ImageServiceClient::new(Channel::from_static("http://[::1]:1").connect_lazy());
        drop(guard);
        let cgroup_parent =
            if options.systemd_cgroup { format!("kubepods-burstable-pod{tag}.slice") } else { format!("/{tag}") };
        let mut env = CriEnv {
            cgroup_parent,
            options,
            dir,
            tag,
            rt,
            runtime,
            images,
            containerd: Some(child),
            snapshotter: Some(snapshotter),
            pods: Default::default(),
            _ip_forward: IpForwardHold::take(),
        };
        env.connect(&socket)?;
        let (pause, busybox) = write_images(&env.dir)?;
        // containerd 2.x: unpacked for both handlers' snapshotters (the CRI plugin would
        // also unpack on first use), else for berth's, the only one.
        let snapshotters: &[Option<&str>] = if options.containerd2 { &[None, Some("berth")] } else { &[Some("berth")] };
        for s in snapshotters {
            env.import(&pause, *s)?;
            env.import(&busybox, *s)?;
        }
        Ok(env)
    }

    fn connect(&mut self, socket: &Path) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if socket.exists() {
                let ch = self.rt.block_on(berth_snapshotter::client::connect_channel(socket.to_path_buf()));
                if let Ok(ch) = ch {
                    self.runtime = RuntimeServiceClient::new(ch.clone());
                    self.images = ImageServiceClient::new(ch);
                    let mut r = self.runtime.clone();
                    let v = self.rt.block_on(r.version(cri::VersionRequest { version: "v1".into() }));
                    if v.is_ok() {
                        return Ok(());
                    }
                }
            }
            if let Some(Ok(Some(st))) = self.containerd.as_mut().map(|c| c.try_wait()) {
                return Err(CriError::Setup(format!("containerd exited ({st}); log:\n{}", self.log())));
            }
            if Instant::now() > deadline {
                return Err(CriError::Setup(format!("the CRI plugin did not answer; log:\n{}", self.log())));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Imports an archive into the k8s.io namespace, unpacked for `snapshotter` (containerd's
    /// default without one).
    fn import(&self, archive: &Path, snapshotter: Option<&str>) -> Result<()> {
        let mut cmd = self.ctr();
        cmd.args(["images", "import"]);
        if let Some(s) = snapshotter {
            cmd.args(["--snapshotter", s]);
        }
        let out = cmd.arg(archive).output().map_err(io("running ctr"))?;
        if !out.status.success() {
            return Err(CriError::Setup(format!(
                "ctr images import {}: {}",
                archive.display(),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(())
    }

    /// `ctr` on this containerd, in the k8s.io namespace.
    pub fn ctr(&self) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address").arg(self.dir.join("containerd.sock")).args(["--namespace", K8S_NAMESPACE]);
        cmd
    }

    /// The berth snapshotter's root directory (where its layers live).
    pub fn snapshotter_dir(&self) -> Option<PathBuf> {
        self.snapshotter.as_ref().map(|s| s.root.clone())
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }

    pub fn containerd_pid(&self) -> u32 {
        self.containerd.as_ref().map(Child::id).unwrap_or(0)
    }

    pub fn block<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// A pod config: unique name, its log directory, the env's cgroup parent.
    pub fn pod_config(&self, name: &str) -> cri::PodSandboxConfig {
        let uid = format!("{}-{name}", self.tag);
        let log_directory = self.dir.join("logs").join(&uid);
        let _ = fs::create_dir_all(&log_directory);
        cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata { name: name.into(), uid, namespace: "default".into(), attempt: 0 }),
            hostname: name.into(),
            log_directory: log_directory.to_string_lossy().into_owned(),
            linux: Some(cri::LinuxPodSandboxConfig {
                cgroup_parent: self.cgroup_parent.clone(),
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(cri::NamespaceOption {
                        network: cri::NamespaceMode::Pod as i32,
                        pid: cri::NamespaceMode::Container as i32,
                        ipc: cri::NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// A busybox container running `sh -c script`, logging to `<name>.log`.
    pub fn container_config(&self, name: &str, script: &str) -> cri::ContainerConfig {
        cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata { name: name.into(), attempt: 0 }),
            image: Some(cri::ImageSpec { image: BUSYBOX_IMAGE.into(), ..Default::default() }),
            command: vec!["sh".into(), "-c".into(), script.into()],
            log_path: format!("{name}.log"),
            linux: Some(cri::LinuxContainerConfig::default()),
            ..Default::default()
        }
    }

    pub fn run_pod(&self, config: &cri::PodSandboxConfig, handler: &str) -> Result<String> {
        let mut r = self.runtime.clone();
        let id = self
            .block(r.run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: handler.into(),
            }))
            .map_err(|status| CriError::Rpc { call: "RunPodSandbox", status })?
            .into_inner()
            .pod_sandbox_id;
        if let Ok(mut pods) = self.pods.lock() {
            pods.push(id.clone());
        }
        Ok(id)
    }

    pub fn create_container(
        &self,
        pod: &str,
        config: cri::ContainerConfig,
        pod_config: &cri::PodSandboxConfig,
    ) -> Result<String> {
        let mut r = self.runtime.clone();
        Ok(self
            .block(r.create_container(cri::CreateContainerRequest {
                pod_sandbox_id: pod.into(),
                config: Some(config),
                sandbox_config: Some(pod_config.clone()),
            }))
            .map_err(|status| CriError::Rpc { call: "CreateContainer", status })?
            .into_inner()
            .container_id)
    }

    pub fn start_container(&self, id: &str) -> Result<()> {
        let mut r = self.runtime.clone();
        self.block(r.start_container(cri::StartContainerRequest { container_id: id.into() }))
            .map_err(|status| CriError::Rpc { call: "StartContainer", status })?;
        Ok(())
    }

    /// Create + start.
    pub fn run_container(
        &self,
        pod: &str,
        config: cri::ContainerConfig,
        pod_config: &cri::PodSandboxConfig,
    ) -> Result<String> {
        let id = self.create_container(pod, config, pod_config)?;
        self.start_container(&id)?;
        Ok(id)
    }

    pub fn container_status(&self, id: &str) -> Result<(cri::ContainerStatus, HashMap<String, String>)> {
        let mut r = self.runtime.clone();
        let resp = self
            .block(r.container_status(cri::ContainerStatusRequest { container_id: id.into(), verbose: true }))
            .map_err(|status| CriError::Rpc { call: "ContainerStatus", status })?
            .into_inner();
        Ok((resp.status.unwrap_or_default(), resp.info))
    }

    /// The container's host pid, from the verbose status.
    pub fn container_pid(&self, id: &str) -> Result<u32> {
        let (_, info) = self.container_status(id)?;
        info.get("info")
            .and_then(|i| serde_json::from_str::<serde_json::Value>(i).ok())
            .and_then(|v| v.get("pid")?.as_u64())
            .map(|p| p as u32)
            .filter(|p| *p > 0)
            .ok_or_else(|| CriError::Setup(format!("no pid in the status of {id}")))
    }

    /// Waits for the container to exit and returns its final status.
    pub fn wait_exited(&self, id: &str, timeout: Duration) -> Result<cri::ContainerStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let (st, _) = self.container_status(id)?;
            if st.state == cri::ContainerState::ContainerExited as i32 {
                return Ok(st);
            }
            if Instant::now() > deadline {
                return Err(CriError::Setup(format!("{id} still {:?} after {timeout:?}", st.state)));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn exec_sync(&self, id: &str, cmd: &[&str], timeout: i64) -> Result<cri::ExecSyncResponse> {
        let mut r = self.runtime.clone();
        Ok(self
            .block(r.exec_sync(cri::ExecSyncRequest {
                container_id: id.into(),
                cmd: cmd.iter().map(|s| s.to_string()).collect(),
                timeout,
            }))
            .map_err(|status| CriError::Rpc { call: "ExecSync", status })?
            .into_inner())
    }

    pub fn stop_container(&self, id: &str, timeout: i64) -> Result<()> {
        let mut r = self.runtime.clone();
        self.block(r.stop_container(cri::StopContainerRequest { container_id: id.into(), timeout }))
            .map_err(|status| CriError::Rpc { call: "StopContainer", status })?;
        Ok(())
    }

    pub fn remove_container(&self, id: &str) -> Result<()> {
        let mut r = self.runtime.clone();
        self.block(r.remove_container(cri::RemoveContainerRequest { container_id: id.into() }))
            .map_err(|status| CriError::Rpc { call: "RemoveContainer", status })?;
        Ok(())
    }

    /// The runtime handlers and their features as the CRI status reports them (kubelet reads
    /// these to allow recursive read-only mounts and user namespaces).
    pub fn runtime_handlers(&self) -> Result<Vec<cri::RuntimeHandler>> {
        let mut r = self.runtime.clone();
        Ok(self
            .block(r.status(cri::StatusRequest { verbose: false }))
            .map_err(|status| CriError::Rpc { call: "Status", status })?
            .into_inner()
            .runtime_handlers)
    }

    pub fn remove_image(&self, image: &str) -> Result<()> {
        let mut i = self.images.clone();
        self.block(i.remove_image(cri::RemoveImageRequest {
            image: Some(cri::ImageSpec { image: image.into(), ..Default::default() }),
        }))
        .map_err(|status| CriError::Rpc { call: "RemoveImage", status })?;
        Ok(())
    }

    /// The pod's network namespace path, from the verbose sandbox status.
    pub fn pod_netns(&self, pod: &str) -> Result<String> {
        let mut r = self.runtime.clone();
        let resp = self
            .block(r.pod_sandbox_status(cri::PodSandboxStatusRequest { pod_sandbox_id: pod.into(), verbose: true }))
            .map_err(|status| CriError::Rpc { call: "PodSandboxStatus", status })?
            .into_inner();
        let info: serde_json::Value =
            resp.info.get("info").and_then(|i| serde_json::from_str(i).ok()).unwrap_or_default();
        info.pointer("/runtimeSpec/linux/namespaces")
            .and_then(|v| v.as_array())
            .and_then(|nss| nss.iter().find(|n| n.get("type").and_then(|t| t.as_str()) == Some("network")))
            .and_then(|n| n.get("path")?.as_str().map(str::to_string))
            .ok_or_else(|| CriError::Setup(format!("no network namespace path for pod {pod}")))
    }

    /// StopPodSandbox then RemovePodSandbox.
    pub fn remove_pod(&self, pod: &str) -> Result<()> {
        let mut r = self.runtime.clone();
        self.block(r.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: pod.into() }))
            .map_err(|status| CriError::Rpc { call: "StopPodSandbox", status })?;
        self.block(r.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: pod.into() }))
            .map_err(|status| CriError::Rpc { call: "RemovePodSandbox", status })?;
        if let Ok(mut pods) = self.pods.lock() {
            pods.retain(|p| p != pod);
        }
        Ok(())
    }

    /// A pod running `containers` busybox containers that sleep; returns the pod and container ids.
    pub fn sleeping_pod(&self, name: &str, handler: &str, containers: usize) -> Result<(String, Vec<String>)> {
        let cfg = self.pod_config(name);
        let pod = self.run_pod(&cfg, handler)?;
        let mut ids = Vec::new();
        for i in 0..containers {
            ids.push(self.run_container(&pod, self.container_config(&format!("c{i}"), "exec sleep 600"), &cfg)?);
        }
        Ok((pod, ids))
    }

    /// Stops (no grace: the sleeps ignore TERM as pid 1) and removes the containers, then the pod.
    pub fn teardown_pod(&self, pod: &str, containers: &[String]) -> Result<()> {
        for id in containers {
            self.stop_container(id, 0)?;
            self.remove_container(id)?;
        }
        self.remove_pod(pod)
    }

    /// Shims serving this containerd (their command line carries its address).
    pub fn shim_pids(&self) -> Vec<u32> {
        let needle = self.dir.to_string_lossy().into_owned();
        crate::leak::processes_mentioning(&[&needle])
            .into_iter()
            .filter(|(_, cmd)| cmd.contains("containerd-shim"))
            .map(|(pid, _)| pid as u32)
            .collect()
    }

    /// What a removed pod may have left: its netns file, shims, mounts under the env's
    /// directories, cgroups under the env's parent, runtime state.
    pub fn leaks(&self, netns: &str) -> Vec<String> {
        let mut found = Vec::new();
        if Path::new(netns).exists() {
            found.push(format!("netns {netns}"));
        }
        for pid in self.shim_pids() {
            found.push(format!("shim pid {pid}"));
        }
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let dirs = [
            self.dir.to_string_lossy().into_owned(),
            self.snapshotter.as_ref().map(|s| s.dir.path().to_string_lossy().into_owned()).unwrap_or_default(),
        ];
        for m in mounts.lines().filter_map(|l| l.split(' ').nth(4)) {
            if dirs.iter().any(|d| !d.is_empty() && m.starts_with(d.as_str())) {
                found.push(format!("mount {m}"));
            }
        }
        for cg in crate::leak::cgroup_dirs_containing(&self.tag) {
            let children = fs::read_dir(&cg).map(|rd| rd.flatten().filter(|e| e.path().is_dir()).count()).unwrap_or(0);
            if children > 0 {
                found.push(format!("cgroup children under {}", cg.display()));
            }
        }
        for root in [self.dir.join("berth-root").join(K8S_NAMESPACE)] {
            if let Ok(rd) = fs::read_dir(&root) {
                for e in rd.flatten() {
                    found.push(format!("runtime state {}", e.path().display()));
                }
            }
        }
        let tasks = self.dir.join("state/io.containerd.runtime.v2.task").join(K8S_NAMESPACE);
        if let Ok(rd) = fs::read_dir(&tasks) {
            for e in rd.flatten() {
                found.push(format!("task bundle {}", e.path().display()));
            }
        }
        found
    }

    /// Polls [`CriEnv::leaks`] until it is empty (shims exit asynchronously after their last
    /// task is deleted) and returns what is still left after `timeout`.
    pub fn leaks_after(&self, netns: &str, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let l = self.leaks(netns);
            if l.is_empty() || Instant::now() > deadline {
                return l;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn delete_link(name: &str) {
    let _ = Command::new("ip").args(["link", "delete", name]).stderr(Stdio::null()).status();
}

impl Drop for CriEnv {
    fn drop(&mut self) {
        let pods: Vec<String> = self.pods.lock().map(|p| p.clone()).unwrap_or_default();
        for pod in pods {
            let _ = self.remove_pod(&pod);
        }
        if let Some(mut c) = self.containerd.take() {
            // SAFETY: signalling our own child by pid.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && !matches!(c.try_wait(), Ok(Some(_))) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        for pid in self.shim_pids() {
            // SAFETY: kill(2) on a shim of our own containerd (its cmdline names our dir).
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        self.snapshotter.take();
        unmount_all_under(&self.dir);
        delete_link(&self.tag);
        if self.options.systemd_cgroup {
            // kubelet stops a pod's slice when the pod is gone; systemd then removes its cgroup.
            let _ = Command::new("systemctl").args(["stop", &self.cgroup_parent]).stderr(Stdio::null()).status();
        }
        let mut cgroups = crate::leak::cgroup_dirs_containing(&self.tag);
        cgroups.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
        for cg in cgroups {
            let _ = fs::remove_dir(cg);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// What an Exec through the streaming server produced: the bytes of each stream and the
/// final status message of the error channel (JSON `Status`; `Success`, or `Failure` with the
/// exit code in its details).
#[derive(Debug, Default)]
pub struct StreamedExec {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub status: String,
}

impl CriEnv {
    /// Exec as kubectl does it: the Exec RPC returns a streaming URL, which is opened as a
    /// websocket with the `v4.channel.k8s.io` protocol; each binary message starts with its
    /// channel (1 stdout, 2 stderr, 3 status).
    pub fn exec_stream(&self, id: &str, cmd: &[&str]) -> Result<StreamedExec> {
        let mut r = self.runtime.clone();
        let url = self
            .block(r.exec(cri::ExecRequest {
                container_id: id.into(),
                cmd: cmd.iter().map(|s| s.to_string()).collect(),
                stdout: true,
                stderr: true,
                ..Default::default()
            }))
            .map_err(|status| CriError::Rpc { call: "Exec", status })?
            .into_inner()
            .url;
        websocket::read_channels(&url).map_err(io(format!("streaming {url}")))
    }
}

/// The smallest websocket client the exec stream needs: handshake, then read server frames
/// (unmasked) until close. Nothing is sent after the handshake: the exec has no stdin.
mod websocket {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream;

    use super::StreamedExec;

    fn bad(msg: String) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
    }

    pub fn read_channels(url: &str) -> std::io::Result<StreamedExec> {
        let rest = url.strip_prefix("http://").ok_or_else(|| bad(format!("not an http URL: {url}")))?;
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let mut s = TcpStream::connect(host)?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(60)))?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n"
        )?;
        let mut rd = BufReader::new(s);
        let mut line = String::new();
        rd.read_line(&mut line)?;
        if !line.contains(" 101 ") {
            return Err(bad(format!("no websocket upgrade: {}", line.trim())));
        }
        loop {
            line.clear();
            rd.read_line(&mut line)?;
            if line.trim().is_empty() {
                break;
            }
        }
        let mut out = StreamedExec::default();
        loop {
            let mut h = [0u8; 2];
            if rd.read_exact(&mut h).is_err() {
                return Ok(out);
            }
            let opcode = h[0] & 0x0f;
            let mut len = u64::from(h[1] & 0x7f);
            if len == 126 {
                let mut b = [0u8; 2];
                rd.read_exact(&mut b)?;
                len = u64::from(u16::from_be_bytes(b));
            } else if len == 127 {
                let mut b = [0u8; 8];
                rd.read_exact(&mut b)?;
                len = u64::from_be_bytes(b);
            }
            let mut payload = vec![0u8; usize::try_from(len).map_err(|_| bad("frame too large".into()))?];
            rd.read_exact(&mut payload)?;
            match opcode {
                0x8 => return Ok(out),
                0x1 | 0x2 => {
                    let Some((&channel, data)) = payload.split_first() else {
                        continue;
                    };
                    match channel {
                        1 => out.stdout.extend_from_slice(data),
                        2 => out.stderr.extend_from_slice(data),
                        3 => out.status.push_str(&String::from_utf8_lossy(data)),
                        _ => {}
                    }
                }
                _ => {}
            }
        }
    }
}
