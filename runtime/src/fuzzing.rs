//! Entry points for the fuzz targets in `fuzz/` (not an API): each calls exactly what the
//! runtime itself calls, so a fuzzer input exercises the real code path.

use std::path::Path;

/// What `create` (and `restore`) does with a bundle before touching the system: load and
/// validate `<bundle>/config.json` and resolve the container's cgroup. Any input must end
/// in `Ok` or an error, never a panic.
pub fn load_bundle(bundle: &Path, no_pivot: bool, systemd_cgroup: bool) -> crate::error::Result<()> {
    crate::bundle::load("fuzz", bundle, no_pivot, systemd_cgroup).map(|_| ())
}

/// What the systemd driver does with the bytes the bus sends: split them into messages and
/// decode each one's header, an error's text, a job path, a JobRemoved signal. Any input
/// must end in a count of whole messages, never a panic. Returns that count.
pub fn dbus_messages(bytes: &[u8]) -> usize {
    crate::cgroups::decode_bus_messages(bytes)
}
