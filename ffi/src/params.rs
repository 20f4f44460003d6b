//! The params structs of the C ABI, their default-constructors, and their conversion into the
//! runtime's settings (every field checked).

use tensorsharp_runtime::{KvType, LockMode, SamplerParams, SessionParams, WeightsMode};

use crate::guard::guard;
use crate::status::{fail, ts_status, TS_ERR_INVALID_ARG, TS_OK};

/// Model load parameters.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ts_model_params {
    /// `sizeof(ts_model_params)`.
    pub struct_size: u32,
    /// `TS_MODEL_*` bits; 0: the weights are read into resident huge-page memory.
    pub flags: u32,
    /// Bytes of weights to hold in RAM (resident matrices and the staging ring); the rest is
    /// streamed from the file while decoding. 0: every weight in RAM. Not with `TS_MODEL_MMAP`.
    pub weights_ram_budget: u64,
}

/// `ts_model_params.flags`: map the model file instead of reading it into huge-page memory
/// (instant load, pages shared with other processes, slower decode).
pub const TS_MODEL_MMAP: u32 = 1;

/// Session parameters.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ts_session_params {
    /// `sizeof(ts_session_params)`.
    pub struct_size: u32,
    /// Context length; 0: the model's, at most the board profile's.
    pub n_ctx: u32,
    /// Prompt tokens per prefill chunk.
    pub n_batch: u32,
    /// Threads, the caller included; 0: the board profile's (one per big core, pinned to them
    /// on a big.LITTLE board unless `cpus` is set).
    pub n_threads: u32,
    /// 0: f16, 1: f32, 2: q8_0.
    pub kv_type: u32,
    /// 0: off, 1: lock (warn if not permitted), 2: lock or fail.
    pub mlock: u32,
    /// RAM budget in bytes for the whole plan; 0: the board profile's share of the cgroup limit
    /// or MemAvailable.
    pub ram_budget: u64,
    /// CPUs to pin the threads to (thread i on cpus[i % n_cpus]); NULL / 0: unpinned.
    pub cpus: *const i32,
    /// Entries in `cpus`.
    pub n_cpus: u32,
    /// SCHED_FIFO priority 1..99 for the threads (degrades with a logged warning when not
    /// permitted); 0: normal scheduling.
    pub rt_priority: i32,
}

/// Sampler parameters.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ts_sampler_params {
    /// `sizeof(ts_sampler_params)`.
    pub struct_size: u32,
    /// Top-k (0: off).
    pub top_k: u32,
    /// Temperature (0: greedy).
    pub temperature: f32,
    /// Top-p (1: off).
    pub top_p: f32,
    /// Min-p (0: off).
    pub min_p: f32,
    /// Repetition penalty (1: off).
    pub repeat_penalty: f32,
    /// Presence penalty (0: off).
    pub presence_penalty: f32,
    /// Frequency penalty (0: off).
    pub frequency_penalty: f32,
    /// Tokens the penalties look back over.
    pub penalty_last_n: u32,
    /// Reserved, 0.
    pub reserved: u32,
    /// Random seed.
    pub seed: u64,
}

/// Fills `p` with defaults (sets `struct_size`).
///
/// Contract: `p` is NULL (`TS_ERR_INVALID_ARG`) or points to a writable `ts_model_params`.
#[no_mangle]
pub extern "C" fn ts_model_params_default(p: *mut ts_model_params) -> ts_status {
    guard(|| {
        if p.is_null() {
            return fail(TS_ERR_INVALID_ARG, "p is NULL");
        }
        // SAFETY: non-NULL, caller-owned struct of this type.
        unsafe {
            p.write(ts_model_params {
                struct_size: std::mem::size_of::<ts_model_params>() as u32,
                flags: 0,
                weights_ram_budget: 0,
            })
        };
        TS_OK
    })
}

/// Fills `p` with defaults.
///
/// Contract: `p` is NULL (`TS_ERR_INVALID_ARG`) or points to a writable `ts_session_params`.
#[no_mangle]
pub extern "C" fn ts_session_params_default(p: *mut ts_session_params) -> ts_status {
    guard(|| {
        if p.is_null() {
            return fail(TS_ERR_INVALID_ARG, "p is NULL");
        }
        let d = SessionParams::default();
        // SAFETY: non-NULL, caller-owned struct of this type.
        unsafe {
            p.write(ts_session_params {
                struct_size: std::mem::size_of::<ts_session_params>() as u32,
                n_ctx: d.n_ctx as u32,
                n_batch: d.n_batch as u32,
                n_threads: d.n_threads as u32,
                kv_type: 0,
                mlock: 0,
                ram_budget: 0,
                cpus: std::ptr::null(),
                n_cpus: 0,
                rt_priority: 0,
            })
        };
        TS_OK
    })
}

/// Fills `p` with defaults (greedy).
///
/// Contract: `p` is NULL (`TS_ERR_INVALID_ARG`) or points to a writable `ts_sampler_params`.
#[no_mangle]
pub extern "C" fn ts_sampler_params_default(p: *mut ts_sampler_params) -> ts_status {
    guard(|| {
        if p.is_null() {
            return fail(TS_ERR_INVALID_ARG, "p is NULL");
        }
        let g = SamplerParams::greedy();
        // SAFETY: non-NULL, caller-owned struct of this type.
        unsafe {
            p.write(ts_sampler_params {
                struct_size: std::mem::size_of::<ts_sampler_params>() as u32,
                top_k: g.top_k as u32,
                temperature: g.temperature,
                top_p: g.top_p,
                min_p: g.min_p,
                repeat_penalty: g.repeat_penalty,
                presence_penalty: g.presence_penalty,
                frequency_penalty: g.frequency_penalty,
                penalty_last_n: g.penalty_last_n as u32,
                reserved: 0,
                seed: g.seed,
            })
        };
        TS_OK
    })
}

