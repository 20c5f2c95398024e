//! A `linux.seccomp` profile (JSON) -> the name checks `create` runs on the raw JSON, the
//! typed decode, the libseccomp filter build (a fresh context per input; never loaded), and
//! the user-space evaluation of the built program the init asks before its madvise.
#![no_main]

use berth::seccomp::{check_names, Filter};
use libfuzzer_sys::fuzz_target;
use oci_spec::runtime::LinuxSeccomp;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if check_names(&value).is_err() {
        return;
    }
    let Ok(profile) = serde_json::from_value::<LinuxSeccomp>(value) else {
        return;
    };
    if let Ok(filter) = Filter::build(&profile) {
        let _ = filter.notifies();
        // The input's own bytes as arguments, so that argument conditions are taken both ways.
        let mut args = [0u64; 6];
        for (i, chunk) in data.chunks(8).take(6).enumerate() {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            args[i] = u64::from_le_bytes(word);
        }
        for nr in [libc::SYS_madvise, libc::SYS_mkdir, libc::SYS_clone] {
            let _ = filter.allows(nr, args);
        }
    }
});
