//! Any byte string as a GGUF file: the reader returns a typed error or a file whose every
//! tensor lies inside the data, and the architecture spec and tokenizer built from an accepted
//! file do not panic either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tensorsharp_models::{GgufFile, ModelSpec};

fuzz_target!(|data: &[u8]| {
    let Ok(f) = GgufFile::from_bytes(data.to_vec()) else {
        return;
    };
    for t in f.tensors() {
        // Every accepted tensor's bytes are inside the file.
        let bytes = f.data_of(t).expect("an accepted tensor has its data");
        assert!(bytes.len() as u64 <= f.len());
    }
    let _ = ModelSpec::from_gguf(&f);
    let _ = tensorsharp_runtime::Tokenizer::from_gguf(&f);
});
