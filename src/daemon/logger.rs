//! The daemon's logger: `log` records to stderr, as journald wants them when the daemon runs
//! under systemd (`JOURNAL_STREAM` set: a `<priority>` prefix per line, no timestamp: the
//! journal adds its own), otherwise with a UTC timestamp and the level.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};

struct Logger {
    journald: bool,
    level: LevelFilter,
}

impl Log for Logger {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= self.level
    }

    fn log(&self, r: &Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let mut err = std::io::stderr().lock();
        // One write per record: lines from several threads do not interleave.
        let line = if self.journald {
            // sd-daemon(3) priorities: 3 err, 4 warning, 6 info, 7 debug.
            let prio = match r.level() {
                Level::Error => 3,
                Level::Warn => 4,
                Level::Info => 6,
                Level::Debug | Level::Trace => 7,
            };
            format!("<{prio}>{}\n", r.args())
        } else {
            let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
            let (s, ms) = (t.as_secs(), t.subsec_millis());
            let (h, m, sec) = ((s / 3600) % 24, (s / 60) % 60, s % 60);
            format!("{h:02}:{m:02}:{sec:02}.{ms:03} {:<5} {}\n", r.level(), r.args())
        };
        let _ = err.write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Installs the logger; `TENSORSHARP_LOG` (error, warn, info, debug, trace) sets the level
/// (default info).
pub fn init() {
    let level = std::env::var("TENSORSHARP_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(LevelFilter::Info);
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    if log::set_logger(Box::leak(Box::new(Logger { journald, level }))).is_ok() {
        log::set_max_level(level);
    }
}
