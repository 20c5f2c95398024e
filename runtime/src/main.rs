//! The `berth` binary: parse runc's command line, call the library, print.
mod cli;

fn main() {
    std::process::exit(cli::main());
}
