//! The `berth` binary: parse runc's command line, call the library, print.
#![deny(unsafe_code)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![deny(clippy::unwrap_used)]
mod cli;

fn main() {
    std::process::exit(cli::main());
}
