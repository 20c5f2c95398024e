//! Signal names and numbers as `kill` accepts them: "9", "KILL", "SIGKILL", "sigkill",
//! "SIGRTMIN+3", and 0 (no signal: `kill ID 0` checks that the process exists, as with
//! kill(1) and runc).

use std::str::FromStr;

pub fn parse(s: &str) -> Result<i32, String> {
    let bad = || format!("unknown signal {s:?}");
    if let Ok(n) = s.parse::<i32>() {
        let max = libc::SIGRTMAX();
        return if (0..=max).contains(&n) { Ok(n) } else { Err(bad()) };
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    if let Some(rest) = name.strip_prefix("SIGRTMIN") {
        let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
        let off: i32 = if rest.is_empty() { 0 } else { rest.strip_prefix('+').and_then(|r| r.parse().ok()).ok_or_else(bad)? };
        return if min + off <= max { Ok(min + off) } else { Err(bad()) };
    }
    nix::sys::signal::Signal::from_str(&name).map(|s| s as i32).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse("9"), Ok(9));
        assert_eq!(parse("KILL"), Ok(9));
        assert_eq!(parse("SIGTERM"), Ok(15));
        assert_eq!(parse("hup"), Ok(1));
        assert!(parse("FOO").is_err());
        assert!(parse("999").is_err());
        assert_eq!(parse("0"), Ok(0));
        assert!(parse("-1").is_err());
        assert!(parse("SIGRTMIN+1").is_ok());
    }
}
