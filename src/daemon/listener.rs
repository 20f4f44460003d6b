//! The listening socket: inherited from systemd (`LISTEN_FDS`), or bound at a path with the
//! configured mode after a stale socket file from a crashed run is detected and replaced (a
//! live one is left alone); and the peer check (`SO_PEERCRED`).

use std::io::ErrorKind;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};

/// The first descriptor systemd passes (sd_listen_fds(3)).
const SD_LISTEN_FDS_START: i32 = 3;

/// A listening socket and, when the daemon bound it, the path to remove at exit.
pub struct Listener {
    /// The socket.
    pub socket: UnixListener,
    /// The file the daemon created (`None`: socket-activated).
    pub path: Option<PathBuf>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The socket systemd passed, if `LISTEN_PID` is this process and `LISTEN_FDS` is at least 1
/// (the variables are removed so children do not inherit them).
fn inherited() -> Result<Option<UnixListener>, String> {
    let pid = std::env::var("LISTEN_PID").ok();
    let fds = std::env::var("LISTEN_FDS").ok();
    let (Some(pid), Some(fds)) = (pid, fds) else {
        return Ok(None);
    };
    if pid.parse::<u32>().ok() != Some(std::process::id()) {
        return Ok(None);
    }
    // SAFETY: single-threaded start-up: no other thread reads the environment meanwhile.
    unsafe {
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_FDNAMES");
    }
    let n: i32 = fds.parse().map_err(|_| format!("LISTEN_FDS={fds}: not a number"))?;
    if n < 1 {
        return Ok(None);
    }
    if n > 1 {
        log::warn!("LISTEN_FDS={n}: using the first socket only");
    }
    // SAFETY: systemd passes fd 3 open and owned by this process (sd_listen_fds(3)); nothing
    // else in the process uses it.
    let socket = unsafe { UnixListener::from_raw_fd(SD_LISTEN_FDS_START) };
    let kind = getsockopt(&socket, nix::sys::socket::sockopt::SockType)
        .map_err(|e| format!("the inherited descriptor {SD_LISTEN_FDS_START} is not a socket: {e}"))?;
    if kind != nix::sys::socket::SockType::Stream {
        return Err(format!("the inherited socket is {kind:?}, not a stream socket"));
    }
    Ok(Some(socket))
}

/// The listening socket: inherited, else bound at `path` with `mode`.
pub fn open(path: &Path, mode: u32) -> Result<Listener, String> {
    if let Some(socket) = inherited()? {
        log::info!("listening on the socket systemd passed");
        return Ok(Listener { socket, path: None });
    }
    if let Some(dir) = path.parent() {
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            // Reachable by the socket's group, not by others.
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750));
        }
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => match UnixStream::connect(path) {
            Ok(_) => {
                return Err(format!(
                    "{}: another daemon is listening there (stop it, or give --socket)",
                    path.display()
                ))
            }
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                log::info!("{}: removing the stale socket of a run that ended", path.display());
                std::fs::remove_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
            }
            Err(e) => return Err(format!("{}: {e}", path.display())),
        },
        Ok(_) => {
            return Err(format!(
                "{}: exists and is not a socket; not replacing it",
                path.display()
            ))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{}: {e}", path.display())),
    }
    // The mode is set before anyone can connect: bind under a umask that leaves only `mode`.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(!mode & 0o777));
    let bound = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let socket = bound.map_err(|e| format!("{}: {e}", path.display()))?;
    log::info!("listening on {} (mode {:o})", path.display(), mode);
    Ok(Listener {
        socket,
        path: Some(path.to_path_buf()),
    })
}

/// The peer's credentials as text, and whether it may connect: root, the daemon's own uid, or
/// (when the lists are not both empty) a uid or primary gid they name; with both lists empty,
/// whoever the socket file's mode let in.
pub fn check_peer(stream: &UnixStream, uids: &[u32], gids: &[u32]) -> (String, bool) {
    match getsockopt(stream, PeerCredentials) {
        Ok(c) => {
            let who = format!("pid {} uid {} gid {}", c.pid(), c.uid(), c.gid());
            let me = nix::unistd::geteuid().as_raw();
            let ok = (uids.is_empty() && gids.is_empty())
                || c.uid() == 0
                || c.uid() == me
                || uids.contains(&c.uid())
                || gids.contains(&c.gid());
            (who, ok)
        }
        Err(e) => (format!("fd {} (no credentials: {e})", stream.as_raw_fd()), false),
    }
}
