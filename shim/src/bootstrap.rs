//! What `start` prints for containerd: the shim's address, in the form the calling
//! containerd understands.
//!
//! containerd 1.6 reads stdout as a bare address and speaks task API v2. containerd 1.7 also
//! accepts bootstrap parameters as JSON (`{"version":2,"address":…,"protocol":"ttrpc"}`) but
//! refuses a version above 2. containerd 2.x accepts version 3 and then speaks task API v3
//! (`containerd.task.v3.Task`); given a bare address it falls back to v2. The shim serves
//! both APIs, so the only question is which one to announce, and containerd says nothing of
//! its own version to a shim (`MAX_SHIM_VERSION` is 2 in 1.7 and 2.x alike). It does name its
//! own binary (`-publish-binary`), whose `--version` does: a 2.x containerd is built from the
//! Go module `github.com/containerd/containerd/v2`.

use std::process::{Command, Stdio};

/// Set by containerd 1.7 and later for every shim command (never by 1.6).
const MAX_SHIM_VERSION_ENV: &str = "MAX_SHIM_VERSION";

/// The reply to `start` for the containerd whose binary is `publish_binary`: JSON bootstrap
/// parameters with task API v3 for containerd 2.x, else the bare address (v2), which every
/// containerd since 1.2 reads.
pub fn reply(address: &str, publish_binary: &str) -> String {
    let modern = std::env::var_os(MAX_SHIM_VERSION_ENV).is_some()
        && !publish_binary.is_empty()
        && containerd_major(publish_binary).is_some_and(|m| m >= 2);
    if modern {
        serde_json::json!({"version": 3, "address": address, "protocol": "ttrpc"}).to_string()
    } else {
        address.to_string()
    }
}

/// The major version of the containerd binary at `path`, from its `--version` line. Any
/// failure (not found, not containerd, unparsable) is `None`: the caller then announces v2,
/// which containerd 2.x still speaks.
fn containerd_major(path: &str) -> Option<u64> {
    let out = Command::new(path)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .env_remove(MAX_SHIM_VERSION_ENV)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    major_of(&String::from_utf8_lossy(&out.stdout))
}

/// `containerd <go module> <version> <revision>`: the module's `/vN` suffix (2.x and later),
/// else the version's leading number (distributions prefix nothing, release builds a `v`).
fn major_of(line: &str) -> Option<u64> {
    let mut words = line.split_whitespace();
    if words.next()? != "containerd" {
        return None;
    }
    let module = words.next()?;
    if let Some(n) = module.rsplit_once("/v").and_then(|(_, n)| n.parse().ok()) {
        return Some(n);
    }
    let version = words.next()?.trim_start_matches('v');
    version.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containerd_versions_as_debian_and_upstream_print_them() {
        // Debian 12, 13 and forky's packages, and upstream release builds.
        let cases = [
            ("containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3", Some(1)),
            ("containerd github.com/containerd/containerd 1.7.24~ds1 1.7.24~ds1-6+b4", Some(1)),
            ("containerd github.com/containerd/containerd/v2 2.1.9~ds1 2.1.9~ds1-1", Some(2)),
            ("containerd containerd.io v1.7.27 05044ec0a9a75232cad458027ca83437aae3f4da", Some(1)),
            ("containerd containerd.io v2.1.4 75cb2b7193e4e490e9fbdc236c0e811ccaba3376", Some(2)),
            ("containerd github.com/containerd/containerd/v3 3.0.0 abc", Some(3)),
            ("runc version 1.1.5", None),
            ("", None),
        ];
        for (line, want) in cases {
            assert_eq!(major_of(line), want, "{line:?}");
        }
    }

    #[test]
    fn without_a_publish_binary_the_reply_is_the_bare_address() {
        assert_eq!(reply("unix:///run/containerd/s/abc", ""), "unix:///run/containerd/s/abc");
        assert_eq!(reply("unix:///run/containerd/s/abc", "/nonexistent/containerd"), "unix:///run/containerd/s/abc");
    }
}
