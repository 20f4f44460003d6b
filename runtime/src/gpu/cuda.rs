//! The decode program ([`DecodeProgram`]) on an NVIDIA GPU through the CUDA driver API
//! (`cudarc`, loaded at run time: a binary built with the `cuda` feature runs on the CPU where
//! no driver is installed; [`driver_present`] says which before any CUDA call, since `cudarc`
//! panics when the library is missing).
//!
//! - Kernels: `runtime/cuda/*.cu`, compiled by NVRTC for the device's own architecture at first
//!   use ([`kernel_image`]) and cached on disk, keyed by the source, the architecture and the
//!   NVRTC version.
//! - Weights: the residency planner against the GPU budget puts each matrix on the device
//!   (uploaded once) or streams it: on a discrete GPU, copied per token into two device slots on
//!   a copy stream while the previous layer computes ([`LayerScheduler`], events between the
//!   streams; the host weights are page-locked when the driver allows, so the copies are truly
//!   asynchronous); on an integrated GPU (Jetson: one DRAM) the matrices that do not fit are
//!   read in place through a host-mapped (zero-copy) device pointer instead.
//! - Activations f32, KV cache f16, both on the device; the logits come back per step.
//!
//! Until `scripts/gpu-check.sh` has run on a GPU this file is compile-checked only: the program
//! it launches is checked on the CPU ([`super::host`], `runtime/tests/gpu_program.rs`), its
//! kernels are compiled for sm_53/72/87, and its NVRTC path and cache run here
//! (`runtime/tests/cuda_backend.rs`), but no kernel has run on a device.

use std::ffi::{c_void, CString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use cudarc::driver::{result as cu, sys};
use cudarc::nvrtc::{result as nvrtc, sys as nvrtc_sys};

use super::device::{BufId, Device, EventId, Stream};
use super::program::{device_type_code, Buf, DecodeProgram, Op};
use super::schedule::{LayerScheduler, RESIDENT_TAG};
use super::DecodeBackend;
use crate::error::{Result, RuntimeError};
use crate::model::Model;
use crate::residency::{Placement, ResidencyPlan, Step};

/// The kernels' source: the `.cu` with its one header inlined (NVRTC gets a single string).
fn kernel_source() -> String {
    include_str!("../../cuda/ts_cuda_kernels.cu").replace(
        "#include \"ts_cuda_quant.cuh\"",
        include_str!("../../cuda/ts_cuda_quant.cuh"),
    )
}

fn gpu_err(what: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Gpu(what.to_string())
}

/// Where the pip wheel `nvidia-cuda-nvrtc-cu12` puts libnvrtc under `scripts/setup.sh`'s cache
/// (or `TSHARP_NVRTC`): loaded by path first, so that `cudarc`'s lookup by name finds it
/// without `LD_LIBRARY_PATH`. A system CUDA (a Jetson's JetPack) is found by name as usual.
fn preload_nvrtc() {
    static LOADED: OnceLock<Option<libloading::Library>> = OnceLock::new();
    LOADED.get_or_init(|| {
        let mut candidates: Vec<PathBuf> = std::env::var_os("TSHARP_NVRTC")
            .map(PathBuf::from)
            .into_iter()
            .collect();
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
        if let Some(c) = cache {
            let dir = c.join("tensorsharp/cuda/nvidia/cuda_nvrtc/lib");
            if let Ok(rd) = std::fs::read_dir(&dir) {
                let mut libs: Vec<PathBuf> = rd
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        p.file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with("libnvrtc.so."))
                    })
                    .collect();
                libs.sort();
                candidates.extend(libs);
            }
        }
        candidates.into_iter().find_map(|p| {
            // SAFETY: libnvrtc's initialisers are the vendor's; loading it runs no code of ours.
            unsafe { libloading::Library::new(&p) }.ok()
        })
    });
}

/// Whether the CUDA driver library (`libcuda.so`) can be loaded: checked before any CUDA call.
pub fn driver_present() -> bool {
    // SAFETY: only tries to dlopen the library.
    unsafe { sys::is_culib_present() }
}

/// Whether NVRTC can be loaded (the wheel in the cache, `TSHARP_NVRTC`, or a system CUDA).
pub fn nvrtc_present() -> bool {
    preload_nvrtc();
    // SAFETY: only tries to dlopen the library.
    unsafe { nvrtc_sys::is_culib_present() }
}

/// (free, total) bytes of GPU 0's memory.
pub fn free_memory() -> Result<(usize, usize)> {
    if !driver_present() {
        return Err(gpu_err("no CUDA driver (libcuda.so) found"));
    }
    let e = |err: cu::DriverError| gpu_err(format!("{err:?}"));
    cu::init().map_err(e)?;
    let dev = cu::device::get(0).map_err(e)?;
    // SAFETY: a device handle from cuDeviceGet; the primary context stays retained.
    let ctx = unsafe { cu::primary_ctx::retain(dev) }.map_err(e)?;
    // SAFETY: a context just retained.
    unsafe { cu::ctx::set_current(ctx) }.map_err(e)?;
    cu::mem_get_info().map_err(e)
}

