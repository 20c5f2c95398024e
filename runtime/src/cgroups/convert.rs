//! Value conversions between the OCI (cgroup v1 flavoured) numbers and
//! what the cgroup files want. Pure functions, shared by both drivers.

/// pids.max for `linux.resources.pids.limit`, following runc: a positive
/// limit as is, 0 as "1" (systemd cannot express 0 and runc keeps both of
/// its drivers the same), negative as "max".
pub(crate) fn pids_max(limit: i64) -> String {
    match limit {
        l if l > 0 => l.to_string(),
        0 => "1".to_string(),
        _ => "max".to_string(),
    }
}

/// cpu.shares (2..262144, default 1024) to cpu.weight (1..10000, default
/// 100), runc's linear map. 0 means "not set".
pub(crate) fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.saturating_sub(2) * 9999) / 262_142
}

/// blkio.weight (10..1000) to io.weight (1..10000), runc's linear map.
pub(crate) fn blkio_to_io_weight(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + (u64::from(w).saturating_sub(10) * 9999) / 990
}

/// A v2 limit file value: -1 → "max", 0 → leave alone (None).
pub(crate) fn v2_limit(v: i64) -> Option<String> {
    match v {
        0 => None,
        -1 => Some("max".to_string()),
        v => Some(v.to_string()),
    }
}

/// memory.swap.max from OCI's memory+swap total `swap` and `limit`, like
/// runc: v2 limits swap alone, so it is the difference. None = leave alone.
/// Inputs are checked by validate (swap >= limit, limit set when swap is).
pub(crate) fn v2_swap_max(swap: i64, limit: i64) -> Option<String> {
    // Unlimited memory with no explicit swap means unlimited swap too.
    if limit == -1 && swap == 0 {
        return Some("max".to_string());
    }
    match swap {
        0 => None,
        -1 => Some("max".to_string()),
        s if limit > 0 => Some(s.saturating_sub(limit).max(0).to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids() {
        assert_eq!(pids_max(100), "100");
        assert_eq!(pids_max(0), "1");
        assert_eq!(pids_max(-1), "max");
        assert_eq!(pids_max(-5), "max");
    }

    #[test]
    fn shares() {
        assert_eq!(shares_to_weight(0), 0);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }

    #[test]
    fn io_weight() {
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(500), 4950);
        assert_eq!(blkio_to_io_weight(1000), 10_000);
    }

    #[test]
    fn swap() {
        assert_eq!(v2_swap_max(0, 0), None);
        assert_eq!(v2_swap_max(0, -1).as_deref(), Some("max"));
        assert_eq!(v2_swap_max(-1, 100).as_deref(), Some("max"));
        assert_eq!(v2_swap_max(300, 100).as_deref(), Some("200"));
        assert_eq!(v2_swap_max(100, 100).as_deref(), Some("0"));
        assert_eq!(v2_limit(-1).as_deref(), Some("max"));
        assert_eq!(v2_limit(0), None);
    }
}
