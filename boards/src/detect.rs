//! Detection: everything read about the machine, from one root directory.

use std::path::PathBuf;

use serde::Serialize;

use crate::cpu::{Cpu, MAX_CPUS};
use crate::devicetree::{DeviceTree, Soc};
use crate::gpu::Gpu;
use crate::memory::Memory;
use crate::sysroot::SysRoot;
use crate::tegra::L4tRelease;

/// What was found about the machine.
#[derive(Debug, Clone, Serialize)]
pub struct Detection {
    /// The root directory read (`/` for this machine).
    pub root: PathBuf,
    /// Device-tree model and compatible strings.
    pub device_tree: DeviceTree,
    /// `/sys/devices/soc0`.
    pub soc: Soc,
    /// The L4T release (Jetson), from `/etc/nv_tegra_release`.
    pub l4t: Option<L4tRelease>,
    /// The JetPack that L4T release belongs to (`None` for a release the table does not know).
    pub jetpack: Option<&'static str>,
    /// The CPU.
    pub cpu: Cpu,
    /// Memory.
    pub memory: Memory,
    /// CUDA driver and GPU nodes.
    pub gpu: Gpu,
    /// The CPUs this process may run on (`sched_getaffinity`); only on the running system.
    pub allowed_cpus: Option<Vec<usize>>,
}

impl Detection {
    /// Reads everything under `root`. Never fails: what cannot be read is `None` or empty.
    pub fn read(root: &SysRoot) -> Detection {
        let l4t = L4tRelease::read(root);
        Detection {
            root: root.root().to_path_buf(),
            device_tree: DeviceTree::read(root),
            soc: Soc::read(root),
            l4t,
            jetpack: l4t.and_then(|r| r.jetpack()),
            cpu: Cpu::read(root),
            memory: Memory::read(root),
            gpu: Gpu::read(root),
            allowed_cpus: if root.is_live() { allowed_cpus() } else { None },
        }
    }

    /// The board's name: the device-tree model, else the firmware's cpuinfo model line.
    pub fn board_name(&self) -> Option<&str> {
        self.device_tree.model.as_deref().or(self.cpu.cpuinfo_model.as_deref())
    }
}

/// The CPUs in this process's affinity mask.
#[cfg(target_os = "linux")]
fn allowed_cpus() -> Option<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data (all-zero is an empty set); sched_getaffinity writes at
    // most size_of::<cpu_set_t>() bytes into it, and CPU_ISSET reads it within bounds (the
    // index is below CPU_SETSIZE).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return None;
        }
        let n = (libc::CPU_SETSIZE as usize).min(MAX_CPUS);
        let v: Vec<usize> = (0..n).filter(|&i| libc::CPU_ISSET(i, &set)).collect();
        (!v.is_empty()).then_some(v)
    }
}

#[cfg(not(target_os = "linux"))]
fn allowed_cpus() -> Option<Vec<usize>> {
    None
}
