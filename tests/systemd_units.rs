//! The systemd units in `packaging/systemd/`, checked by systemd's own tools: `systemd-analyze
//! verify` on every unit (with the Jetson drop-in applied too), and the exposure score of
//! `systemd-analyze security --offline=true` for the service, held to the "OK" band or better
//! (at most 2.0). `scripts/setup.sh` installs systemd's tools.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The highest exposure score accepted ("SAFE" is below 2.0 on systemd's 0-10 scale).
const MAX_EXPOSURE: f64 = 2.0;

fn units() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/systemd")
}

/// A root tree with the units under etc/systemd/system, ExecStart pointing at the built daemon
/// (verify checks that the command exists), and the Jetson drop-in when `jetson`.
fn root_tree(name: &str, jetson: bool) -> PathBuf {
    let root = std::env::temp_dir().join(format!("tsharp-units-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let sys = root.join("etc/systemd/system");
    std::fs::create_dir_all(sys.join("tsharpd.service.d")).unwrap();
    let service = std::fs::read_to_string(units().join("tsharpd.service"))
        .unwrap()
        .replace("/usr/bin/tsharpd", env!("CARGO_BIN_EXE_tsharpd"));
    std::fs::write(sys.join("tsharpd.service"), service).unwrap();
    std::fs::copy(units().join("tsharpd.socket"), sys.join("tsharpd.socket")).unwrap();
    if jetson {
        std::fs::copy(
            units().join("tsharpd.service.d/jetson.conf"),
            sys.join("tsharpd.service.d/jetson.conf"),
        )
        .unwrap();
    }
    root
}

fn analyze(args: &[&str]) -> (bool, String, String) {
    let out = Command::new("systemd-analyze")
        .args(args)
        .output()
        .expect("systemd-analyze (scripts/setup.sh installs systemd)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_unit_verifies_cleanly() {
    for jetson in [false, true] {
        let root = root_tree(if jetson { "verify-jetson" } else { "verify" }, jetson);
        let sys = root.join("etc/systemd/system");
        let (ok, _, err) = analyze(&[
            "verify",
            "--man=no",
            sys.join("tsharpd.socket").to_str().unwrap(),
            sys.join("tsharpd.service").to_str().unwrap(),
        ]);
        // verify exits 0 on warnings such as unknown keys: any line on stderr is a failure.
        assert!(ok && err.trim().is_empty(), "jetson drop-in: {jetson}\n{err}");
        let _ = std::fs::remove_dir_all(&root);
    }
}

/// The overall exposure score `systemd-analyze security` prints for the service.
fn exposure(root: Option<&Path>, unit: &Path) -> f64 {
    let mut args = vec!["security", "--offline=true", "--no-pager"];
    let root_arg;
    if let Some(r) = root {
        root_arg = format!("--root={}", r.display());
        args.push(&root_arg);
        args.push("tsharpd.service");
    } else {
        args.push(unit.to_str().unwrap());
    }
    let (_, out, err) = analyze(&args);
    let line = out
        .lines()
        .find(|l| l.contains("Overall exposure level for tsharpd.service"))
        .unwrap_or_else(|| panic!("no exposure score:\n{out}\n{err}"));
    line.split(':')
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("unreadable score: {line}"))
}

#[test]
fn the_service_is_hardened_to_an_exposure_of_at_most_two() {
    let score = exposure(None, &units().join("tsharpd.service"));
    eprintln!("tsharpd.service exposure: {score}");
    assert!(score <= MAX_EXPOSURE, "exposure {score} > {MAX_EXPOSURE}");
    // The Jetson drop-in relaxes device access and W^X: still reported, and still bounded.
    let root = root_tree("security-jetson", true);
    let jetson = exposure(Some(&root), &root.join("etc/systemd/system/tsharpd.service"));
    eprintln!("tsharpd.service with the Jetson drop-in: {jetson}");
    assert!(
        jetson >= score,
        "the drop-in should not lower the exposure ({jetson} < {score})"
    );
    assert!(jetson <= MAX_EXPOSURE + 1.0, "Jetson exposure {jetson}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn the_packaged_configuration_checks_and_the_installer_stages_every_file() {
    let root = std::env::temp_dir().join(format!("tsharp-install-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_tsharpd")).parent().unwrap();
    let model = tensorsharp_testkit::models::default_model();
    let out = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/install-service.sh"))
        .args(["--no-build", "--jetson", "--model"])
        .arg(&model)
        .arg("--bin-dir")
        .arg(bin_dir)
        .env("DESTDIR", &root)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for f in [
        "usr/bin/tsharpd",
        "usr/bin/tsharp",
        "usr/lib/systemd/system/tsharpd.socket",
        "usr/lib/systemd/system/tsharpd.service",
        "usr/lib/systemd/system/tsharpd.service.d/jetson.conf",
        "usr/lib/sysusers.d/tensorsharp.conf",
        "etc/tensorsharp/tsharpd.toml",
    ] {
        assert!(root.join(f).is_file(), "{f} not installed");
    }
    let name = model.file_name().unwrap().to_str().unwrap();
    assert!(root.join("usr/share/tensorsharp/models").join(name).is_file());
    // The installed configuration names the installed model; checked against the staged copy.
    let cfg = std::fs::read_to_string(root.join("etc/tensorsharp/tsharpd.toml")).unwrap();
    assert!(cfg.contains(&format!("/usr/share/tensorsharp/models/{name}")), "{cfg}");
    let staged = root.join("staged.toml");
    std::fs::write(
        &staged,
        cfg.replace("/usr/share", root.join("usr/share").to_str().unwrap()),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tsharpd"))
        .arg("--check-config")
        .arg("--config")
        .arg(&staged)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("model 'default'") && text.contains("slots 4"), "{text}");
    let _ = std::fs::remove_dir_all(&root);
}
