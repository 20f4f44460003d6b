//! systemd's service notification protocol (`sd_notify(3)`), spoken directly: datagrams of
//! `KEY=VALUE` lines to the `AF_UNIX` socket named by `NOTIFY_SOCKET` (a path, or `@name` in the
//! abstract namespace). Without `NOTIFY_SOCKET` (not started by systemd, or `Type=simple`) every
//! call does nothing. The watchdog interval comes from `WATCHDOG_USEC` (for this process only:
//! `WATCHDOG_PID`, when set, must be ours).
//!
//! What the daemon sends: `STATUS=` while it loads each model and `EXTEND_TIMEOUT_USEC=` before
//! each load (a large model on an SD card may take longer than `TimeoutStartSec`), `READY=1` once
//! every model is loaded and has run a warm-up pass, `WATCHDOG=1` from the main loop while every
//! model's scheduler has finished a turn within the interval (a kernel that hangs stops the pings
//! and systemd restarts the service), `STOPPING=1` when a SIGTERM starts the drain.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// The connection to systemd's notification socket, if there is one.
pub struct Notifier {
    sock: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// From `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`. The variables are removed from
    /// the environment afterwards, so that child processes do not notify in our name.
    pub fn from_env() -> Notifier {
        let sock = std::env::var_os("NOTIFY_SOCKET").and_then(|p| {
            let p = p.to_string_lossy().into_owned();
            let addr = match p.strip_prefix('@') {
                Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
                None => SocketAddr::from_pathname(&p),
            };
            match (addr, UnixDatagram::unbound()) {
                (Ok(a), Ok(s)) => Some((s, a)),
                (Err(e), _) | (_, Err(e)) => {
                    log::warn!("NOTIFY_SOCKET={p}: {e}; not notifying systemd");
                    None
                }
            }
        });
        let ours = std::env::var("WATCHDOG_PID")
            .ok()
            .is_none_or(|p| p.trim().parse::<u32>().ok() == Some(std::process::id()));
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&us| us > 0 && ours)
            .map(Duration::from_micros);
        for v in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
            // SAFETY: called from main before any other thread starts (nothing reads the
            // environment concurrently).
            unsafe { std::env::remove_var(v) };
        }
        Notifier { sock, watchdog }
    }

    /// Whether systemd listens.
    pub fn enabled(&self) -> bool {
        self.sock.is_some()
    }

    /// The watchdog interval systemd expects pings within (`WatchdogSec=`), if any.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog.filter(|_| self.enabled())
    }

    /// Sends `state` (newline-separated `KEY=VALUE` lines); a failure is logged, not fatal.
    pub fn send(&self, state: &str) {
        if let Some((s, a)) = &self.sock {
            if let Err(e) = s.send_to_addr(state.as_bytes(), a) {
                log::warn!("sd_notify {:?}: {e}", state.lines().next().unwrap_or(""));
            }
        }
    }

    /// `STATUS=` (one line of free text shown by `systemctl status`).
    pub fn status(&self, text: &str) {
        if self.enabled() {
            self.send(&format!("STATUS={}", text.replace('\n', " ")));
        }
    }
}
