//! The device tree's `model` and `compatible` strings, and the SoC attributes in
//! `/sys/devices/soc0`.

use serde::Serialize;

use crate::sysroot::SysRoot;

/// Where the kernel exposes the flattened device tree (`/proc/device-tree` is a link to the
/// first on current kernels; older ones have only the link).
const DT_DIRS: [&str; 2] = ["/proc/device-tree", "/sys/firmware/devicetree/base"];

/// Most `compatible` strings kept (a real root node lists two to five).
const MAX_COMPATIBLE: usize = 16;

/// What the device tree says about the board.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct DeviceTree {
    /// The root node's `model` ("NVIDIA Jetson Orin Nano Developer Kit").
    pub model: Option<String>,
    /// The root node's `compatible` list, most specific first ("nvidia,p3768-0000+p3767-0005",
    /// ..., "nvidia,tegra234").
    pub compatible: Vec<String>,
}

impl DeviceTree {
    /// Reads the device tree under `root`; empty on machines without one (x86, ACPI arm64).
    pub fn read(root: &SysRoot) -> DeviceTree {
        for dir in DT_DIRS {
            let model = root.bytes(&format!("{dir}/model")).and_then(|b| first_string(&b));
            let compatible = root
                .bytes(&format!("{dir}/compatible"))
                .map(|b| strings(&b))
                .unwrap_or_default();
            if model.is_some() || !compatible.is_empty() {
                return DeviceTree { model, compatible };
            }
        }
        DeviceTree::default()
    }
}

/// The NUL-separated strings of a device-tree string-list property (printable ones only: a
/// corrupt property yields what is readable of it).
fn strings(bytes: &[u8]) -> Vec<String> {
    bytes
        .split(|&b| b == 0)
        .filter_map(|s| {
            let s = String::from_utf8_lossy(s);
            let s = s.trim();
            (!s.is_empty() && s.chars().all(|c| c.is_ascii_graphic() || c == ' ')).then(|| s.to_string())
        })
        .take(MAX_COMPATIBLE)
        .collect()
}

fn first_string(bytes: &[u8]) -> Option<String> {
    let s = bytes.split(|&b| b == 0).next()?;
    let s = String::from_utf8_lossy(s).trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// `/sys/devices/soc0`: the SoC as the kernel's soc-bus driver names it.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Soc {
    /// `family` ("Tegra", "jep106:0426", ...).
    pub family: Option<String>,
    /// `machine` (often the device-tree model).
    pub machine: Option<String>,
    /// `soc_id` (the Tegra chip id: 33 = T210, 25 = T194, 35 = T234).
    pub soc_id: Option<String>,
    /// `revision`.
    pub revision: Option<String>,
}

impl Soc {
    /// Reads `/sys/devices/soc0/*` under `root`; all `None` where there is no soc bus.
    pub fn read(root: &SysRoot) -> Soc {
        let f = |name: &str| root.line(&format!("/sys/devices/soc0/{name}"));
        Soc {
            family: f("family"),
            machine: f("machine"),
            soc_id: f("soc_id"),
            revision: f("revision"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_lists_split_and_skip_garbage() {
        assert_eq!(strings(b"a,b\0c,d\0"), vec!["a,b", "c,d"]);
        assert_eq!(strings(b"a,b\0\xff\xfe\0\0c"), vec!["a,b", "c"]);
        assert!(strings(b"").is_empty());
        assert_eq!(first_string(b"Model X\0"), Some("Model X".into()));
        assert_eq!(first_string(b"\0"), None);
    }
}
