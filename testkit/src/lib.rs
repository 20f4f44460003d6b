//! Test support shared by every TensorSharp test suite (a dev-dependency only):
//!
//! - [`alloc`]: a counting global allocator for the zero-allocation tests;
//! - [`compare`]: cosine similarity and other comparisons of logits and vectors;
//! - [`models`]: where the test models and llama.cpp's reference outputs are, and which to run;
//! - [`cli`]: running a built binary (the `tsharp` CLI) and parsing its JSON;
//! - [`build`]: the target directory of a test and release builds into it;
//! - [`cases`]: table-driven checks that report every failing case, not only the first.
#![deny(missing_docs)]

pub mod alloc;
pub mod build;
pub mod cases;
pub mod cli;
pub mod compare;
pub mod models;
