//! A new container's bundle (`create`, `restore`): its config.json loaded and checked for
//! everything that can be checked before the system is touched, where its cgroup goes, and
//! the first record of a container made from it.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use crate::cgroups::{self, Manager};
use crate::error::{Error, Result};
use crate::state::Record;
use crate::{log, rootfs, spec};

/// A bundle checked for everything that can be checked before the system is touched.
pub(crate) struct Bundle {
    pub(crate) dir: PathBuf,
    pub(crate) spec: Spec,
    pub(crate) rootfs: PathBuf,
    pub(crate) resources: oci_spec::runtime::LinuxResources,
}

/// Loads and validates the bundle of a new container `id` (create and restore), and
/// resolves where its cgroup goes.
pub(crate) fn load(
    id: &str,
    bundle: &Path,
    no_pivot: bool,
    systemd_cgroup: bool,
) -> Result<(Bundle, Box<dyn Manager>)> {
    crate::id::validate(id)?;
    let dir = std::fs::canonicalize(bundle).map_err(|e| Error::Usage(format!("bundle {}: {e}", bundle.display())))?;
    let loaded = spec::load(&dir)?;
    for w in &loaded.warnings {
        log::warn(w);
    }
    let spec: Spec = loaded.spec;
    let validated = spec::validate(&spec, &dir)?;
    rootfs::validate(&spec, &dir)?;
    if no_pivot {
        rootfs::validate_no_pivot(&spec)?;
    }
    let linux = spec.linux().as_ref().ok_or_else(|| Error::Usage("linux: missing".into()))?;
    let cgroups_path = linux.cgroups_path().as_ref().map(|p| p.to_string_lossy().into_owned());
    let cgroup = cgroups::open(id, cgroups_path.as_deref(), systemd_cgroup)?;
    let mut resources = spec::cgroup_resources(&spec);
    cgroup.validate(&resources)?;
    if crate::rootless::active() {
        resources = crate::rootless::check_resources(&resources, &|c| cgroup.dir_for(c).is_some())?;
        if let Some(adj) = spec.process().as_ref().and_then(|p| p.oom_score_adj()) {
            crate::rootless::check_oom_score_adj(adj).map_err(Error::Usage)?;
        }
        // Neither a cgroup nor a pid namespace holds the container's processes together:
        // `kill --all` and `delete --force` reach only those berth can name (runc warns too).
        let own_pid_ns = spec::namespace_types(&spec).contains(&oci_spec::runtime::LinuxNamespaceType::Pid);
        if cgroup.dirs().hierarchies().is_empty() && !own_pid_ns {
            log::warn(
                "Creating a rootless container with no cgroup and no private pid namespace. Such configuration is \
                 strongly discouraged (as it is impossible to properly kill all container's processes)",
            );
        }
    }
    Ok((Bundle { dir, spec, rootfs: validated.rootfs, resources }, cgroup))
}

impl Bundle {
    /// The record of container `id` made from this bundle, whose cgroup exists but which
    /// has no init yet.
    pub(crate) fn initial_record(&self, id: &str, cgroup: &dyn Manager) -> Result<Record> {
        let spec = &self.spec;
        Ok(Record {
            id: id.to_string(),
            pid: 0,
            init_start_time: 0,
            bundle: self.dir.clone(),
            rootfs: self.rootfs.clone(),
            created: crate::state::now_rfc3339(),
            owner: owner(),
            annotations: spec.annotations().clone().unwrap_or_default(),
            cgroup: cgroup.state(),
            hooks: spec.hooks().clone(),
            resources: Some({
                let mut r = self.resources.clone();
                r.set_devices(None);
                r
            }),
            rootfs_mount: None,
            process: spec.process().clone(),
            seccomp: spec.linux().as_ref().and_then(|l| l.seccomp().clone()),
            personality: spec.linux().as_ref().and_then(|l| l.personality().clone()),
            shared_pid_ns: !spec.linux().as_ref().and_then(|l| l.namespaces().as_ref()).is_some_and(|nss| {
                nss.iter().any(|ns| ns.typ() == oci_spec::runtime::LinuxNamespaceType::Pid && ns.path().is_none())
            }),
        })
    }
}

fn owner() -> String {
    let uid = nix::unistd::getuid().as_raw();
    if uid == 0 {
        "root".into()
    } else {
        uid.to_string()
    }
}
