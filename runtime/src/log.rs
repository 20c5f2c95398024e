//! runc-compatible logging: `--log FILE` receives one line per event, as text or, with
//! `--log-format json`, as `{"level":…,"msg":…,"time":…}` (containerd's shim reads the last
//! error line from it). Errors and warnings also go to stderr, and so do debug lines
//! (`--debug`) when there is no `--log`.

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

fn line(format: Format, level: &str, msg: &str) -> String {
    let time = crate::state::now_rfc3339();
    match format {
        Format::Json => format!("{}\n", serde_json::json!({"level": level, "msg": msg, "time": time})),
        Format::Text => format!("time=\"{time}\" level={level} msg={msg:?}\n"),
    }
}

fn emit(level: &str, msg: &str) {
    let Some(cfg) = CONFIG.get() else { return };
    let Some(path) = &cfg.file else { return };
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(path) {
        let _ = f.write_all(line(cfg.format, level, msg).as_bytes());
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

/// With `--debug`: to the log file, or without `--log` to stderr (runc's logrus default),
/// in the `--log-format`.
pub fn debug(msg: &str) {
    let Some(cfg) = CONFIG.get().filter(|c| c.debug) else { return };
    if cfg.file.is_some() {
        emit("debug", msg);
    } else {
        let _ = std::io::stderr().write_all(line(cfg.format, "debug", msg).as_bytes());
    }
}
