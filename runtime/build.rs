// The order of the runtime's functions in its text (runtime/text-order.txt, written by
// scripts/text-order.sh from a trace of `berth create`): the functions a command runs are
// laid out together, so the kernel's fault-around (64 KiB around each page a process
// faults in) maps the code that runs instead of whatever shares its 64 KiB windows.
// `create`'s peak RSS is mostly text pages mapped that way. docs/performance.md, memory.
fn main() {
    let order = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("text-order.txt");
    println!("cargo:rerun-if-changed={}", order.display());
    println!("cargo:rerun-if-env-changed=BERTH_LINK_MAP");
    // Only optimized builds are laid out; a debug build's symbols are other ones.
    if std::env::var("PROFILE").as_deref() == Ok("release") && order.exists() {
        println!("cargo:rustc-link-arg-bin=berth=-Wl,--symbol-ordering-file={}", order.display());
        // Symbols a build does not have (another toolchain's hashes, code since removed)
        // are skipped; scripts/text-order.sh --check counts them.
        println!("cargo:rustc-link-arg-bin=berth=-Wl,--no-warn-symbol-ordering");
    }
    // berth starts at berth_sys::early_exec: a command that enters a container re-executes
    // from a read-only view of the binary before the C library's start-up runs for nothing.
    // That code runs before the binary has relocated itself, so it may call nothing; only
    // the optimized build (one LTO unit, no call left in it) keeps that promise: a debug
    // build would call core's helpers through the unrelocated GOT.
    if std::env::var("PROFILE").as_deref() == Ok("release")
        && std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86_64")
    {
        println!("cargo:rustc-link-arg-bin=berth=-Wl,-e,berth_entry");
    }
    // scripts/text-order.sh asks for the link map to name the code a trace ran.
    if let Ok(map) = std::env::var("BERTH_LINK_MAP") {
        println!("cargo:rustc-link-arg-bin=berth=-Wl,-Map={map}");
        println!("cargo:rustc-link-arg-bin=berth=-Wl,--no-demangle");
    }
}
