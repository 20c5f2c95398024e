//! The commands that only print: state, spec, features.

use std::path::Path;

use anyhow::Context;
use berth::state::Store;

pub fn state(store: &Store, id: &str) -> anyhow::Result<i32> {
    println!("{}", berth::container::state(store, id)?);
    Ok(0)
}

pub fn spec(bundle: &Path, rootless: bool) -> anyhow::Result<i32> {
    let path = bundle.join("config.json");
    if path.exists() {
        anyhow::bail!("File {} exists. Remove it first", path.display());
    }
    let text = serde_json::to_string_pretty(&berth::spec_template::default_spec(rootless))?;
    std::fs::write(&path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    Ok(0)
}

pub fn features() -> anyhow::Result<i32> {
    println!("{}", serde_json::to_string_pretty(&berth::features::features())?);
    Ok(0)
}
