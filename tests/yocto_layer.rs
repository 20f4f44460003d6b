//! The Yocto layer (`yocto/meta-tensorsharp`): the recipe's crate list is what
//! `bitbake -c update_crates tensorsharp` would write from the committed Cargo.lock files
//! (`scripts/yocto-crates.py --check`), every crate of Cargo.lock is in it with its checksum,
//! and `oelint-adv --release wrynose` finds nothing in any recipe (`scripts/setup.sh` installs
//! it).

use std::path::Path;
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_crate_list_is_current_and_covers_cargo_lock() {
    let out = Command::new("python3")
        .arg(repo().join("scripts/yocto-crates.py"))
        .arg("--check")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Independently of the generator: each registry package of Cargo.lock, with its checksum.
    let inc =
        std::fs::read_to_string(repo().join("yocto/meta-tensorsharp/recipes-ai/tensorsharp/tensorsharp-crates.inc"))
            .unwrap();
    let lock = std::fs::read_to_string(repo().join("Cargo.lock")).unwrap();
    let mut n = 0;
    for pkg in lock.split("[[package]]").skip(1) {
        let field = |k: &str| {
            pkg.lines()
                .find_map(|l| l.strip_prefix(&format!("{k} = \"")))
                .map(|v| v.trim_end_matches('"').to_string())
        };
        let (Some(name), Some(version), Some(sum)) = (field("name"), field("version"), field("checksum")) else {
            continue; // a workspace member
        };
        assert!(
            inc.contains(&format!("crate://crates.io/{name}/{version} \\")),
            "{name} {version} missing"
        );
        assert!(
            inc.contains(&format!("SRC_URI[{name}-{version}.sha256sum] = \"{sum}\"")),
            "{name} {version}: checksum"
        );
        n += 1;
    }
    assert!(n > 100, "only {n} registry crates in Cargo.lock?");
}

#[test]
fn oelint_adv_finds_nothing() {
    let layer = repo().join("yocto/meta-tensorsharp");
    let mut recipes = Vec::new();
    for group in std::fs::read_dir(layer.join("recipes-ai")).unwrap() {
        for f in std::fs::read_dir(group.unwrap().path()).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_some_and(|e| e == "bb") {
                recipes.push(p);
            }
        }
    }
    assert!(recipes.len() >= 3, "{recipes:?}");
    let out = Command::new("oelint-adv")
        .args(["--quiet", "--release", "wrynose"])
        // The generated crate list is written as update_crates writes it (`SRC_URI += " \`), as
        // OE-Core's own generated lists are; the homepage check needs the network; no recipe
        // here has a native variant worth building.
        .args([
            "--suppress",
            "oelint.vars.inconspaces",
            "--suppress",
            "oelint.vars.notneededspace",
            "--suppress",
            "oelint.vars.homepageping",
            "--suppress",
            "oelint.var.bbclassextend",
        ])
        .args(&recipes)
        .output()
        .expect("oelint-adv (scripts/setup.sh installs it)");
    let findings: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&out.stderr).lines())
        .filter(|l| l.contains(":error:") || l.contains(":warning:") || l.contains(":info:"))
        .map(str::to_string)
        .collect();
    assert!(findings.is_empty(), "oelint-adv:\n{}", findings.join("\n"));
}
