use conformance::systemd_guest::{ensure_image, BootOptions, Guest, Suite, SHARE_MOUNT};
use std::path::PathBuf;
use std::time::Duration;

#[test]
#[ignore = "scratch"]
fn scratch_guest() {
    let img = ensure_image(Suite::Trixie).unwrap();
    let opts = BootOptions { share: Some(PathBuf::from("/tmp/ot")), ..BootOptions::default() };
    let mut g = Guest::boot(&img, &opts).unwrap();
    let script = std::fs::read_to_string("/tmp/ot/script.sh").unwrap().replace("SHARE", SHARE_MOUNT);
    let o = g.run(&script, Duration::from_secs(1800)).unwrap();
    println!("STDOUT:\n{}\nSTDERR:\n{}\nCODE {}", o.stdout, o.stderr, o.code);
}
