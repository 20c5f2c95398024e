//! Container ids: the same rule as runc, so an id is always a safe single path component.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use thiserror::Error;

/// Holds the id as printable text: its bytes, with anything outside printable ASCII
/// escaped (`\xff`), so that no id can garble the one line of the error.
#[derive(Debug, Error)]
#[error(
    "invalid container id \"{0}\": an id is 1 to 1024 characters of A-Z a-z 0-9 _ + . - and is not \".\" or \"..\""
)]
pub struct InvalidId(pub String);

impl InvalidId {
    fn of(id: &[u8]) -> InvalidId {
        InvalidId(id.escape_ascii().to_string())
    }
}

/// An id from the command line, where it is bytes: one that is not UTF-8 can never be
/// valid, and is refused here with its bytes shown (the rest of the rule is `validate`'s).
pub fn from_os(id: &OsStr) -> Result<String, InvalidId> {
    id.to_str().map(str::to_string).ok_or_else(|| InvalidId::of(id.as_bytes()))
}

pub fn validate(id: &str) -> Result<(), InvalidId> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(InvalidId::of(id.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::validate;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn accepts_runc_charset_and_rejects_paths_and_dots() {
        for good in ["a", "A-b_c+d.e", "0123456789", &"x".repeat(1024)] {
            assert!(validate(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "../x", "a/b", "a b", "é", "a\0b", &"x".repeat(1025)] {
            assert!(validate(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_id_that_is_not_utf8_is_refused_with_its_bytes_shown() {
        let e = super::from_os(std::ffi::OsStr::from_bytes(b"t-\xff\n")).unwrap_err();
        assert!(e.to_string().starts_with(r#"invalid container id "t-\xff\n": "#), "{e}");
        assert_eq!(super::from_os(std::ffi::OsStr::new("ok")).unwrap(), "ok");
    }
}
