//! TensorSharp C ABI.
//!
//! Not built yet: `libtensorsharp`, `tensorsharp.h` and pkg-config land with the C ABI issue.
//! Nothing is exported until then.
