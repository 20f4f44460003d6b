//! The service under a real systemd: a Debian root (`scripts/nspawn-root.sh`, debootstrap) boots
//! in `systemd-nspawn` with the built binaries, the packaging files and the default model bound
//! in read-only; `packaging/install-service.sh` installs the service inside as a user would, and
//! the test checks socket activation on the first connection, `systemctl is-active` after
//! READY, a restart after the watchdog is missed (the daemon SIGSTOPped), the hardening in effect
//! on the running process (seccomp, no new privileges, a non-root uid, read-only /usr) and a
//! clean stop. Needs root (nspawn); elsewhere it says so and passes without checking.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A booted container; powered off and reaped on drop.
struct Machine {
    nspawn: Child,
    pid1: u32,
    log: PathBuf,
}

impl Machine {
    fn boot(root: &Path, name: &str, binds: &[(PathBuf, &str)]) -> Machine {
        let log = std::env::temp_dir().join(format!("{name}.console"));
        let mut cmd = Command::new("systemd-nspawn");
        cmd.args(["-D"]).arg(root).args([
            "-b",
            "--register=no",
            "--keep-unit",
            "--console=pipe",
            "--volatile=overlay",
            "-M",
            name,
        ]);
        for (host, guest) in binds {
            cmd.arg(format!("--bind-ro={}:{guest}", host.display()));
        }
        let nspawn = cmd
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("systemd-nspawn (scripts/setup.sh installs systemd-container)");
        let t0 = Instant::now();
        let pid1 = loop {
            let out = Command::new("pgrep")
                .args(["-P", &nspawn.id().to_string(), "-x", "systemd"])
                .output()
                .unwrap();
            if let Some(p) = String::from_utf8_lossy(&out.stdout).split_whitespace().next() {
                break p.parse().unwrap();
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "the container's systemd did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let m = Machine { nspawn, pid1, log };
        // Booted: the system manager reached its default target (degraded is fine: a minimal
        // root lacks units that expect hardware).
        let t0 = Instant::now();
        loop {
            let state = m.sh("systemctl is-system-running --wait || true");
            if state.contains("running") || state.contains("degraded") {
                break;
            }
            // Until PID 1 has opened its control socket, systemctl cannot connect yet.
            assert!(t0.elapsed() < Duration::from_secs(60), "boot: {state}\n{}", m.console());
            std::thread::sleep(Duration::from_millis(100));
        }
        m
    }

    /// Runs a shell command inside (all namespaces of PID 1); its stdout, stderr appended.
    fn sh(&self, script: &str) -> String {
        let out = Command::new("nsenter")
            .args(["-t", &self.pid1.to_string(), "-a", "/bin/sh", "-c", script])
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Like `sh`, failing the test on a non-zero exit.
    fn ok(&self, script: &str) -> String {
        let out = Command::new("nsenter")
            .args(["-t", &self.pid1.to_string(), "-a", "/bin/sh", "-c", script])
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "`{script}` failed:\n{text}");
        text
    }

    fn console(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `script` prints `want` (trimmed), for at most `secs`.
    fn wait_for(&self, script: &str, want: &str, secs: u64) -> String {
        let t0 = Instant::now();
        loop {
            let got = self.sh(script);
            if got.trim() == want {
                return got;
            }
            if t0.elapsed() > Duration::from_secs(secs) {
                panic!(
                    "`{script}`: {got:?} after {secs} s, not {want:?}\n{}",
                    self.sh("journalctl --sync; journalctl -u tsharpd.service -u tsharpd.socket --no-pager | tail -40")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        let _ = Command::new("nsenter")
            .args(["-t", &self.pid1.to_string(), "-a", "systemctl", "exit", "0"])
            .output();
        let t0 = Instant::now();
        while self.nspawn.try_wait().ok().flatten().is_none() {
            if t0.elapsed() > Duration::from_secs(20) {
                let _ = self.nspawn.kill();
                let _ = self.nspawn.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn main_pid(m: &Machine) -> u32 {
    m.ok("systemctl show -p MainPID --value tsharpd.service")
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn the_service_runs_under_a_real_systemd() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: booting systemd-nspawn needs root");
        return;
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(repo.join("scripts/nspawn-root.sh")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let root = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_tsharpd")).parent().unwrap().to_path_buf();
    let model = tensorsharp_testkit::models::default_model();
    let name = format!("tsharp-boot-{}", std::process::id());
    let m = Machine::boot(
        &root,
        &name,
        &[
            (repo.join("packaging"), "/opt/tensorsharp/packaging"),
            (bin_dir, "/opt/tensorsharp/bin"),
            (model.parent().unwrap().to_path_buf(), "/opt/tensorsharp/models"),
        ],
    );
    let model_name = model.file_name().unwrap().to_str().unwrap();
    // Installed as a user would (the installer expects the repository layout around it).
    m.ok(&format!(
        "mkdir -p /tmp/repo && ln -s /opt/tensorsharp/packaging /tmp/repo/packaging && \
         /tmp/repo/packaging/install-service.sh --no-build --no-jetson --bin-dir /opt/tensorsharp/bin \
         --model /opt/tensorsharp/models/{model_name}"
    ));
    // A short watchdog for the test, so a missed one shows within seconds.
    m.ok("mkdir -p /etc/systemd/system/tsharpd.service.d && \
          printf '[Service]\\nWatchdogSec=3s\\nRestartSec=1s\\n' > /etc/systemd/system/tsharpd.service.d/test.conf && \
          systemctl daemon-reload");
    assert!(m
        .ok("cat /etc/systemd/system/tsharpd.service.d/memory.conf")
        .contains("MemoryMax="));
    // Socket activation: listening, the service not started until the first connection.
    m.wait_for("systemctl is-active tsharpd.socket", "active", 10);
    assert_eq!(m.sh("systemctl is-active tsharpd.service").trim(), "inactive");
    let reply = m.ok("tsharp ask --socket /run/tensorsharp/tsharpd.sock -n 6 --temp 0 'The capital of France is'");
    assert!(!reply.trim().is_empty(), "no reply");
    eprintln!("socket-activated reply: {:?}", reply.trim());
    m.wait_for("systemctl is-active tsharpd.service", "active", 30);
    let status = m.ok("systemctl show -p StatusText --value tsharpd.service");
    assert!(status.contains("serving"), "StatusText: {status}");
    // Hardening in effect on the running process.
    let pid = main_pid(&m);
    let proc_status = m.ok(&format!("cat /proc/{pid}/status"));
    let field = |k: &str| {
        proc_status
            .lines()
            .find(|l| l.starts_with(k))
            .map(|l| l[k.len()..].trim().to_string())
            .unwrap_or_default()
    };
    assert_eq!(field("Seccomp:"), "2", "seccomp filter mode\n{proc_status}");
    assert_eq!(field("NoNewPrivs:"), "1");
    let uid: u32 = field("Uid:").split_whitespace().next().unwrap().parse().unwrap();
    assert_ne!(uid, 0, "runs as root");
    assert_eq!(field("CapEff:"), "0000000000000000");
    let ro = m.sh(&format!(
        "nsenter -t {pid} -m sh -c 'touch /usr/tsharp-probe' 2>&1; echo rc=$?"
    ));
    assert!(ro.contains("Read-only file system"), "/usr writable: {ro}");
    // A missed watchdog: the stopped daemon is killed and the service restarted.
    let restarts = |m: &Machine| -> u32 {
        m.ok("systemctl show -p NRestarts --value tsharpd.service")
            .trim()
            .parse()
            .unwrap()
    };
    let before = restarts(&m);
    m.ok(&format!("kill -STOP {pid}"));
    let t0 = Instant::now();
    while restarts(&m) == before {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no restart after a missed watchdog:\n{}",
            m.sh("journalctl --sync; journalctl -u tsharpd.service --no-pager | tail -20")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    m.wait_for("systemctl is-active tsharpd.service", "active", 30);
    assert_ne!(main_pid(&m), pid, "the same process after a restart");
    eprintln!(
        "uid {uid}, seccomp on, no capabilities, /usr read-only; watchdog missed: restarted in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let journal = m.sh("journalctl --sync; journalctl -u tsharpd.service --no-pager");
    assert!(journal.contains("watchdog"), "{journal}");
    // Serves again, then a clean stop.
    m.ok("tsharp ask --socket /run/tensorsharp/tsharpd.sock -n 4 --temp 0 'Hello'");
    m.ok("systemctl stop tsharpd.service");
    assert_eq!(m.sh("systemctl is-active tsharpd.service").trim(), "inactive");
    assert_eq!(
        m.ok("systemctl show -p Result --value tsharpd.service").trim(),
        "success"
    );
    let journal = m.sh("journalctl --sync; journalctl -u tsharpd.service --no-pager");
    assert!(journal.contains("stopped"), "{journal}");
}
