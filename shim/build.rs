// The shim runs once per pod: link it non-PIE so its relocated read-only data (vtables,
// protobuf tables) stays clean, shared page cache instead of private dirty pages per shim.
fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
}
