//! Whether a CUDA driver is present: its user-space library and the GPU's device nodes
//! (Jetson's integrated GPU or a discrete NVIDIA card). Nothing is loaded or opened.

use serde::Serialize;

use crate::sysroot::SysRoot;

/// Where `libcuda` lives: L4T 32-35 (`tegra/`), L4T 36 (`nvidia/`), distribution packages of
/// the desktop driver, NVIDIA's runfile installer.
const DRIVER_LIBS: &[&str] = &[
    "/usr/lib/aarch64-linux-gnu/tegra/libcuda.so",
    "/usr/lib/aarch64-linux-gnu/nvidia/libcuda.so",
    "/usr/lib/aarch64-linux-gnu/libcuda.so.1",
    "/usr/lib/x86_64-linux-gnu/libcuda.so.1",
    "/usr/lib64/libcuda.so.1",
    "/usr/lib/libcuda.so.1",
];

/// GPU device nodes: Jetson before L4T 36, Jetson with L4T 36 (nvgpu), a discrete card.
const DEVICE_NODES: &[&str] = &["/dev/nvhost-ctrl-gpu", "/dev/nvgpu/igpu0/ctrl", "/dev/nvidia0"];

/// What the GPU side looks like.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Gpu {
    /// The CUDA driver library found.
    pub cuda_driver: Option<String>,
    /// The kernel driver's version line (`/proc/driver/nvidia/version`, discrete GPUs).
    pub driver_version: Option<String>,
    /// The GPU device nodes present.
    pub device_nodes: Vec<String>,
}

impl Gpu {
    /// Looks for the CUDA driver under `root`.
    pub fn read(root: &SysRoot) -> Gpu {
        Gpu {
            cuda_driver: DRIVER_LIBS.iter().find(|p| root.exists(p)).map(|p| p.to_string()),
            driver_version: root.line("/proc/driver/nvidia/version"),
            device_nodes: DEVICE_NODES
                .iter()
                .filter(|p| root.exists(p))
                .map(|p| p.to_string())
                .collect(),
        }
    }

    /// Whether CUDA can run: a driver library and a GPU device node.
    pub fn cuda_present(&self) -> bool {
        self.cuda_driver.is_some() && !self.device_nodes.is_empty()
    }
}
