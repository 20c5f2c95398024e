//! berth-snapshotter: containerd's Snapshots service over overlayfs, with
//! metadata in redb. The binary (`main.rs`) only parses flags and calls
//! [`server::run`].

#![deny(unsafe_code)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![deny(clippy::unwrap_used)]

pub mod cleanup;
pub mod client;
pub mod crashpoint;
pub mod error;
pub mod filters;
pub mod idmapped_layers;
pub mod incoming;
pub mod layout;
pub mod mounts;
pub mod server;
pub mod service;
pub mod snapshotter;
pub mod store;

/// Generated from containerd's API definitions; the package paths are
/// containerd's so the gRPC method paths match what containerd calls.
pub mod proto {
    pub mod containerd {
        pub mod types {
            tonic::include_proto!("containerd.types");
        }
        pub mod services {
            pub mod snapshots {
                pub mod v1 {
                    tonic::include_proto!("containerd.services.snapshots.v1");
                }
            }
        }
    }
    pub use containerd::services::snapshots::v1 as snapshots;
    pub use containerd::types::Mount;
}
