//! Fixtures for driving berth through its real clients.
pub mod shim_fixture;
