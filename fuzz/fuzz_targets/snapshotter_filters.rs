//! containerd filter strings (as `List` receives them, one per line) -> the snapshotter's
//! parser, then matching against a few records.
#![no_main]

use std::collections::BTreeMap;

use berth_snapshotter::filters::Filters;
use berth_snapshotter::store::{Kind, Record};
use libfuzzer_sys::fuzz_target;

fn record(kind: Kind, parent: &str, labels: &[(&str, &str)]) -> Record {
    Record {
        id: 1,
        kind,
        parent: parent.to_string(),
        labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        created: 0,
        updated: 0,
        size: 0,
        inodes: 0,
    }
}

fuzz_target!(|data: &[u8]| {
    // gRPC strings are UTF-8: anything else never reaches the parser.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let filters: Vec<&str> = text.split('\n').collect();
    let Ok(parsed) = Filters::parse(&filters) else {
        return;
    };
    let records = [
        record(Kind::Committed, "", &[]),
        record(Kind::Active, "sha256:abc", &[("containerd.io/snapshot.ref", "x"), ("a.b/c", "ü")]),
        record(Kind::View, "p", &[("", ""), ("labels", "labels")]),
    ];
    for (i, r) in records.iter().enumerate() {
        let _ = parsed.matches(["k8s.io/1/x", "", "ü"][i], r);
    }
});
