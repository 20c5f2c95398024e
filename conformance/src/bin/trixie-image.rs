//! Builds (or finds in the cache) the Debian 13 guest image of conformance/src/systemd_guest.rs
//! and prints its directory: rootfs.img, vmlinuz, initrd.img. See docs/production-guest.md.

use conformance::systemd_guest::ensure_image;

fn main() -> anyhow::Result<()> {
    let img = ensure_image()?;
    if let Some(took) = img.built_in {
        eprintln!("built in {took:.1?}");
    }
    println!("{}", img.dir.display());
    Ok(())
}
