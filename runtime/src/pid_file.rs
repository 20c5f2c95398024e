//! `--pid-file` (create, exec, restore): the pid written to a temporary file next to it and
//! renamed into place, so a reader sees the whole pid or no file.

use std::path::Path;

use crate::error::{Error, Result};

pub(crate) fn write(path: &Path, pid: i32) -> Result<()> {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    ));
    std::fs::write(&tmp, pid.to_string())
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| Error::io(format!("--pid-file {}", path.display()), e))
}
