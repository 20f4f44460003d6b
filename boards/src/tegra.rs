//! `/etc/nv_tegra_release`: the NVIDIA Linux for Tegra (L4T) release, and the JetPack it ships in.

use serde::Serialize;

use crate::sysroot::SysRoot;

/// An L4T release ("R36, REVISION: 4.3" is 36.4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct L4tRelease {
    /// Major ("R36").
    pub major: u32,
    /// Minor (the first number of REVISION).
    pub minor: u32,
    /// Patch (the second number of REVISION; 0 when absent).
    pub patch: u32,
}

/// L4T releases and the JetPack each belongs to, from NVIDIA's JetPack archive.
const JETPACK: &[((u32, u32, u32), &str)] = &[
    ((32, 4, 3), "4.4"),
    ((32, 4, 4), "4.4.1"),
    ((32, 5, 0), "4.5"),
    ((32, 5, 1), "4.5.1"),
    ((32, 6, 1), "4.6"),
    ((32, 7, 1), "4.6.1"),
    ((32, 7, 2), "4.6.2"),
    ((32, 7, 3), "4.6.3"),
    ((32, 7, 4), "4.6.4"),
    ((32, 7, 5), "4.6.5"),
    ((32, 7, 6), "4.6.6"),
    ((35, 1, 0), "5.0.2"),
    ((35, 2, 1), "5.1"),
    ((35, 3, 1), "5.1.1"),
    ((35, 4, 1), "5.1.2"),
    ((35, 5, 0), "5.1.3"),
    ((35, 6, 0), "5.1.4"),
    ((35, 6, 1), "5.1.5"),
    ((36, 3, 0), "6.0"),
    ((36, 4, 0), "6.1"),
    ((36, 4, 3), "6.2"),
    ((36, 4, 4), "6.2.1"),
];

impl L4tRelease {
    /// Reads `/etc/nv_tegra_release` under `root`; `None` when missing or unreadable.
    pub fn read(root: &SysRoot) -> Option<L4tRelease> {
        L4tRelease::parse(&root.line("/etc/nv_tegra_release")?)
    }

    /// Parses the file's first line: `# R35 (release), REVISION: 4.1, GCID: ..., BOARD: ...`.
    pub fn parse(line: &str) -> Option<L4tRelease> {
        let after_r = line.trim_start_matches('#').trim().strip_prefix('R')?;
        let major: u32 = after_r.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()?;
        let rev = line.split("REVISION:").nth(1)?.split(',').next()?.trim();
        let mut nums = rev.split('.').map(|n| n.trim().parse::<u32>());
        let minor = nums.next()?.ok()?;
        let patch = match nums.next() {
            Some(n) => n.ok()?,
            None => 0,
        };
        (major < 1000 && minor < 1000 && patch < 1000).then_some(L4tRelease { major, minor, patch })
    }

    /// The JetPack release this L4T ships in; `None` for a release not in the table (a newer
    /// one: detection still uses the board's profile).
    pub fn jetpack(self) -> Option<&'static str> {
        JETPACK
            .iter()
            .find(|(v, _)| *v == (self.major, self.minor, self.patch))
            .map(|(_, jp)| *jp)
    }
}

impl std::fmt::Display for L4tRelease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_lines_parse() {
        let r = L4tRelease::parse("# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: Wed Jan  8 01:49:37 UTC 2025").unwrap();
        assert_eq!((r.major, r.minor, r.patch), (36, 4, 3));
        assert_eq!(r.jetpack(), Some("6.2"));
        let r = L4tRelease::parse("# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t210ref").unwrap();
        assert_eq!(r.to_string(), "32.7.1");
        assert_eq!(r.jetpack(), Some("4.6.1"));
        let r = L4tRelease::parse("# R99 (release), REVISION: 1").unwrap();
        assert_eq!((r.to_string().as_str(), r.jetpack()), ("99.1.0", None));
        for bad in [
            "",
            "garbage",
            "# R (release), REVISION: 4.1",
            "# R35 (release)",
            "# R35, REVISION: x.1",
            "# R99999 (release), REVISION: 1.1",
        ] {
            assert_eq!(L4tRelease::parse(bad), None, "{bad:?}");
        }
    }
}