/// NVRTC's version.
pub fn nvrtc_version() -> Result<(i32, i32)> {
    if !nvrtc_present() {
        return Err(gpu_err(
            "NVRTC (libnvrtc.so) not found: scripts/setup.sh installs it, or set TSHARP_NVRTC",
        ));
    }
    let (mut major, mut minor) = (0, 0);
    // SAFETY: two out-pointers to live integers.
    unsafe { nvrtc_sys::nvrtcVersion(&mut major, &mut minor) }
        .result()
        .map_err(|e| gpu_err(format!("nvrtcVersion: {e:?}")))?;
    Ok((major, minor))
}

/// Compiles the kernels with NVRTC for `arch` (`sm_87`, ...) to a cubin.
pub fn compile_kernels(arch: &str) -> Result<Vec<u8>> {
    nvrtc_version()?;
    let src = CString::new(kernel_source()).map_err(|_| gpu_err("kernel source holds a NUL byte"))?;
    let prog = nvrtc::create_program(&src, Some(c"ts_cuda_kernels.cu")).map_err(|e| gpu_err(format!("{e:?}")))?;
    let opts = [format!("--gpu-architecture={arch}"), "--std=c++14".into()];
    // SAFETY: `prog` was just created and is destroyed below, once.
    let compiled = unsafe { nvrtc::compile_program(prog, &opts) };
    let out = (|| {
        if let Err(e) = compiled {
            // SAFETY: as above.
            let log = unsafe { nvrtc::get_program_log(prog) }.unwrap_or_default();
            // c_char is i8 on x86-64 and u8 on aarch64.
            #[allow(clippy::unnecessary_cast)]
            let log: Vec<u8> = log.iter().map(|&c| c as u8).take_while(|&c| c != 0).collect();
            return Err(gpu_err(format!(
                "NVRTC failed to compile the kernels for {arch}: {e:?}\n{}",
                String::from_utf8_lossy(&log)
            )));
        }
        let mut size = 0usize;
        // SAFETY: compiled program; out-pointer to a live integer.
        unsafe { nvrtc_sys::nvrtcGetCUBINSize(prog, &mut size) }
            .result()
            .map_err(|e| gpu_err(format!("nvrtcGetCUBINSize: {e:?}")))?;
        let mut cubin = vec![0u8; size];
        // SAFETY: the buffer holds the size NVRTC gave.
        unsafe { nvrtc_sys::nvrtcGetCUBIN(prog, cubin.as_mut_ptr() as *mut _) }
            .result()
            .map_err(|e| gpu_err(format!("nvrtcGetCUBIN: {e:?}")))?;
        Ok(cubin)
    })();
    // SAFETY: created above and not destroyed yet.
    let _ = unsafe { nvrtc::destroy_program(prog) };
    out
}

/// The kernel cache directory: `$XDG_CACHE_HOME/tensorsharp/kernels` (or `~/.cache/...`).
pub fn default_cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|c| c.join("tensorsharp/kernels"))
}

/// The kernels' cubin for `arch`: from `cache_dir` when compiled before by this NVRTC from this
/// source, else compiled and stored there (written to a temporary file and renamed, so a reader
/// never sees half a file). Returns the image and whether it came from the cache.
pub fn kernel_image(arch: &str, cache_dir: Option<&Path>) -> Result<(Vec<u8>, bool)> {
    let (major, minor) = nvrtc_version()?;
    let mut source = crate::fnv::Fnv1a::new();
    source.eat(kernel_source().as_bytes());
    let key = format!("ts_kernels-{:016x}-{arch}-nvrtc{major}.{minor}.cubin", source.finish());
    if let Some(dir) = cache_dir {
        if let Ok(img) = std::fs::read(dir.join(&key)) {
            if img.starts_with(b"\x7fELF") {
                return Ok((img, true));
            }
        }
    }
    let img = compile_kernels(arch)?;
    if let Some(dir) = cache_dir {
        let stored = std::fs::create_dir_all(dir).and_then(|_| {
            let tmp = dir.join(format!("{key}.{}.tmp", std::process::id()));
            std::fs::write(&tmp, &img)?;
            std::fs::rename(&tmp, dir.join(&key))
        });
        if let Err(e) = stored {
            log::warn!("kernel cache {}: {e} (compiling at every start)", dir.display());
        }
    }
    Ok((img, false))
}

/// The kernels by name.
struct Kernels {
    module: sys::CUmodule,
    matvec: sys::CUfunction,
    get_row: sys::CUfunction,
    rms_norm: sys::CUfunction,
    rope: sys::CUfunction,
    attention: sys::CUfunction,
    swiglu: sys::CUfunction,
    geglu: sys::CUfunction,
    add: sys::CUfunction,
    store_f16: sys::CUfunction,
    scale: sys::CUfunction,
    softcap: sys::CUfunction,
}

/// Events recycled round-robin (the scheduler holds at most a few at a time).
const EVENT_POOL: usize = 32;

