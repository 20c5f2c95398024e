//! Builds (or finds in the cache) a Debian guest image of conformance/src/systemd_guest.rs
//! and prints its directory: rootfs.img, vmlinuz, initrd.img. The argument names the suite:
//! `trixie` (the default) or `forky`. See docs/production-guest.md.

use conformance::systemd_guest::{ensure_image, Suite};

fn main() -> anyhow::Result<()> {
    let suite = match std::env::args().nth(1).as_deref() {
        None | Some("trixie") => Suite::Trixie,
        Some("forky") => Suite::Forky,
        Some(other) => anyhow::bail!("unknown suite {other:?}: trixie or forky"),
    };
    let img = ensure_image(suite)?;
    if let Some(took) = img.built_in {
        eprintln!("built in {took:.1?}");
    }
    println!("{}", img.dir.display());
    Ok(())
}
