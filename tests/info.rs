//! `tsharp info` on the five real test models: architecture, layer count, and every tensor's
//! type, shape and byte size — checked against gguf-py (llama.cpp's reference reader) where it
//! can read the file, and against the file's own layout (consecutive, aligned offsets) always.

mod common;

use std::process::{Child, Command, Stdio};

use serde_json::Value;

fn tsharp_info_json(path: &std::path::Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_tsharp"))
        .arg("info")
        .arg("--json")
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tsharp info {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Starts gguf-py on a file (seconds per model: it parses every vocabulary string in Python), so
/// the files are read side by side while `tsharp info` runs; `gguf_py` collects the result.
fn spawn_gguf_py(path: &std::path::Path) -> Child {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/gguf_py_tensors.py");
    Command::new("python3")
        .arg(script)
        .arg(path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (installed by scripts/setup.sh)")
}

fn gguf_py(path: &std::path::Path, child: Child) -> Value {
    let out = child.wait_with_output().expect("gguf-py");
    assert!(
        out.status.success(),
        "gguf-py on {}: {} (install it with scripts/setup.sh)",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn info_reports_architecture_layers_and_every_tensor() {
    let models = common::test_models();
    let mut readers: Vec<Option<Child>> = models
        .iter()
        .map(|m| m.gguf_py_reads.then(|| spawn_gguf_py(&m.path)))
        .collect();
    for (m, reader) in models.iter().zip(readers.iter_mut()) {
        let j = tsharp_info_json(&m.path);
        let name = m.path.display();
        assert_eq!(j["architecture"], m.arch, "{name}");
        assert_eq!(j["hyperparameters"]["n_layers"], m.n_layers, "{name}");
        let tensors = j["tensors"].as_array().unwrap();
        assert!(!tensors.is_empty());

        // 1. The file's own layout: sorted by offset, each tensor's data ends before the next
        //    one starts, and the gap is only alignment padding. So every byte size is pinned by
        //    the file, independently of our type table.
        let align = j["alignment"].as_u64().unwrap();
        let mut by_off: Vec<(u64, u64, &str)> = tensors
            .iter()
            .map(|t| {
                (
                    t["offset"].as_u64().unwrap(),
                    t["bytes"].as_u64().unwrap(),
                    t["name"].as_str().unwrap(),
                )
            })
            .collect();
        by_off.sort();
        assert_eq!(by_off[0].0, j["data_offset"].as_u64().unwrap(), "{name}");
        for w in by_off.windows(2) {
            let end = w[0].0 + w[0].1;
            assert!(
                end <= w[1].0 && w[1].0 - end < align,
                "{name}: {} ends at {end}, {} starts at {}",
                w[0].2,
                w[1].2,
                w[1].0
            );
        }
        let last = by_off.last().unwrap();
        let file_bytes = j["file_bytes"].as_u64().unwrap();
        assert!(
            last.0 + last.1 <= file_bytes && file_bytes - (last.0 + last.1) < align,
            "{name}: trailing bytes"
        );
        let total: u64 = tensors.iter().map(|t| t["bytes"].as_u64().unwrap()).sum();
        assert_eq!(j["tensor_bytes"].as_u64().unwrap(), total);

        // 2. gguf-py, tensor by tensor.
        if let Some(child) = reader.take() {
            let py = gguf_py(&m.path, child);
            assert_eq!(py["architecture"], m.arch);
            let pts = py["tensors"].as_array().unwrap();
            assert_eq!(pts.len(), tensors.len(), "{name}");
            for (ours, theirs) in tensors.iter().zip(pts) {
                assert_eq!(ours["name"], theirs["name"], "{name}");
                assert_eq!(ours["type_id"], theirs["type_id"], "{name} {}", ours["name"]);
                assert_eq!(ours["type"], theirs["type"], "{name} {}", ours["name"]);
                assert_eq!(ours["shape"], theirs["shape"], "{name} {}", ours["name"]);
                assert_eq!(ours["bytes"], theirs["bytes"], "{name} {}", ours["name"]);
                assert_eq!(ours["offset"], theirs["offset"], "{name} {}", ours["name"]);
            }
        } else {
            // Q2_0: every quantized matrix is type 42 with 18-byte blocks of 64.
            let q2: Vec<&Value> = tensors.iter().filter(|t| t["type"] == "Q2_0").collect();
            assert_eq!(q2.len(), 210, "{name}");
            for t in q2 {
                let shape: Vec<u64> = t["shape"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_u64().unwrap())
                    .collect();
                assert_eq!(t["type_id"], 42);
                assert_eq!(
                    t["bytes"].as_u64().unwrap(),
                    shape[0] / 64 * 18 * shape[1..].iter().product::<u64>()
                );
            }
        }
    }
}

#[test]
fn info_text_mode_lists_every_tensor_and_bad_files_fail_cleanly() {
    let m = &common::test_models()[0];
    let out = Command::new(env!("CARGO_BIN_EXE_tsharp"))
        .arg("info")
        .arg(&m.path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("architecture:  llama"));
    assert!(text.contains("blk.29.ffn_down.weight"));
    assert!(text.contains("tensors (272):"));

    let dir = std::env::temp_dir().join(format!("tsharp-info-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bytes = std::fs::read(&m.path).unwrap();
    for (label, data) in [
        ("empty", vec![]),
        ("text", b"hello world".to_vec()),
        ("truncated", bytes[..1 << 20].to_vec()),
    ] {
        let p = dir.join(format!("{label}.gguf"));
        std::fs::write(&p, &data).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_tsharp"))
            .arg("info")
            .arg(&p)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{label}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("tsharp: error: ") && !err.contains("panicked"),
            "{label}: {err}"
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_tsharp"))
        .arg("info")
        .arg(dir.join("missing.gguf"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    std::fs::remove_dir_all(&dir).unwrap();
}
