//! TensorSharp runtime.
//!
//! Not built yet: this crate will hold the arena, memory plan, executor, KV cache, sampler,
//! tokenizer and session (see `DESIGN.md`). It deliberately exposes nothing until those exist,
//! so that nothing can depend on a pretend implementation.
