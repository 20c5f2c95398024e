//! ps, pause, resume, events and update: parsing and printing only.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::Context;
use berth::state::Store;

/// Prints one result; a closed stdout (`| head`) is not an error worth a panic.
fn emit(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

pub fn ps(store: &Store, id: &str, format: &str, args: &[String]) -> anyhow::Result<i32> {
    if format == "json" {
        if !args.is_empty() {
            anyhow::bail!("ps args cannot be used with --format json");
        }
        let pids = berth::ps::pids(store, id)?;
        // runc encodes an empty list as null.
        let text = if pids.is_empty() { "null".to_string() } else { serde_json::to_string(&pids)? };
        emit(&format!("{text}\n"))?;
        return Ok(0);
    }
    emit(&berth::ps::table(store, id, args)?)?;
    Ok(0)
}

pub fn events(store: &Store, id: &str, stats: bool, interval: &str) -> anyhow::Result<i32> {
    if stats {
        emit(&format!("{}\n", berth::events::stats(store, id)?))?;
        return Ok(0);
    }
    let interval = berth::events::parse_duration(interval).map_err(|e| anyhow::anyhow!("--interval: {e}"))?;
    if interval.is_zero() {
        anyhow::bail!("--interval: duration interval must be greater than 0");
    }
    let mut out = std::io::stdout().lock();
    berth::events::stream(store, id, interval, &mut out)?;
    out.flush().ok();
    Ok(0)
}

pub fn update(store: &Store, id: &str, resources: Option<&Path>, flags: &berth::update::Flags) -> anyhow::Result<i32> {
    // Like runc: with --resources, the other flags are ignored.
    let change = match resources {
        Some(p) => {
            let mut bytes = Vec::new();
            if p == Path::new("-") {
                std::io::stdin().read_to_end(&mut bytes).context("--resources: reading stdin")?;
            } else {
                bytes = std::fs::read(p).with_context(|| format!("--resources {}", p.display()))?;
            }
            berth::update::resources_from_json(&bytes)?
        }
        None => berth::update::resources_from_flags(flags)?,
    };
    berth::update::update(store, id, &change)?;
    Ok(0)
}
