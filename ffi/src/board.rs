//! `ts_board_profile`: the board this library detected and the defaults its profile gives
//! (what `n_threads = 0`, `n_ctx = 0` and `ram_budget = 0` in `ts_session_params` resolve to).

use std::ffi::c_char;

use tensorsharp_runtime::board;
use tensorsharp_runtime::KvType;

use crate::guard::guard;
use crate::status::{fail, from_err, ts_status, TS_ERR_INVALID_ARG, TS_OK};

/// Most pinned CPUs reported.
pub const TS_BOARD_MAX_CPUS: usize = 64;

/// The board profile (see `tensorsharp.h`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ts_board_info {
    /// Set by the caller: `sizeof(ts_board_info)`.
    pub struct_size: u32,
    /// Default threads (what `n_threads = 0` gives).
    pub n_threads: u32,
    /// Context cap (what `n_ctx = 0` gives at most).
    pub n_ctx: u32,
    /// Default KV type: 0 f16, 1 f32, 2 q8_0.
    pub kv_type: u32,
    /// The RAM budget now, bytes (what `ram_budget = 0` gives); 0: unknown.
    pub ram_budget: u64,
    /// Peak memory bandwidth, MB/s; 0: unknown.
    pub mem_bandwidth_mbs: u64,
    /// Integrated GPU's CUDA compute capability × 10 (87 for 8.7); 0: none known.
    pub cuda_cc: u32,
    /// 1 when a CUDA driver and a GPU device node are present.
    pub cuda_present: u32,
    /// CPUs the default threads are pinned to (`cpus[0..n_cpus]`); 0: unpinned.
    pub n_cpus: u32,
    /// Reserved (0).
    pub reserved: u32,
    /// The pinned CPUs.
    pub cpus: [i32; TS_BOARD_MAX_CPUS],
    /// Profile id ("rk3588"), NUL-terminated.
    pub id: [c_char; 32],
    /// Board name (device-tree model, else the profile's name), NUL-terminated, truncated.
    pub name: [c_char; 64],
    /// Kernel tier this library runs ("dotprod", "avx512", ...), NUL-terminated.
    pub tier: [c_char; 16],
}

fn copy_str<const N: usize>(dst: &mut [c_char; N], s: &str) {
    // Truncate at a character boundary, leaving room for the NUL.
    let mut end = s.len().min(N - 1);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    for (d, b) in dst
        .iter_mut()
        .zip(s.as_bytes()[..end].iter().chain(std::iter::once(&0)))
    {
        *d = *b as c_char;
    }
}

/// Fills `out` with this machine's board profile (detected once per process; the RAM budget is
/// read now).
///
/// Contract: `out` is NULL (`TS_ERR_INVALID_ARG`) or points to a writable `ts_board_info`
/// whose `struct_size` the caller set to `sizeof(ts_board_info)` (another size:
/// `TS_ERR_INVALID_ARG`, nothing written). Thread-safe; allocates only on the first call.
#[no_mangle]
pub extern "C" fn ts_board_profile(out: *mut ts_board_info) -> ts_status {
    guard(|| {
        if out.is_null() {
            return fail(TS_ERR_INVALID_ARG, "out is NULL");
        }
        // SAFETY: non-NULL and points to a caller-owned ts_board_info (contract); struct_size is
        // its first field, readable whatever size the caller's struct has.
        let size = unsafe { std::ptr::addr_of!((*out).struct_size).read() };
        if size as usize != std::mem::size_of::<ts_board_info>() {
            return fail(
                TS_ERR_INVALID_ARG,
                format!(
                    "struct_size is {size}, this library's ts_board_info has {} bytes (header and library differ)",
                    std::mem::size_of::<ts_board_info>()
                ),
            );
        }
        let host = board::host();
        let d = &host.defaults;
        let tier = match board::tier() {
            Ok(t) => t,
            Err(e) => return from_err(e),
        };
        let kv = match board::kv_type("auto") {
            Ok(KvType::F32) => 1,
            Ok(KvType::Q8_0) => 2,
            Ok(_) => 0,
            Err(e) => return from_err(e),
        };
        let mut info = ts_board_info {
            struct_size: size,
            n_threads: d.threads as u32,
            n_ctx: d.n_ctx as u32,
            kv_type: kv,
            ram_budget: host.ram_budget_now().map_or(0, |(b, _)| b),
            mem_bandwidth_mbs: d
                .profile
                .mem_bandwidth_gbs
                .map_or(0, |g| (g as f64 * 1000.0).round() as u64),
            cuda_cc: d
                .profile
                .cuda_cc
                .and_then(|cc| cc.replace('.', "").parse().ok())
                .unwrap_or(0),
            cuda_present: host.detection.gpu.cuda_present() as u32,
            n_cpus: d.cpus.len().min(TS_BOARD_MAX_CPUS) as u32,
            reserved: 0,
            cpus: [0; TS_BOARD_MAX_CPUS],
            id: [0; 32],
            name: [0; 64],
            tier: [0; 16],
        };
        for (dst, c) in info.cpus.iter_mut().zip(&d.cpus) {
            *dst = *c as i32;
        }
        copy_str(&mut info.id, d.profile.id);
        copy_str(&mut info.name, host.detection.board_name().unwrap_or(d.profile.name));
        copy_str(&mut info.tier, tier.name());
        // SAFETY: out is valid for a ts_board_info of this size (checked above).
        unsafe { out.write(info) };
        TS_OK
    })
}
