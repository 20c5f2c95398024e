//! A `linux.seccomp` profile (JSON) -> the name checks `create` runs on the raw JSON, the
//! typed decode, and the libseccomp filter build (a fresh context per input; never loaded).
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
    }
});
