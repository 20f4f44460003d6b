//! The test models (`shared/MODELS.md`, fetched by `scripts/fetch-models.sh`, and the two
//! requantized files in `shared/models`), llama.cpp's reference outputs for them, and which of
//! them a run covers.

use std::path::PathBuf;

/// Where `scripts/fetch-models.sh` caches the registry models.
pub fn model_dir() -> PathBuf {
    if let Ok(d) = std::env::var("TSHARP_MODEL_DIR") {
        return d.into();
    }
    let cache = std::env::var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache"));
    cache.join("tensorsharp/models")
}

/// `shared/models` (the requantized SmolLM2 files), from `TSHARP_SHARED_MODELS`.
pub fn shared_models_dir() -> PathBuf {
    std::env::var("TSHARP_SHARED_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/models")))
}

/// One test model, with what we know about it.
pub struct TestModel {
    /// The GGUF file.
    pub path: PathBuf,
    /// `general.architecture`.
    pub arch: &'static str,
    /// Transformer blocks.
    pub n_layers: u64,
    /// Whether gguf-py (PyPI `gguf`) can read it (it does not know ggml type 42, Q2_0).
    pub gguf_py_reads: bool,
    /// The llama.cpp reference outputs for this model (`shared/reference/<name>.json`).
    pub reference: &'static str,
}

/// `shared/reference`, from `TSHARP_REFERENCE_DIR`.
pub fn reference_dir() -> PathBuf {
    std::env::var("TSHARP_REFERENCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/reference")))
}

/// The parsed reference JSON of a model.
pub fn reference(m: &TestModel) -> serde_json::Value {
    let p = reference_dir().join(format!("{}.json", m.reference));
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

/// The five test models of shared/MODELS.md and shared/models. Panics with a hint when a
/// registry model has not been fetched.
pub fn test_models() -> Vec<TestModel> {
    let m = |dir: PathBuf, file: &str, arch, n_layers, gguf_py_reads, reference| {
        let path = dir.join(file);
        assert!(
            path.exists(),
            "{} is missing: run scripts/fetch-models.sh",
            path.display()
        );
        TestModel {
            path,
            arch,
            n_layers,
            gguf_py_reads,
            reference,
        }
    };
    vec![
        m(
            model_dir(),
            "SmolLM2-135M-Instruct.Q4_1.gguf",
            "llama",
            30,
            true,
            "smollm2-135m-q4_1",
        ),
        m(
            model_dir(),
            "gemma-3-270m-q4_k_m.gguf",
            "gemma3",
            18,
            true,
            "gemma3-270m-q4_k_m",
        ),
        m(
            model_dir(),
            "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            "qwen2",
            24,
            true,
            "qwen2.5-coder-0.5b-q4_k_m",
        ),
        m(
            shared_models_dir(),
            "SmolLM2-135M-Instruct.Q2_0.gguf",
            "llama",
            30,
            false,
            "smollm2-135m-q2_0",
        ),
        m(
            shared_models_dir(),
            "SmolLM2-135M-Instruct.Q2_K.gguf",
            "llama",
            30,
            true,
            "smollm2-135m-q2_k",
        ),
    ]
}

/// The test models named (by reference name, e.g. `smollm2-135m-q4_1`) in the comma-separated
/// `TSHARP_PARITY_MODELS`, or all of them when it is unset or empty (the aarch64 CI run under
/// qemu checks two models to keep its time down). Panics on a name that is not a test model.
pub fn parity_models() -> Vec<TestModel> {
    let all = test_models();
    let want = std::env::var("TSHARP_PARITY_MODELS").unwrap_or_default();
    let names: Vec<&str> = want.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    if names.is_empty() {
        return all;
    }
    for n in &names {
        assert!(
            all.iter().any(|m| m.reference == *n),
            "TSHARP_PARITY_MODELS: {n} is not a test model ({:?})",
            all.iter().map(|m| m.reference).collect::<Vec<_>>()
        );
    }
    all.into_iter().filter(|m| names.contains(&m.reference)).collect()
}

/// A JSON list of token ids.
pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// The default model (SmolLM2-135M-Instruct Q4_1) in the fetch cache; panics with a hint when
/// it has not been fetched.
pub fn default_model() -> PathBuf {
    let p = model_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(p.exists(), "{} is missing: run scripts/fetch-models.sh", p.display());
    p
}
