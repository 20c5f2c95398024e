//! The failpoint builds the walks drive: the binary `env_var` names (what `make conformance`
//! installs under target/failpoints), or else one built here with the package's `failpoints`
//! feature into target/failpoints, apart from the ordinary binaries.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The path of `bin` of `package` built with its `failpoints` feature.
pub fn failpoint_binary(env_var: &str, package: &str, bin: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env_var) {
        return PathBuf::from(p);
    }
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = ws.join("target/failpoints");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let st = Command::new(cargo)
        .args(["build", "-p", package, "--features", "failpoints", "--bin", bin])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(&ws)
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build {package} with failpoints: {e}"));
    assert!(st.success(), "cargo build -p {package} --features failpoints failed");
    target.join("x86_64-unknown-linux-gnu/debug").join(bin)
}
