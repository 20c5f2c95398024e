//! Facts of the host that reading cgroup files depends on.

/// USER_HZ, the unit of cpuacct.stat (sysconf(_SC_CLK_TCK); 100 if it cannot be had).
pub fn clock_ticks_per_second() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(hz)) if hz > 0 => hz.unsigned_abs(),
        _ => 100,
    }
}

/// Clock ticks (USER_HZ) to nanoseconds.
pub fn ticks_to_ns(ticks: u64) -> u64 {
    ticks.saturating_mul(1_000_000_000 / clock_ticks_per_second())
}

/// Huge page sizes of this host as the hugetlb controller's files name them ("2MB", "1GB"),
/// sorted as strings.
pub fn hugepage_sizes() -> Vec<String> {
    let Ok(rd) = std::fs::read_dir("/sys/kernel/mm/hugepages") else {
        return Vec::new();
    };
    let mut out: Vec<String> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let kb: u64 = name.strip_prefix("hugepages-")?.strip_suffix("kB")?.parse().ok()?;
            Some(page_size_name(kb))
        })
        .collect();
    out.sort();
    out
}

/// A size in kB as the hugetlb files spell it.
fn page_size_name(kb: u64) -> String {
    if kb >= 1 << 20 {
        format!("{}GB", kb >> 20)
    } else if kb >= 1 << 10 {
        format!("{}MB", kb >> 10)
    } else {
        format!("{kb}KB")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_are_named_like_the_hugetlb_files() {
        assert_eq!(page_size_name(2048), "2MB");
        assert_eq!(page_size_name(1_048_576), "1GB");
        assert_eq!(page_size_name(64), "64KB");
    }

    #[test]
    fn clock_ticks() {
        let hz = clock_ticks_per_second();
        assert!(hz > 0);
        assert_eq!(ticks_to_ns(3), 3 * (1_000_000_000 / hz));
    }
}
