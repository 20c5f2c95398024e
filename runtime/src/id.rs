//! Container ids: the same rule as runc, so an id is always a safe single path component.

use thiserror::Error;

#[derive(Debug, Error)]
#[error("invalid container id {0:?}: an id is 1 to 1024 characters of A-Z a-z 0-9 _ + . - and is not \".\" or \"..\"")]
pub struct InvalidId(pub String);

pub fn validate(id: &str) -> Result<(), InvalidId> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(InvalidId(id.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn accepts_runc_charset_and_rejects_paths_and_dots() {
        for good in ["a", "A-b_c+d.e", "0123456789", &"x".repeat(1024)] {
            assert!(validate(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "../x", "a/b", "a b", "é", "a\0b", &"x".repeat(1025)] {
            assert!(validate(bad).is_err(), "{bad:?}");
        }
    }
}
