// The shim runs once per pod: link it non-PIE so its relocated read-only data (vtables,
// protobuf tables) stays clean, shared page cache instead of private dirty pages per shim.
// With crt-static (the workspace's .cargo/config.toml) rustc asks for -static-pie; adding
// -no-pie alone then yields a static binary with an interpreter that crashes, so a plain
// -static non-PIE link is requested instead.
fn main() {
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    println!("cargo:rustc-link-arg-bins=-no-pie");
    if features.split(',').any(|f| f == "crt-static") {
        println!("cargo:rustc-link-arg-bins=-static");
    }
}
