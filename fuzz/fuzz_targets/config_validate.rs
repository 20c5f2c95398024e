//! config.json -> what `berth create` does with a bundle before touching the system
//! (load, validate, rootfs checks, cgroup resolution): any input ends in Ok or an error.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

/// One bundle per fuzzing process, with an empty `rootfs/`; config.json is rewritten per input.
fn bundle() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("berth-fuzz-bundle-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("rootfs")).expect("bundle dir");
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let dir = bundle();
    std::fs::write(dir.join("config.json"), data).expect("write config.json");
    if berth::fuzzing::load_bundle(dir, false, false).is_ok() {
        // The other code paths a valid config takes: --no-pivot and the systemd cgroup driver.
        let _ = berth::fuzzing::load_bundle(dir, true, true);
    }
});
