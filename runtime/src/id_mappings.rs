//! uid/gid mappings: validating `uidMappings`/`gidMappings` (of `linux` or of a mount) and
//! writing them into a process's `uid_map`/`gid_map` through the host's procfs.

use std::io::Write;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use oci_spec::runtime::LinuxIdMapping;
use thiserror::Error;

/// A map (or setgroups) file of a process that could not be written: a kernel failure,
/// the maps having been validated before.
#[derive(Debug, Error)]
pub enum MapError {
    #[error("{field}: opening /proc/{path}: {source}")]
    Open { field: &'static str, path: String, source: Errno },
    #[error("{field}: writing /proc/{path}: {source}")]
    Write { field: &'static str, path: String, source: std::io::Error },
    #[error(
        "{field}: rootless: mapping ids other than your own needs {helper} (Debian: uidmap) and ranges \
         for you in /etc/sub{kind}: running it: {source}"
    )]
    HelperMissing { field: &'static str, helper: &'static str, kind: &'static str, source: std::io::Error },
    #[error("{field}: {helper} refused the map (are these ids yours in /etc/sub{kind}?): {stderr}")]
    Helper { field: &'static str, helper: &'static str, kind: &'static str, stderr: String },
}

/// The kernel accepts at most this many lines in a map.
const MAX_LINES: usize = 340;

/// Checks one map: non-empty entries, no zero size, no u32 overflow, no overlap on either
/// side (the kernel refuses overlaps with a bare EINVAL). `field` is e.g. "linux.uidMappings".
pub fn validate(field: &str, maps: &[LinuxIdMapping]) -> Result<(), String> {
    if maps.len() > MAX_LINES {
        return Err(format!("{field}: {} entries, the kernel accepts at most {MAX_LINES}", maps.len()));
    }
    for (i, m) in maps.iter().enumerate() {
        if m.size() == 0 {
            return Err(format!("{field}[{i}].size: must not be 0"));
        }
        if m.container_id().checked_add(m.size() - 1).is_none() {
            return Err(format!(
                "{field}[{i}]: containerID {} + size {} overflows 32 bits",
                m.container_id(),
                m.size()
            ));
        }
        if m.host_id().checked_add(m.size() - 1).is_none() {
            return Err(format!("{field}[{i}]: hostID {} + size {} overflows 32 bits", m.host_id(), m.size()));
        }
        for (j, o) in maps.iter().enumerate().take(i) {
            let overlap = |a: u32, b: u32| a <= b + (o.size() - 1) && b <= a + (m.size() - 1);
            if overlap(m.container_id(), o.container_id()) || overlap(m.host_id(), o.host_id()) {
                return Err(format!("{field}[{i}] overlaps {field}[{j}]"));
            }
        }
    }
    Ok(())
}

/// Whether `id` inside is covered by the map.
pub fn maps_id(maps: &[LinuxIdMapping], id: u32) -> bool {
    maps.iter().any(|m| id >= m.container_id() && id - m.container_id() < m.size())
}

/// The text of a uid_map/gid_map file.
pub fn format(maps: &[LinuxIdMapping]) -> String {
    maps.iter().map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size())).collect()
}

/// Writes `<pid>/uid_map` and `<pid>/gid_map` (one write each, as the kernel requires),
/// opened beneath a verified host procfs. Like runc, `setgroups` is set to "deny" first
/// only when we lack CAP_SETGID: the kernel then accepts a gid map only that way.
///
/// Without CAP_SETUID (CAP_SETGID) a process may only map its own id, once: a map with more
/// (a rootless config with the user's subordinate ids) is handed to the setuid helpers
/// newuidmap and newgidmap, which check it against /etc/subuid and /etc/subgid, as runc
/// does. newgidmap leaves setgroups allowed.
pub fn write(pid: i32, uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> Result<(), MapError> {
    let has = |c| caps::has_cap(None, caps::CapSet::Effective, c).unwrap_or(false);
    let only_own = |maps: &[LinuxIdMapping], own: u32| matches!(maps, [m] if m.size() == 1 && m.host_id() == own);
    let gid_helper = !has(caps::Capability::CAP_SETGID) && !only_own(gid, nix::unistd::getegid().as_raw());
    let uid_helper = !has(caps::Capability::CAP_SETUID) && !only_own(uid, nix::unistd::geteuid().as_raw());
    if !has(caps::Capability::CAP_SETGID) && !gid_helper {
        write_proc(pid, "setgroups", "linux.gidMappings", "deny")?;
    }
    if uid_helper {
        run_helper(pid, "newuidmap", "uid", "linux.uidMappings", uid)?;
    } else {
        write_proc(pid, "uid_map", "linux.uidMappings", &format(uid))?;
    }
    if gid_helper {
        run_helper(pid, "newgidmap", "gid", "linux.gidMappings", gid)
    } else {
        write_proc(pid, "gid_map", "linux.gidMappings", &format(gid))
    }
}

/// `newuidmap <pid> <inside> <outside> <count>...` (or newgidmap), found in PATH.
fn run_helper(
    pid: i32,
    helper: &'static str,
    kind: &'static str,
    field: &'static str,
    maps: &[LinuxIdMapping],
) -> Result<(), MapError> {
    let mut cmd = std::process::Command::new(helper);
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.args([m.container_id().to_string(), m.host_id().to_string(), m.size().to_string()]);
    }
    let out = cmd.output().map_err(|source| MapError::HelperMissing { field, helper, kind, source })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    Err(MapError::Helper { field, helper, kind, stderr: format!("{} ({stderr})", out.status) })
}

