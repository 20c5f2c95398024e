//! berth: an OCI runtime whose command line is runc's.
pub mod cgroups;
