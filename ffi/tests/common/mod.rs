//! What the C-ABI tests share (from `tensorsharp-testkit`).
#![allow(dead_code, unused_imports)]

pub use tensorsharp_testkit::build::built_artifact;

/// The SmolLM2 Q4_1 test model in the fetch cache.
pub fn model_path() -> std::path::PathBuf {
    tensorsharp_testkit::models::default_model()
}