fn write_proc(pid: i32, file: &str, field: &'static str, text: &str) -> Result<(), MapError> {
    let path = format!("{pid}/{file}");
    let fd = match crate::rootfs::resolve::open_proc_beneath(Path::new(&path), OFlag::O_WRONLY) {
        Ok(fd) => fd,
        Err(source) => return Err(MapError::Open { field, path, source }),
    };
    std::fs::File::from(fd).write_all(text.as_bytes()).map_err(|source| MapError::Write { field, path, source })
}

/// Parses a uid_map/gid_map file into sorted (inside, outside, count) triples.
fn parse_map(text: &str) -> Vec<(u32, u32, u32)> {
    let mut out: Vec<(u32, u32, u32)> = text
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace().map(|n| n.parse::<u32>());
            match (w.next(), w.next(), w.next()) {
                (Some(Ok(a)), Some(Ok(b)), Some(Ok(c))) => Some((a, b, c)),
                _ => None,
            }
        })
        .collect();
    out.sort_unstable();
    out
}

fn triples(maps: &[LinuxIdMapping]) -> Vec<(u32, u32, u32)> {
    let mut out: Vec<_> = maps.iter().map(|m| (m.container_id(), m.host_id(), m.size())).collect();
    out.sort_unstable();
    out
}

/// The uid and gid maps of the user namespace at `path`, as the host sees them: a
/// short-lived child joins it and we read its map files.
fn maps_of(path: &Path) -> Result<(String, String), String> {
    use crate::sys::{self, Forked};
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let ns = crate::namespaces::open_checked(oci_spec::runtime::LinuxNamespaceType::User, path)
        .map_err(|e| e.to_string())?;
    let same = |a: &std::fs::Metadata, b: &std::fs::Metadata| (a.dev(), a.ino()) == (b.dev(), b.ino());
    if let (Ok(theirs), Ok(ours)) = (
        std::fs::File::from(ns.try_clone().map_err(|e| e.to_string())?).metadata(),
        std::fs::metadata("/proc/self/ns/user"),
    ) {
        // The kernel refuses to "join" the namespace one is already in.
        if same(&theirs, &ours) {
            let read =
                |f: &str| std::fs::read_to_string(format!("/proc/self/{f}")).map_err(|e| format!("reading {f}: {e}"));
            return Ok((read("uid_map")?, read("gid_map")?));
        }
    }
    let (rd, wr) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    let (pid, pidfd) = match sys::clone3_fork(0, None).map_err(|e| format!("clone3: {e}"))? {
        Forked::Child => {
            drop(rd);
            // Die with `berth create` if it dies first.
            let _ = sys::kill_with_parent();
            if nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWUSER).is_ok() {
                let _ = nix::unistd::write(&wr, b"1");
            }
            drop(wr);
            loop {
                // Wait for the SIGKILL that ends this helper.
                nix::unistd::pause();
            }
        }
        Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    drop(wr);
    let mut byte = [0u8; 1];
    let joined = matches!(nix::unistd::read(&rd, &mut byte), Ok(1));
    let read =
        |f: &str| std::fs::read_to_string(format!("/proc/{pid}/{f}")).map_err(|e| format!("reading its {f}: {e}"));
    let result = if joined {
        read("uid_map").and_then(|u| read("gid_map").map(|g| (u, g)))
    } else {
        Err(format!("cannot join the user namespace {}", path.display()))
    };
    let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
    let _ = nix::sys::wait::waitid(nix::sys::wait::Id::PIDFd(pidfd.as_fd()), nix::sys::wait::WaitPidFlag::WEXITED);
    result
}

/// For a user namespace joined by path: mappings given in the config must be exactly the
/// namespace's own (runc checks the same). Returns the field and what differs.
pub fn check_joined(path: &Path, uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> Result<(), (String, String)> {
    if uid.is_empty() && gid.is_empty() {
        return Ok(());
    }
    let (u, g) = maps_of(path).map_err(|m| ("linux.uidMappings".to_string(), m))?;
    for (field, given, actual) in [("linux.uidMappings", uid, u), ("linux.gidMappings", gid, g)] {
        if triples(given) != parse_map(&actual) {
            return Err((
                field.to_string(),
                format!(
                    "do not match those of the user namespace {} ({})",
                    path.display(),
                    actual.split_whitespace().collect::<Vec<_>>().join(" ")
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(c: u32, h: u32, s: u32) -> LinuxIdMapping {
        oci_spec::runtime::LinuxIdMappingBuilder::default().container_id(c).host_id(h).size(s).build().unwrap()
    }

    #[test]
    fn bad_maps_are_refused_naming_the_entry() {
        assert!(validate("u", &[m(0, 100000, 65536)]).is_ok());
        assert!(validate("u", &[m(0, 1000, 1), m(1, 100000, 10)]).is_ok());
        assert!(validate("u", &[m(0, 1, 0)]).unwrap_err().contains("u[0].size"));
        assert!(validate("u", &[m(0, u32::MAX, 2)]).unwrap_err().contains("hostID"));
        assert!(validate("u", &[m(0, 1000, 10), m(5, 5000, 10)]).unwrap_err().contains("u[1] overlaps u[0]"));
        assert!(validate("u", &[m(0, 1000, 10), m(50, 1005, 1)]).unwrap_err().contains("overlaps"));
        assert!(maps_id(&[m(0, 1000, 10)], 9));
        assert!(!maps_id(&[m(1, 1000, 10)], 0));
    }
}
