use berth::state::Store;

pub fn run(store: &Store, id: &str, signal: &str, all: bool) -> anyhow::Result<i32> {
    let sig = berth::signal::parse(signal).map_err(anyhow::Error::msg)?;
    berth::container::kill(store, id, sig, all)?;
    Ok(0)
}
