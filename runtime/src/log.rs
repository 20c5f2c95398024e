//! runc-compatible logging: `--log FILE` receives one line per event, as text or, with
//! `--log-format json`, as `{"level":…,"msg":…,"time":…}` (containerd's shim reads the last
//! error line from it). Errors and warnings also go to stderr.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

struct Config {
    file: Option<PathBuf>,
    format: Format,
    debug: bool,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

/// Sets up logging. The log file is created now, as runc does, so a caller that
/// passes --log always finds it.
pub fn init(file: Option<PathBuf>, format: Format, debug: bool) {
    if let Some(path) = &file {
        let _ = OpenOptions::new().create(true).append(true).open(path);
    }
    let _ = CONFIG.set(Config { file, format, debug });
}

fn emit(level: &str, msg: &str) {
    let Some(cfg) = CONFIG.get() else { return };
    let Some(path) = &cfg.file else { return };
    let time = crate::state::now_rfc3339();
    let line = match cfg.format {
        Format::Json => format!("{}\n", serde_json::json!({"level": level, "msg": msg, "time": time})),
        Format::Text => format!("time=\"{time}\" level={level} msg={msg:?}\n"),
    };
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(path) {
        let _ = f.write_all(line.as_bytes());
    }
}

pub fn error(msg: &str) {
    emit("error", msg);
    eprintln!("berth: {msg}");
}

pub fn warn(msg: &str) {
    emit("warning", msg);
    eprintln!("berth: warning: {msg}");
}

pub fn debug(msg: &str) {
    if CONFIG.get().is_some_and(|c| c.debug) {
        emit("debug", msg);
    }
}