/// The device under the [`Device`] trait, for the [`LayerScheduler`]: memory under a budget,
/// the copy stream, the compute stream, events.
struct CudaDevice {
    budget: u64,
    allocated: u64,
    bufs: Vec<sys::CUdeviceptr>,
    compute: sys::CUstream,
    copy: sys::CUstream,
    events: Vec<sys::CUevent>,
    next_event: usize,
    /// The host copy of the weights the copies read.
    host: &'static [u8],
    /// The GPU plan (what each copy tag moves).
    plan: ResidencyPlan,
    /// Each matrix's offset in `host`.
    host_at: Vec<usize>,
    /// The first error of a queued operation.
    failed: Option<RuntimeError>,
}

impl CudaDevice {
    fn stream(&self, s: Stream) -> sys::CUstream {
        match s {
            Stream::Compute => self.compute,
            Stream::Copy => self.copy,
        }
    }

    fn note(&mut self, r: std::result::Result<(), cu::DriverError>, what: &str) {
        if let (Err(e), None) = (r, &self.failed) {
            self.failed = Some(gpu_err(format!("{what}: {e:?}")));
        }
    }

    /// Queues a copy of `len` host bytes at `from` into `dst` on the copy stream.
    fn copy_bytes(&mut self, dst: sys::CUdeviceptr, from: usize, len: usize) {
        let src = &self.host[from..from + len];
        // SAFETY: dst is a device allocation of this context holding at least len bytes at that
        // offset (the plan sized it); src lives as long as the model (the backend holds it).
        let r = unsafe { cu::memcpy_htod_async(dst, src, self.copy) };
        self.note(r, "host-to-device copy");
    }
}

impl Device for CudaDevice {
    fn alloc(&mut self, bytes: u64, what: &'static str) -> Result<BufId> {
        if self.allocated + bytes > self.budget {
            return Err(RuntimeError::OverBudget {
                needed: self.allocated + bytes,
                budget: self.budget,
                message: format!("GPU memory: {what} needs {bytes} bytes, {} are in use", self.allocated),
            });
        }
        // SAFETY: plain allocation in the current context.
        let p = unsafe { cu::malloc_sync(bytes.max(1) as usize) }
            .map_err(|e| gpu_err(format!("cuMemAlloc of {bytes} bytes for {what}: {e:?}")))?;
        self.allocated += bytes;
        self.bufs.push(p);
        Ok(BufId(self.bufs.len() - 1))
    }

    fn copy_in(&mut self, buf: BufId, _len: u64, tag: u64) {
        let dst = self.bufs[buf.0];
        if tag == RESIDENT_TAG {
            for i in 0..self.plan.matrices.len() {
                if let Placement::Ram { at } = self.plan.placements[i] {
                    let (from, len) = (self.host_at[i], self.plan.matrices[i].bytes as usize);
                    self.copy_bytes(dst + at, from, len);
                }
            }
        } else {
            let unit = (tag % self.plan.units.len() as u64) as usize;
            for k in 0..self.plan.units[unit].extents.len() {
                let x = self.plan.units[unit].extents[k];
                // Extents are file offsets; the host copy is the whole file.
                self.copy_bytes(dst + x.slot_at, x.file_offset as usize, x.len as usize);
            }
        }
    }

    fn record(&mut self, stream: Stream) -> EventId {
        let i = self.next_event % EVENT_POOL;
        self.next_event += 1;
        // SAFETY: a live event and stream of this context.
        let r = unsafe { cu::event::record(self.events[i], self.stream(stream)) };
        self.note(r, "cuEventRecord");
        EventId(i)
    }

    fn wait(&mut self, stream: Stream, event: EventId) {
        // SAFETY: a live event and stream of this context.
        let r = unsafe {
            cu::stream::wait_event(
                self.stream(stream),
                self.events[event.0],
                sys::CUevent_wait_flags::CU_EVENT_WAIT_DEFAULT,
            )
        };
        self.note(r, "cuStreamWaitEvent");
    }

    fn synchronize(&mut self) -> Result<()> {
        self.wait_for(&[Stream::Copy, Stream::Compute])
    }
}

