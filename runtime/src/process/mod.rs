//! The parent⇄init handshake and the start handshake.
pub mod channel;
pub mod start;