/// The weights placement `params` asks for (NULL: the default).
pub(crate) fn weights_mode(params: *const ts_model_params) -> Result<WeightsMode, ts_status> {
    if params.is_null() {
        return Ok(WeightsMode::Resident);
    }
    check_struct_size(params, "ts_model_params")?;
    // SAFETY: non-NULL and of the checked size by contract.
    let flags = unsafe { (*params).flags };
    if flags & !TS_MODEL_MMAP != 0 {
        return Err(fail(
            TS_ERR_INVALID_ARG,
            format!("unknown ts_model_params.flags bits {flags:#x}"),
        ));
    }
    // SAFETY: as above.
    let budget = unsafe { (*params).weights_ram_budget };
    Ok(match (flags & TS_MODEL_MMAP != 0, budget) {
        (true, 0) => WeightsMode::Mapped,
        (true, _) => {
            return Err(fail(
                TS_ERR_INVALID_ARG,
                "ts_model_params: weights_ram_budget streams weights read into RAM; it cannot be combined with TS_MODEL_MMAP",
            ))
        }
        (false, 0) => WeightsMode::Resident,
        (false, b) => WeightsMode::Budget(b),
    })
}

/// The session settings `params` asks for (NULL: the defaults). Ranges the runtime checks
/// (context, batch, threads, CPUs, priority) are left to it.
pub(crate) fn session_params(params: *const ts_session_params) -> Result<SessionParams, ts_status> {
    let mut p = SessionParams::default();
    if params.is_null() {
        return Ok(p);
    }
    check_struct_size(params, "ts_session_params")?;
    // SAFETY: non-NULL and of the right size.
    let c = unsafe { *params };
    p.n_ctx = c.n_ctx as usize;
    p.n_batch = c.n_batch as usize;
    p.n_threads = c.n_threads as usize;
    p.kv_type = match c.kv_type {
        0 => KvType::F16,
        1 => KvType::F32,
        2 => KvType::Q8_0,
        k => return Err(fail(TS_ERR_INVALID_ARG, format!("kv_type {k} (0 f16, 1 f32, 2 q8_0)"))),
    };
    p.mlock = match c.mlock {
        0 => LockMode::Off,
        1 => LockMode::Try,
        2 => LockMode::Required,
        k => {
            return Err(fail(
                TS_ERR_INVALID_ARG,
                format!("mlock {k} (0 off, 1 try, 2 required)"),
            ))
        }
    };
    p.ram_budget = (c.ram_budget != 0).then_some(c.ram_budget);
    if c.n_cpus > 0 {
        if c.cpus.is_null() || c.n_cpus > 4096 {
            return Err(fail(TS_ERR_INVALID_ARG, "cpus is NULL or n_cpus > 4096"));
        }
        // SAFETY: non-NULL and readable for n_cpus entries by contract.
        let cpus = unsafe { std::slice::from_raw_parts(c.cpus, c.n_cpus as usize) };
        if let Some(&bad) = cpus.iter().find(|&&x| x < 0) {
            return Err(fail(TS_ERR_INVALID_ARG, format!("cpu {bad}")));
        }
        p.cpus = cpus.iter().map(|&x| x as usize).collect();
    }
    p.rt_priority = c.rt_priority;
    Ok(p)
}

/// The sampler settings `params` asks for (NULL: greedy). The runtime checks the ranges.
pub(crate) fn sampler_params(params: *const ts_sampler_params) -> Result<SamplerParams, ts_status> {
    if params.is_null() {
        return Ok(SamplerParams::greedy());
    }
    check_struct_size(params, "ts_sampler_params")?;
    // SAFETY: non-NULL and of the right size.
    let c = unsafe { *params };
    Ok(SamplerParams {
        temperature: c.temperature,
        top_k: c.top_k as usize,
        top_p: c.top_p,
        min_p: c.min_p,
        repeat_penalty: c.repeat_penalty,
        presence_penalty: c.presence_penalty,
        frequency_penalty: c.frequency_penalty,
        penalty_last_n: c.penalty_last_n as usize,
        seed: c.seed,
    })
}

/// `Err(TS_ERR_INVALID_ARG)` unless `p` points to a params struct whose leading `struct_size`
/// is this library's `size_of::<T>()` (a header/library mismatch otherwise).
fn check_struct_size<T>(p: *const T, what: &str) -> Result<(), ts_status> {
    if p.is_null() {
        return Err(fail(TS_ERR_INVALID_ARG, format!("{what} is NULL")));
    }
    // SAFETY: non-NULL; by contract it points to a struct that starts with `struct_size`.
    let size = unsafe { *(p as *const u32) } as usize;
    if size != std::mem::size_of::<T>() {
        return Err(fail(
            TS_ERR_INVALID_ARG,
            format!(
                "{what}: struct_size is {size}, this library expects {} (header/library mismatch?)",
                std::mem::size_of::<T>()
            ),
        ));
    }
    Ok(())
}