impl CudaDevice {
    /// Waits until `streams` are idle; the first error of any queued operation.
    fn wait_for(&mut self, streams: &[Stream]) -> Result<()> {
        for &s in streams {
            // SAFETY: a live stream of this context.
            let r = unsafe { cu::stream::synchronize(self.stream(s)) };
            self.note(r, "cuStreamSynchronize");
        }
        match self.failed.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// A kernel argument: a pointer to the value, as `cuLaunchKernel` takes them.
fn arg<T>(v: &mut T) -> *mut c_void {
    v as *mut T as *mut c_void
}

/// What a [`CudaBackend`] was given and found.
#[derive(Debug, Clone)]
pub struct CudaInfo {
    /// The device's name.
    pub name: String,
    /// Compute capability (`sm_87` is (8, 7)).
    pub capability: (i32, i32),
    /// An integrated GPU (sharing the host's DRAM: Jetson).
    pub integrated: bool,
    /// Bytes of weights on the device.
    pub resident_bytes: u64,
    /// Bytes of weights copied per token (discrete GPU) or read in place from host memory
    /// (integrated GPU).
    pub streamed_bytes_per_token: u64,
    /// Whether the kernels came from the disk cache.
    pub kernels_cached: bool,
}

/// The decode program on a CUDA GPU.
pub struct CudaBackend {
    ctx: sys::CUcontext,
    model: Arc<Model>,
    program: DecodeProgram,
    n_ctx: usize,
    k: Kernels,
    dev: CudaDevice,
    sched: LayerScheduler,
    /// Per matrix: its device address when resident or host-mapped; `None` when streamed
    /// (then at `slot_at[m]` in the step's slot).
    addr: Vec<Option<sys::CUdeviceptr>>,
    slot_at: Vec<u64>,
    /// Activation buffers (by [`Buf::index`]), the vectors, the KV cache, the scores.
    bufs: Vec<sys::CUdeviceptr>,
    vectors: Vec<sys::CUdeviceptr>,
    kv: sys::CUdeviceptr,
    scores: sys::CUdeviceptr,
    /// Page-locked host row for an embedding lookup from host memory.
    host_row: *mut f32,
    /// The page-locked (registered) host weights, unregistered on drop.
    registered: Option<*mut c_void>,
    info: CudaInfo,
}

// SAFETY: the raw pointers are CUDA handles and page-locked host memory owned by this value;
// the backend is used by one thread at a time (&mut self), and the context is made current on
// the calling thread by every entry point.
unsafe impl Send for CudaBackend {}

impl CudaBackend {
    /// Sets up `model`'s decode on GPU 0 with at most `gpu_budget` bytes of device memory
    /// (default: the free memory less 10 %), a KV cache of `n_ctx` positions and kernels from
    /// `cache_dir`. The model's weights must be in RAM or mapped (not streamed from storage).
    pub fn new(
        model: Arc<Model>,
        n_ctx: usize,
        gpu_budget: Option<u64>,
        cache_dir: Option<&Path>,
    ) -> Result<CudaBackend> {
        if !driver_present() {
            return Err(gpu_err("no CUDA driver (libcuda.so) found"));
        }
        if model.residency().is_some() {
            return Err(gpu_err(
                "a model streamed from storage under --ram-budget cannot feed the GPU yet: load it resident or mapped",
            ));
        }
        let program = DecodeProgram::new(&model)?;
        if let Some(t) = program.unsupported_type() {
            return Err(gpu_err(format!(
                "the device kernels do not implement {t:?} (this model runs on the CPU)"
            )));
        }
        fn e(what: &'static str) -> impl Fn(cu::DriverError) -> RuntimeError {
            move |err| gpu_err(format!("{what}: {err:?}"))
        }
        cu::init().map_err(e("cuInit"))?;
        let dev = cu::device::get(0).map_err(e("cuDeviceGet"))?;
        // SAFETY: a device handle from cuDeviceGet; the context stays retained for the process.
        let ctx = unsafe { cu::primary_ctx::retain(dev) }.map_err(e("cuDevicePrimaryCtxRetain"))?;
        // SAFETY: a context just retained.
        unsafe { cu::ctx::set_current(ctx) }.map_err(e("cuCtxSetCurrent"))?;
        let attr = |a| {
            // SAFETY: a valid device handle.
            unsafe { cu::device::get_attribute(dev, a) }.map_err(e("cuDeviceGetAttribute"))
        };
        use sys::CUdevice_attribute as A;
        let capability = (
            attr(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?,
            attr(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?,
        );
        let integrated = attr(A::CU_DEVICE_ATTRIBUTE_INTEGRATED)? != 0;
        let name = cu::device::get_name(dev).unwrap_or_else(|_| "CUDA device".into());
        let (image, kernels_cached) = kernel_image(&format!("sm_{}{}", capability.0, capability.1), cache_dir)?;
        // SAFETY: a cubin NVRTC produced for this architecture, NUL-padded by the driver's reader.
        let module =
            unsafe { cu::module::load_data(image.as_ptr() as *const c_void) }.map_err(e("cuModuleLoadData"))?;
        let f = |n: &str| {
            let c = CString::new(n).expect("kernel names have no NUL");
            // SAFETY: a module just loaded; the name is NUL-terminated.
            unsafe { cu::module::get_function(module, c) }.map_err(e("cuModuleGetFunction"))
        };
        let k = Kernels {
            module,
            matvec: f("ts_matvec")?,
            get_row: f("ts_get_row")?,
            rms_norm: f("ts_rms_norm")?,
            rope: f("ts_rope")?,
            attention: f("ts_attention_f16")?,
            swiglu: f("ts_swiglu")?,
            geglu: f("ts_geglu")?,
            add: f("ts_add")?,
            store_f16: f("ts_store_f16")?,
            scale: f("ts_scale")?,
            softcap: f("ts_softcap")?,
        };
        // Memory: the activations, vectors, KV cache and scores first; the weights get the rest.
        let s = program.shape;
        let act_bytes: u64 = Buf::ALL.iter().map(|&b| 4 * s.len(b) as u64).sum();
        let vec_bytes: u64 = program.vectors.iter().map(|v| 4 * v.len() as u64).sum();
        let fixed = act_bytes + vec_bytes + program.kv_cache_bytes(n_ctx) as u64 + 4 * (s.n_head * n_ctx) as u64;
        let (free, _) = cu::mem_get_info().map_err(e("cuMemGetInfo"))?;
        let budget = gpu_budget.unwrap_or(free as u64 / 10 * 9).min(free as u64);
        let weights_budget = budget.checked_sub(fixed).ok_or_else(|| RuntimeError::OverBudget {
            needed: fixed,
            budget,
            message: format!(
                "GPU memory: the activations and a {n_ctx}-position KV cache need {} MiB of the {} MiB budget",
                fixed >> 20,
                budget >> 20
            ),
        })?;
        let mut plan = model.residency_for(weights_budget).map_err(|_| RuntimeError::OverBudget {
            needed: fixed,
            budget,
            message: "GPU memory: not even two layers' weights fit next to the KV cache and activations: lower --ctx-size or raise --gpu-budget".into(),
        })?;
        // The host weights: the model's RAM copy or mapping (file offsets index it).
        let host: &'static [u8] = {
            let r = model.ram();
            // SAFETY: the model (an Arc the backend holds until drop, after the device is done
            // with it: drop synchronizes) owns these bytes and never moves them.
            unsafe { std::slice::from_raw_parts(r.as_ptr(), r.len()) }
        };
        let streamed_bytes_per_token = plan.streamed_bytes_per_token();
        // Page-lock the host weights when something is read from them per token: truly
        // asynchronous copies (discrete), or the zero-copy mapping (integrated).
        let mut registered = None;
        let mut host_dev: Option<sys::CUdeviceptr> = None;
        if streamed_bytes_per_token > 0 {
            // Read-only registration where the device supports it (a file mapping must be
            // registered so), else plain (the resident copy is private anonymous memory).
            let register = |flags| {
                // SAFETY: the model's bytes, alive and unmoved for the backend's life; the
                // device only reads them.
                unsafe { sys::cuMemHostRegister_v2(host.as_ptr() as *mut c_void, host.len(), flags) }.result()
            };
            let r = register(sys::CU_MEMHOSTREGISTER_DEVICEMAP | sys::CU_MEMHOSTREGISTER_READ_ONLY)
                .or_else(|_| register(sys::CU_MEMHOSTREGISTER_DEVICEMAP));
            match r {
                Ok(()) => {
                    registered = Some(host.as_ptr() as *mut c_void);
                    if integrated {
                        let mut p = 0;
                        // SAFETY: memory registered with DEVICEMAP just above.
                        unsafe { sys::cuMemHostGetDevicePointer_v2(&mut p, host.as_ptr() as *mut c_void, 0) }
                            .result()
                            .map_err(e("cuMemHostGetDevicePointer"))?;
                        host_dev = Some(p);
                    }
                }
                Err(err) if integrated => {
                    return Err(gpu_err(format!("cuMemHostRegister (zero-copy weights): {err:?}")))
                }
                Err(err) => log::warn!("cuMemHostRegister: {err:?}; weight copies from pageable memory"),
            }
        }
        let matrices = program.matrices.clone();
        let host_at: Vec<usize> = matrices.iter().map(|m| m.ram_at.unwrap_or(0)).collect();
        let zero_copy = integrated && host_dev.is_some();
        if zero_copy {
            // Read in place: no slots, no per-token copies.
            plan.units.clear();
            plan.ring = 0;
            plan.slot_bytes = 0;
        }
        let events = (0..EVENT_POOL)
            .map(|_| cu::event::create(sys::CUevent_flags::CU_EVENT_DISABLE_TIMING).map_err(e("cuEventCreate")))
            .collect::<Result<Vec<_>>>()?;
        let mut cdev = CudaDevice {
            budget,
            allocated: 0,
            bufs: Vec::new(),
            compute: cu::stream::create(cu::stream::StreamKind::NonBlocking).map_err(e("cuStreamCreate"))?,
            copy: cu::stream::create(cu::stream::StreamKind::NonBlocking).map_err(e("cuStreamCreate"))?,
            events,
            next_event: 0,
            host,
            plan: plan.clone(),
            host_at: host_at.clone(),
            failed: None,
        };
        let alloc = |d: &mut CudaDevice, bytes: u64, what| d.alloc(bytes, what).map(|b| d.bufs[b.0]);
        let bufs = Buf::ALL
            .iter()
            .map(|&b| alloc(&mut cdev, 4 * s.len(b) as u64, "activations"))
            .collect::<Result<Vec<_>>>()?;
        let mut vectors = Vec::new();
        for v in &program.vectors {
            let p = alloc(&mut cdev, 4 * v.len() as u64, "norms and biases")?;
            // SAFETY: p holds v.len() floats.
            unsafe { cu::memcpy_htod_sync(p, v) }.map_err(e("cuMemcpyHtoD"))?;
            vectors.push(p);
        }
        // The synchronous copies above ran on the legacy stream, which the two non-blocking
        // streams do not wait for: finish them first.
        cu::ctx::synchronize().map_err(e("cuCtxSynchronize"))?;
        let kv = alloc(&mut cdev, program.kv_cache_bytes(n_ctx) as u64, "KV cache")?;
        let scores = alloc(&mut cdev, 4 * (s.n_head * n_ctx) as u64, "attention scores")?;
        let steps: Vec<Step> = program.steps.iter().map(|s| s.step).collect();
        let sched = LayerScheduler::new(&mut cdev, plan.clone(), &steps, None)?;
        let resident = sched.resident().map(|b| cdev.bufs[b.0]);
        let mut addr = Vec::with_capacity(matrices.len());
        let mut slot_at = Vec::with_capacity(matrices.len());
        for (i, p) in plan.placements.iter().enumerate() {
            let (a, at) = match *p {
                Placement::Ram { at } => (resident.map(|r| r + at), 0),
                Placement::Stream { at, .. } if zero_copy => (host_dev.map(|h| h + host_at[i] as u64), at),
                Placement::Stream { at, .. } => (None, at),
                Placement::Rows => (host_dev.map(|h| h + host_at[i] as u64), 0),
            };
            addr.push(a);
            slot_at.push(at);
        }
        // SAFETY: page-locked host allocation of n_embd floats, freed on drop.
        let host_row = unsafe { cu::malloc_host(4 * s.n_embd, 0) }.map_err(e("cuMemHostAlloc"))? as *mut f32;
        cdev.synchronize()?;
        let info = CudaInfo {
            name,
            capability,
            integrated,
            resident_bytes: plan.resident_bytes,
            streamed_bytes_per_token,
            kernels_cached,
        };
        log::info!(
            "GPU: {} (sm_{}{}{}), {} MiB of weights on the device, {:.1} MiB per token {}",
            info.name,
            capability.0,
            capability.1,
            if integrated { ", integrated" } else { "" },
            info.resident_bytes >> 20,
            streamed_bytes_per_token as f64 / 1048576.0,
            if zero_copy {
                "read in place (zero-copy)"
            } else {
                "copied"
            }
        );
        Ok(CudaBackend {
            ctx,
            model,
            program,
            n_ctx,
            k,
            dev: cdev,
            sched,
            addr,
            slot_at,
            bufs,
            vectors,
            kv,
            scores,
            host_row,
            registered,
            info,
        })
    }

    /// The device and the placement.
    pub fn info(&self) -> &CudaInfo {
        &self.info
    }
}

/// Launches `f` on `stream` with `args`.
///
/// # Safety
/// `args` must match the kernel's parameters in number and type; every device pointer among
/// them must be a live allocation of the current context large enough for the launch.
unsafe fn launch(
    stream: sys::CUstream,
    f: sys::CUfunction,
    grid: u32,
    block: (u32, u32),
    args: &mut [*mut c_void],
) -> Result<()> {
    // SAFETY: forwarded from the caller.
    unsafe { cu::launch_kernel(f, (grid.max(1), 1, 1), (block.0, block.1, 1), 0, stream, args) }
        .map_err(|e| gpu_err(format!("cuLaunchKernel: {e:?}")))
}

/// Launches the kernels of `op` at position `pos`.
///
/// # Safety
/// Every address in `bufs`, `vectors`, `kv`, `scores` and `w` must be a live device allocation
/// (or mapped host memory) of the sizes the program's shape gives.
#[allow(clippy::too_many_arguments)]
unsafe fn run_op(
    k: &Kernels,
    program: &DecodeProgram,
    stream: sys::CUstream,
    bufs: &[sys::CUdeviceptr],
    vectors: &[sys::CUdeviceptr],
    kv: sys::CUdeviceptr,
    scores: sys::CUdeviceptr,
    n_ctx: usize,
    w: &dyn Fn(usize) -> Result<sys::CUdeviceptr>,
    op: Op,
    pos: usize,
) -> Result<()> {
    let s = program.shape;
    let b = |x: Buf| bufs[x.index()];
    let elems = |n: usize| n.div_ceil(256) as u32;
    let (kw, vw) = (s.n_head_kv * s.head_dim, s.n_head_kv * s.head_dim_v);
    let layer_base = |l: usize| kv + (l * n_ctx * (kw + vw) * 2) as u64;
    // SAFETY (all launches): argument lists match the kernels in ts_cuda_kernels.cu; the
    // addresses are the caller's.
    unsafe {
        match op {
            Op::RmsNorm { x, w: wv, y, rows, n } => {
                let (mut xp, mut wp, mut yp, mut n, mut eps) = (b(x), vectors[wv.0], b(y), n as i32, s.eps);
                launch(
                    stream,
                    k.rms_norm,
                    rows as u32,
                    (32, 1),
                    &mut [arg(&mut xp), arg(&mut wp), arg(&mut yp), arg(&mut n), arg(&mut eps)],
                )
            }
            Op::MatVec { matrix, x, y, at } => {
                let m = program.matrices[matrix];
                let mut ty = device_type_code(m.wtype).unwrap_or(-1);
                let (mut wp, mut rb, mut rows, mut xp, mut n, mut yp) = (
                    w(matrix)?,
                    m.row_bytes as i64,
                    m.rows as i32,
                    b(x),
                    m.cols as i32,
                    b(y) + 4 * at as u64,
                );
                let args = &mut [
                    arg(&mut ty),
                    arg(&mut wp),
                    arg(&mut rb),
                    arg(&mut rows),
                    arg(&mut xp),
                    arg(&mut n),
                    arg(&mut yp),
                ];
                launch(stream, k.matvec, m.rows.div_ceil(4) as u32, (32, 4), args)
            }
            Op::AddVec { y, b: bv } => {
                let (mut yp, mut bp, mut n) = (b(y), vectors[bv.0], s.len(y) as i64);
                launch(
                    stream,
                    k.add,
                    elems(s.len(y)),
                    (256, 1),
                    &mut [arg(&mut yp), arg(&mut bp), arg(&mut n)],
                )
            }
            Op::Rope { x, heads, base, scale } => {
                let (mut xp, mut h, mut hd, mut rd, mut p, mut base, mut scale, mut neox) = (
                    b(x),
                    heads as i32,
                    s.head_dim as i32,
                    s.rope_dim as i32,
                    pos as i32,
                    base,
                    scale,
                    s.neox as i32,
                );
                let args = &mut [
                    arg(&mut xp),
                    arg(&mut h),
                    arg(&mut hd),
                    arg(&mut rd),
                    arg(&mut p),
                    arg(&mut base),
                    arg(&mut scale),
                    arg(&mut neox),
                ];
                launch(stream, k.rope, heads as u32, (64, 1), args)
            }
            Op::StoreKv { layer } => {
                let base = layer_base(layer);
                for (src, dst, n) in [
                    (b(Buf::K), base + (pos * kw * 2) as u64, kw),
                    (b(Buf::V), base + ((n_ctx * kw + pos * vw) * 2) as u64, vw),
                ] {
                    let (mut sp, mut dp, mut n64) = (src, dst, n as i64);
                    launch(
                        stream,
                        k.store_f16,
                        elems(n),
                        (256, 1),
                        &mut [arg(&mut sp), arg(&mut dp), arg(&mut n64)],
                    )?;
                }
                Ok(())
            }
            Op::Attention { layer, window } => {
                let lo = window.map_or(0, |w| (pos + 1).saturating_sub(w));
                let base = layer_base(layer);
                let (mut qp, mut kp, mut ks, mut vp, mut vs) = (
                    b(Buf::Q),
                    base + (lo * kw * 2) as u64,
                    kw as i64,
                    base + ((n_ctx * kw + lo * vw) * 2) as u64,
                    vw as i64,
                );
                let (mut nh, mut nkv, mut hd, mut hdv, mut npos, mut sc) = (
                    s.n_head as i32,
                    s.n_head_kv as i32,
                    s.head_dim as i32,
                    s.head_dim_v as i32,
                    (pos + 1 - lo) as i32,
                    s.attn_scale,
                );
                let (mut scp, mut op) = (scores, b(Buf::AttnOut));
                let args = &mut [
                    arg(&mut qp),
                    arg(&mut kp),
                    arg(&mut ks),
                    arg(&mut vp),
                    arg(&mut vs),
                    arg(&mut nh),
                    arg(&mut nkv),
                    arg(&mut hd),
                    arg(&mut hdv),
                    arg(&mut npos),
                    arg(&mut sc),
                    arg(&mut scp),
                    arg(&mut op),
                ];
                launch(stream, k.attention, s.n_head as u32, (32, 1), args)
            }
            Op::Glu { silu } => {
                let (mut g, mut u, mut n) = (b(Buf::Gate), b(Buf::Up), s.n_ff as i64);
                let f = if silu { k.swiglu } else { k.geglu };
                launch(
                    stream,
                    f,
                    elems(s.n_ff),
                    (256, 1),
                    &mut [arg(&mut g), arg(&mut u), arg(&mut n)],
                )
            }
            Op::Add { y, x } => {
                let (mut yp, mut xp, mut n) = (b(y), b(x), s.len(y) as i64);
                launch(
                    stream,
                    k.add,
                    elems(s.len(y)),
                    (256, 1),
                    &mut [arg(&mut yp), arg(&mut xp), arg(&mut n)],
                )
            }
            Op::Softcap { cap } => {
                let (mut lp, mut c, mut n) = (b(Buf::Logits), cap, s.n_vocab as i64);
                launch(
                    stream,
                    k.softcap,
                    elems(s.n_vocab),
                    (256, 1),
                    &mut [arg(&mut lp), arg(&mut c), arg(&mut n)],
                )
            }
        }
    }
}

impl DecodeBackend for CudaBackend {
    fn name(&self) -> &'static str {
        "CUDA GPU"
    }

    fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    fn step(&mut self, token: u32, pos: usize, logits: Option<&mut [f32]>) -> Result<()> {
        if pos >= self.n_ctx {
            return Err(RuntimeError::ContextFull {
                needed: pos + 1,
                n_ctx: self.n_ctx,
            });
        }
        // The context is current per thread: the session may run on another thread than the
        // one that created the backend (the daemon's scheduler).
        // SAFETY: the primary context retained by `new`, released never.
        unsafe { cu::ctx::set_current(self.ctx) }.map_err(|e| gpu_err(format!("cuCtxSetCurrent: {e:?}")))?;
        let s = self.program.shape;
        let compute = self.dev.compute;
        // The embedding row: on the device when its matrix is, else dequantized on the host.
        let (m, r) = self.program.embedding_row(token as usize);
        let pm = self.program.matrices[m];
        let residual = self.bufs[Buf::Residual.index()];
        match self.addr[m] {
            Some(w) => {
                let mut ty = device_type_code(pm.wtype).unwrap_or(-1);
                let (mut wp, mut rb, mut tok, mut n, mut y) =
                    (w, pm.row_bytes as i64, r as i32, s.n_embd as i32, residual);
                // SAFETY: the matrix is on the device (or mapped) with `rows` rows; y holds n_embd.
                unsafe {
                    launch(
                        compute,
                        self.k.get_row,
                        1,
                        (32, 1),
                        &mut [
                            arg(&mut ty),
                            arg(&mut wp),
                            arg(&mut rb),
                            arg(&mut tok),
                            arg(&mut n),
                            arg(&mut y),
                        ],
                    )?
                };
            }
            None => {
                let at = self.dev.host_at[m] + r * pm.row_bytes;
                // The previous step's upload of the row has finished before it is overwritten.
                // SAFETY: a live stream.
                unsafe { cu::stream::synchronize(compute) }.map_err(|e| gpu_err(format!("{e:?}")))?;
                // SAFETY: host_row holds n_embd floats of page-locked memory owned by self.
                let row = unsafe { std::slice::from_raw_parts_mut(self.host_row, s.n_embd) };
                self.model
                    .kernels()
                    .dequantize(pm.wtype, &self.dev.host[at..at + pm.row_bytes], row)?;
                // SAFETY: residual holds n_embd floats; row stays alive (owned by self).
                unsafe { cu::memcpy_htod_async(residual, row, compute) }.map_err(|e| gpu_err(format!("{e:?}")))?;
            }
        }
        if s.embed_scale != 1.0 {
            let (mut x, mut sc, mut n) = (residual, s.embed_scale, s.n_embd as i64);
            // SAFETY: residual holds n_embd floats.
            unsafe {
                launch(
                    compute,
                    self.k.scale,
                    (s.n_embd as u32).div_ceil(256),
                    (256, 1),
                    &mut [arg(&mut x), arg(&mut sc), arg(&mut n)],
                )?
            };
        }
        let want = logits.is_some();
        let CudaBackend {
            program,
            k,
            dev,
            sched,
            addr,
            slot_at,
            bufs,
            vectors,
            kv,
            scores,
            n_ctx,
            ..
        } = self;
        let mut step_i = 0;
        sched.run_pass(dev, |dev, step, reads| {
            let ops = &program.steps[step_i];
            step_i += 1;
            debug_assert_eq!(ops.step, step);
            if !want && matches!(step, Step::Output(_)) {
                return Ok(());
            }
            // A streamed matrix is in the step's slot (the first read, when the step has one).
            let slot = reads.iter().find(|r| r.tag != RESIDENT_TAG).map(|r| dev.bufs[r.buf.0]);
            let w = |m: usize| match (addr[m], slot) {
                (Some(a), _) => Ok(a),
                (None, Some(sl)) => Ok(sl + slot_at[m]),
                (None, None) => Err(gpu_err(format!("matrix {m} is neither on the device nor in a slot"))),
            };
            for &op in &ops.ops {
                // SAFETY: the buffers were allocated for this program's shape and context.
                unsafe {
                    run_op(
                        k,
                        program,
                        dev.compute,
                        bufs,
                        vectors,
                        *kv,
                        *scores,
                        *n_ctx,
                        &w,
                        op,
                        pos,
                    )?
                };
            }
            Ok(())
        })?;
        if let Some(l) = logits {
            let out = &mut l[..s.n_vocab];
            // SAFETY: the logits buffer holds n_vocab floats; `out` is written before the
            // synchronize below returns.
            let r = unsafe {
                sys::cuMemcpyDtoHAsync_v2(
                    out.as_mut_ptr() as *mut c_void,
                    self.bufs[Buf::Logits.index()],
                    4 * s.n_vocab,
                    compute,
                )
            }
            .result();
            self.dev.note(r, "cuMemcpyDtoH");
        }
        // The step's kernels and the logits are done; the copy stream keeps filling the slots
        // for the next step (its copies are ordered against compute by the events).
        self.dev.wait_for(&[Stream::Compute])
    }
}

impl Drop for CudaBackend {
    fn drop(&mut self) {
        // SAFETY: the retained primary context.
        let _ = unsafe { cu::ctx::set_current(self.ctx) };
        let _ = self.dev.synchronize();
        // SAFETY: every handle below was created by `new` and is released once; nothing is
        // queued any more (synchronized above).
        unsafe {
            for &p in &self.dev.bufs {
                let _ = cu::free_sync(p);
            }
            for &ev in &self.dev.events {
                let _ = cu::event::destroy(ev);
            }
            let _ = cu::stream::destroy(self.dev.compute);
            let _ = cu::stream::destroy(self.dev.copy);
            let _ = cu::free_host(self.host_row as *mut c_void);
            if let Some(p) = self.registered {
                let _ = sys::cuMemHostUnregister(p);
            }
            let _ = cu::module::unload(self.k.module);
        }
    }
}
