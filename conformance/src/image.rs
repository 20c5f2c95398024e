//! OCI image archives built in the test: layers as uncompressed tar, a
//! config, a manifest and an index, as `ctr images import` reads them.

use std::path::Path;

use sha2::{Digest, Sha256};

/// One filesystem change in a layer.
#[derive(Debug, Clone)]
pub enum Entry {
    Dir {
        path: String,
        mode: u32,
    },
    File {
        path: String,
        data: Vec<u8>,
        mode: u32,
    },
    Symlink {
        path: String,
        target: String,
    },
    /// Deletes `path` from the layers below (`.wh.<name>`).
    Whiteout {
        path: String,
    },
    /// Hides everything below `dir` in lower layers (`.wh..wh..opq`).
    Opaque {
        dir: String,
    },
}

#[derive(Debug, Clone, Default)]
pub struct Layer {
    pub entries: Vec<Entry>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ImageError {
    let context = context.into();
    move |source| ImageError::Io { context, source }
}

impl Layer {
    pub fn dir(mut self, path: &str, mode: u32) -> Self {
        self.entries.push(Entry::Dir { path: path.into(), mode });
        self
    }
    pub fn file(mut self, path: &str, data: impl Into<Vec<u8>>, mode: u32) -> Self {
        self.entries.push(Entry::File { path: path.into(), data: data.into(), mode });
        self
    }
    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        self.entries.push(Entry::Symlink { path: path.into(), target: target.into() });
        self
    }
    pub fn whiteout(mut self, path: &str) -> Self {
        self.entries.push(Entry::Whiteout { path: path.into() });
        self
    }
    pub fn opaque(mut self, dir: &str) -> Self {
        self.entries.push(Entry::Opaque { dir: dir.into() });
        self
    }

    /// The layer as an uncompressed tar stream.
    pub fn tar(&self) -> Result<Vec<u8>, ImageError> {
        let mut b = tar::Builder::new(Vec::new());
        for e in &self.entries {
            let mut h = tar::Header::new_ustar();
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(1_700_000_000);
            match e {
                Entry::Dir { path, mode } => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(*mode);
                    h.set_size(0);
                    b.append_data(&mut h, format!("{}/", path.trim_matches('/')), std::io::empty())
                        .map_err(io(format!("tar dir {path}")))?;
                }
                Entry::File { path, data, mode } => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(*mode);
                    h.set_size(data.len() as u64);
                    b.append_data(&mut h, path.trim_start_matches('/'), data.as_slice())
                        .map_err(io(format!("tar file {path}")))?;
                }
                Entry::Symlink { path, target } => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_mode(0o777);
                    h.set_size(0);
                    b.append_link(&mut h, path.trim_start_matches('/'), target)
                        .map_err(io(format!("tar symlink {path}")))?;
                }
                Entry::Whiteout { path } => {
                    let p = Path::new(path.trim_start_matches('/'));
                    let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    let wh = p.with_file_name(format!(".wh.{name}"));
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(0o644);
                    h.set_size(0);
                    b.append_data(&mut h, wh, std::io::empty()).map_err(io(format!("tar whiteout {path}")))?;
                }
                Entry::Opaque { dir } => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(0o644);
                    h.set_size(0);
                    let p = format!("{}/.wh..wh..opq", dir.trim_matches('/'));
                    b.append_data(&mut h, p, std::io::empty()).map_err(io(format!("tar opaque {dir}")))?;
                }
            }
        }
        b.into_inner().map_err(io("finishing layer tar"))
    }
}

/// A base layer with Debian's static busybox as /bin/busybox and the
/// applets the tests use as symlinks.
pub fn busybox_layer() -> Result<Layer, ImageError> {
    let bb = std::fs::read("/bin/busybox").map_err(io("reading /bin/busybox (apt-get install busybox-static)"))?;
    let mut l = Layer::default()
        .dir("bin", 0o755)
        .dir("etc", 0o755)
        .dir("dev", 0o755)
        .dir("proc", 0o755)
        .dir("sys", 0o755)
        .dir("root", 0o700)
        .dir("tmp", 0o1777)
        .file("bin/busybox", bb, 0o755)
        .file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0o644)
        .file("etc/group", "root:x:0:\n", 0o644);
    for applet in ["sh", "ls", "cat", "echo", "stat", "id", "test", "find", "wc", "true", "sort", "head", "sleep"] {
        l = l.symlink(&format!("bin/{applet}"), "busybox");
    }
    Ok(l)
}

pub fn sha256_hex(data: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(data);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Writes an OCI image layout archive holding one image named `name`
/// (a full reference such as `docker.io/berth/test:latest`).
pub fn write_oci_archive(out: &Path, name: &str, layers: &[Layer], cmd: &[&str]) -> Result<(), ImageError> {
    let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut layer_descs = Vec::new();
    let mut diff_ids = Vec::new();
    for l in layers {
        let t = l.tar()?;
        let d = format!("sha256:{}", sha256_hex(&t));
        layer_descs.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": d,
            "size": t.len(),
        }));
        diff_ids.push(d.clone());
        blobs.push((d, t));
    }
    let config = serde_json::json!({
        "architecture": oci_arch(),
        "os": "linux",
        "config": { "Env": ["PATH=/bin"], "Cmd": cmd, "WorkingDir": "/" },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    });
    let config =
        serde_json::to_vec(&config).map_err(|e| ImageError::Io { context: "config".into(), source: e.into() })?;
    let config_digest = format!("sha256:{}", sha256_hex(&config));
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": layer_descs,
    });
    let manifest =
        serde_json::to_vec(&manifest).map_err(|e| ImageError::Io { context: "manifest".into(), source: e.into() })?;
    let manifest_digest = format!("sha256:{}", sha256_hex(&manifest));
    let tag = name.rsplit_once(':').map(|(_, t)| t).unwrap_or("latest");
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest.len(),
            "platform": { "architecture": oci_arch(), "os": "linux" },
            "annotations": {
                "io.containerd.image.name": name,
                "org.opencontainers.image.ref.name": tag,
            },
        }],
    });
    let index = serde_json::to_vec(&index).map_err(|e| ImageError::Io { context: "index".into(), source: e.into() })?;
    blobs.push((config_digest, config));
    blobs.push((manifest_digest, manifest));

    let f = std::fs::File::create(out).map_err(io(format!("creating {}", out.display())))?;
    let mut b = tar::Builder::new(std::io::BufWriter::new(f));
    let mut add = |path: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, path, data).map_err(io(format!("archive {path}")))
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    add("index.json", &index)?;
    let mut seen = std::collections::HashSet::new();
    for (d, data) in &blobs {
        if seen.insert(d.clone()) {
            add(&format!("blobs/sha256/{}", d.trim_start_matches("sha256:")), data)?;
        }
    }
    b.into_inner().map_err(io("finishing archive"))?;
    Ok(())
}
