//! The default model (SmolLM2-135M-Instruct Q4_1): found in the cache, or fetched on first use
//! with the project's fetch script (embedded in the binary, so there is one recipe).

use std::path::PathBuf;
use std::process::Command;

const FETCH_SCRIPT: &str = include_str!("../scripts/fetch-models.sh");
const DEFAULT_NAME: &str = "smollm2-q4_1";
const DEFAULT_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

fn cache_dir() -> PathBuf {
    if let Ok(d) = std::env::var("TSHARP_MODEL_DIR") {
        return d.into();
    }
    let base = std::env::var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| ".".into())).join(".cache"));
    base.join("tensorsharp/models")
}

/// The default model's path, fetching it (with a progress message) if it is not cached.
pub fn path() -> Result<PathBuf, String> {
    let p = cache_dir().join(DEFAULT_FILE);
    if p.with_extension("gguf.ok").exists() && p.exists() {
        return Ok(p);
    }
    eprintln!(
        "tsharp: no -m given; fetching the default model ({DEFAULT_FILE}) into {} ...",
        cache_dir().display()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(FETCH_SCRIPT)
        .arg("fetch-models.sh")
        .arg(DEFAULT_NAME)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("could not run the fetch script with bash: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "fetching the default model failed (exit {}); pass -m MODEL.gguf to use a local file",
            out.status
        ));
    }
    let printed = String::from_utf8_lossy(&out.stdout);
    let path = printed.split_whitespace().nth(1).map(PathBuf::from).unwrap_or(p);
    if !path.exists() {
        return Err(format!(
            "the fetch script reported {}, which does not exist",
            path.display()
        ));
    }
    Ok(path)
}
