//! TensorSharp board detection and profiles.
//!
//! Not built yet: board detection (device tree, /proc, /sys, HWCAP, cgroups) and per-board
//! profiles land with the board issue. Nothing is exported until then.
