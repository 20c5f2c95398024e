//! Fixtures for driving berth through its real clients.
//!
//! Every test builds a [`Case`]: a private temp dir, a busybox bundle, a
//! [`Runtime`] handle with its own `--root`, a unique container id and a leak
//! snapshot. Dropping the case force-deletes what the test created and fails
//! the test if anything was left behind on the host.

pub mod bundle;
pub mod case;
pub mod console;
pub mod containerd;
pub mod cri;
pub mod docker;
pub mod failpoint_build;
pub mod guest_tests;
pub mod image;
pub mod leak;
pub mod oracle;
pub mod podman;
pub mod qemu;
pub mod rootfs;
pub mod runtime;
pub mod shim_fixture;
pub mod systemd_guest;
pub mod test_user;
pub mod util;

pub use bundle::{default_spec, Bundle};
pub use case::Case;
pub use leak::LeakSnapshot;
pub use oracle::{each_runtime, each_runtime_but};
pub use rootfs::Rootfs;
pub use runtime::{Out, Runtime};
pub use util::{poll_until, sh, sha256_file};
