use std::io::Read;
use std::path::Path;

use anyhow::Context;
use berth::state::Store;

/// `update --resources <file|->`: the LinuxResources JSON (what containerd's shim sends on stdin).
pub fn run(store: &Store, id: &str, resources: Option<&Path>) -> anyhow::Result<i32> {
    let Some(path) = resources else {
        anyhow::bail!("update: only --resources (-r) is supported by berth yet");
    };
    let mut data = Vec::new();
    if path == Path::new("-") {
        std::io::stdin().take(1 << 20).read_to_end(&mut data).context("--resources -: reading stdin")?;
    } else {
        data = std::fs::read(path).with_context(|| format!("--resources {}", path.display()))?;
    }
    let res: oci_spec::runtime::LinuxResources =
        serde_json::from_slice(&data).with_context(|| format!("--resources {}: not LinuxResources JSON", path.display()))?;
    berth::container::update(store, id, res)?;
    Ok(0)
}
