//! Id-mapped snapshots (`containerd.io/snapshot/uidmapping` and
//! `gidmapping` labels): the container's ids see the image's files as
//! their own through idmapped views, created and released with the
//! snapshot, and collected after a crash.

mod common;

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;

use berth_snapshotter::crashpoint;
use common::*;
use conformance::util::unmount_all_under;
use tonic::Code;

fn remap() -> HashMap<String, String> {
    HashMap::from([
        ("containerd.io/snapshot/uidmapping".to_string(), "0:100000:65536".to_string()),
        ("containerd.io/snapshot/gidmapping".to_string(), "0:200000:65536".to_string()),
    ])
}

fn mounts_under(p: &std::path::Path) -> usize {
    let info = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let prefix = p.to_string_lossy().into_owned();
    info.lines().filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&prefix))).count()
}

async fn base_layers(d: &mut Daemon) {
    let ms = d.prepare("l1", "").await.expect("prepare");
    {
        let m = Mounted::new(&ms, &d.work("l1"));
        fs::write(m.0.join("rootfile"), "r").expect("write");
        fs::write(m.0.join("userfile"), "u").expect("write");
        std::os::unix::fs::lchown(m.0.join("userfile"), Some(1000), Some(1001)).expect("chown");
    }
    d.commit("c1", "l1").await.expect("commit");
    let ms = d.prepare("l2", "c1").await.expect("prepare");
    {
        let m = Mounted::new(&ms, &d.work("l2"));
        fs::create_dir(m.0.join("dir")).expect("mkdir");
    }
    d.commit("c2", "l2").await.expect("commit");
}

#[tokio::test]
async fn idmapped_active_and_view_snapshots_shift_ownership() {
    let mut d = Daemon::start().await;
    base_layers(&mut d).await;
    let ms = d.prepare_labels("ctr", "c2", remap()).await.expect("prepare with idmap labels");
    assert_eq!(ms[0].r#type, "overlay");
    {
        let m = Mounted::new(&ms, &d.work("ctr"));
        let own = |p: &str| {
            let md = fs::metadata(m.0.join(p)).expect("stat");
            (md.uid(), md.gid())
        };
        assert_eq!(own(""), (100_000, 200_000), "the container's root owns its root dir");
        assert_eq!(own("rootfile"), (100_000, 200_000));
        assert_eq!(own("userfile"), (101_000, 201_001));
        assert_eq!(own("dir"), (100_000, 200_000));
        fs::write(m.0.join("dir/new"), "n").expect("write through the overlay");
    }
    // The layers themselves are untouched.
    let c1_dirs = d.dirs();
    assert!(c1_dirs.len() >= 3);
    assert!(mounts_under(&d.root.join("idmapped")) >= 2, "views of both lower layers");

    let mut labels = remap();
    labels.insert("x".into(), "y".into());
    let vm = d.view("v", "c2").await.expect("plain view");
    {
        let m = Mounted::new(&vm, &d.work("v"));
        assert_eq!(fs::metadata(m.0.join("rootfile")).expect("stat").uid(), 0, "unmapped view sees the real owner");
    }
    d.remove("ctr").await.expect("remove");
    assert_eq!(mounts_under(&d.root.join("idmapped")), 0, "views released with the snapshot");
    assert!(!d.root.join("idmapped").join("3").exists());
    // Mounts recreates views lazily (e.g. after a reboot) for a live snapshot.
    d.prepare_labels("ctr2", "c2", remap()).await.expect("prepare");
    unmount_all_under(&d.root.join("idmapped"));
    assert_eq!(mounts_under(&d.root.join("idmapped")), 0);
    let ms = d.mounts("ctr2").await.expect("mounts");
    let m = Mounted::new(&ms, &d.work("ctr2"));
    assert_eq!(fs::metadata(m.0.join("rootfile")).expect("stat").uid(), 100_000);
}

#[tokio::test]
async fn malformed_idmap_labels_are_invalid_argument() {
    let mut d = Daemon::start().await;
    base_layers(&mut d).await;
    for (u, g) in [("0:100000", "0:1:1"), ("a:b:c", "0:1:1"), ("0:1:0", "0:1:1"), ("0:4294967295:2", "0:1:1")] {
        let l = HashMap::from([
            ("containerd.io/snapshot/uidmapping".to_string(), u.to_string()),
            ("containerd.io/snapshot/gidmapping".to_string(), g.to_string()),
        ]);
        assert_eq!(code(d.prepare_labels("bad", "c2", l).await), Code::InvalidArgument, "{u}");
    }
    let only_uid = HashMap::from([("containerd.io/snapshot/uidmapping".to_string(), "0:1:1".to_string())]);
    assert_eq!(code(d.prepare_labels("bad", "c2", only_uid).await), Code::InvalidArgument);
    assert_eq!(d.dirs().len(), 2, "no directory left by refused requests: {:?}", d.dirs());
}

#[tokio::test]
async fn kill9_with_idmapped_views_in_place_is_collected_at_restart() {
    let mut d = Daemon::start().await;
    base_layers(&mut d).await;
    d.kill9();
    d.restart(vec![(crashpoint::ENV.to_string(), crashpoint::PREPARE_INSTALLED.to_string())]).await;
    assert!(d.prepare_labels("ctr", "c2", remap()).await.is_err());
    assert_eq!(d.wait_crashed().code(), None);
    assert!(mounts_under(&d.root.join("idmapped")) >= 2, "views were in place when it died");
    d.restart(Vec::new()).await;
    assert_eq!(mounts_under(&d.root.join("idmapped")), 0, "start-up cleanup released them");
    assert_eq!(code(d.stat("ctr").await), Code::NotFound);
    assert_eq!(d.dirs().len(), 2, "{:?}", d.dirs());
}
