use berth::state::Store;

pub fn run(store: &Store, id: &str, force: bool) -> anyhow::Result<i32> {
    berth::container::delete(store, id, force)?;
    Ok(0)
}
