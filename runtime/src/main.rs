fn main() {
    println!("berth {}", env!("CARGO_PKG_VERSION"));
}
