//! `--gpu` / `--gpu-budget` of `tsharp run`, `chat` and `bench`: the session's forward pass on
//! a CUDA GPU when this build has the backend (`--features cuda`), a driver is installed and
//! the model's types have device kernels; otherwise the CPU, with a one-line notice that says
//! why.

use std::sync::Arc;

use clap::Args;
use tensorsharp_runtime::{Model, Session};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// GPU options.
#[derive(Args, Debug, Default)]
pub struct GpuArgs {
    /// Run the forward pass on the GPU (CUDA): the weights that fit the GPU budget stay on the
    /// device, the rest is copied per token through two device slots (or read in place on a
    /// Jetson's shared memory). Falls back to the CPU with a notice.
    #[arg(long)]
    gpu: bool,
    /// Device memory the GPU may use (e.g. 2G, or N% of the free memory); implies --gpu.
    /// Default: 90 % of the free memory.
    #[arg(long = "gpu-budget", value_name = "SIZE|N%")]
    gpu_budget: Option<String>,
}

impl GpuArgs {
    /// Whether the GPU was asked for.
    pub fn wanted(&self) -> bool {
        self.gpu || self.gpu_budget.is_some()
    }

    /// Puts `session` on the GPU when asked and possible; prints where it runs when asked.
    pub fn attach(&self, model: &Arc<Model>, session: &mut Session) -> Result<()> {
        if !self.wanted() {
            return Ok(());
        }
        self.attach_cuda(model, session)
    }

    #[cfg(not(feature = "cuda"))]
    fn attach_cuda(&self, _model: &Arc<Model>, _session: &mut Session) -> Result<()> {
        if let Some(b) = &self.gpu_budget {
            parse_gpu_budget(b, || Some(0))?;
        }
        eprintln!("tsharp: this build has no CUDA backend (cargo build --features cuda); running on the CPU");
        Ok(())
    }

    #[cfg(feature = "cuda")]
    fn attach_cuda(&self, model: &Arc<Model>, session: &mut Session) -> Result<()> {
        use tensorsharp_runtime::gpu::cuda;
        if let Some(b) = &self.gpu_budget {
            parse_gpu_budget(b, || Some(0))?;
        }
        if !cuda::driver_present() {
            eprintln!("tsharp: no CUDA driver (libcuda.so) found; running on the CPU");
            return Ok(());
        }
        let budget = match &self.gpu_budget {
            Some(b) => Some(parse_gpu_budget(b, || {
                cuda::free_memory().ok().map(|(free, _)| free as u64)
            })?),
            None => None,
        };
        let dir = cuda::default_cache_dir();
        match cuda::CudaBackend::new(Arc::clone(model), session.n_ctx(), budget, dir.as_deref()) {
            Ok(b) => {
                let i = b.info().clone();
                session.set_backend(Box::new(b))?;
                eprintln!(
                    "tsharp: GPU {} (sm_{}{}): {} MiB of weights on the device, {:.1} MiB per token {}",
                    i.name,
                    i.capability.0,
                    i.capability.1,
                    i.resident_bytes >> 20,
                    i.streamed_bytes_per_token as f64 / 1048576.0,
                    if i.integrated {
                        "read from shared memory"
                    } else {
                        "copied"
                    }
                );
            }
            Err(e) => eprintln!("tsharp: {e}; running on the CPU"),
        }
        Ok(())
    }
}

/// A GPU budget: a size, or `N%` of the device's free memory (`free`, asked only then).
fn parse_gpu_budget(s: &str, free: impl FnOnce() -> Option<u64>) -> Result<u64> {
    Ok(tensorsharp_runtime::plan::parse_share(
        s,
        "gpu budget",
        "the GPU's free memory",
        free,
    )?)
}
