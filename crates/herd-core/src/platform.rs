//! Platform families: osquery reports a distribution (`ubuntu`, `rhel`, `darwin`, ...); policies and vitals
//! queries target families (`linux`, `darwin`, `windows`, `chrome`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlatformFamily {
    Darwin,
    Windows,
    Linux,
    Chrome,
}

impl PlatformFamily {
    pub const ALL: [PlatformFamily; 4] = [Self::Darwin, Self::Windows, Self::Linux, Self::Chrome];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Darwin => "darwin",
            Self::Windows => "windows",
            Self::Linux => "linux",
            Self::Chrome => "chrome",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|family| family.as_str() == name)
    }

    /// The family of an `os_version.platform` value. Linux distributions are many (osquery reports the
    /// os-release `ID`), so anything that is not one of the other families but says it is like a known Linux,
    /// or is a known Linux ID, is Linux. Unknown platforms have no family.
    pub fn of_host_platform(platform: &str, platform_like: &str) -> Option<Self> {
        let platform = platform.trim().to_ascii_lowercase();
        match platform.as_str() {
            "darwin" | "macos" => return Some(Self::Darwin),
            "windows" => return Some(Self::Windows),
            "chrome" | "chromeos" => return Some(Self::Chrome),
            "" => return None,
            _ => {}
        }
        const LINUX_IDS: &[&str] = &[
            "linux",
            "ubuntu",
            "debian",
            "rhel",
            "centos",
            "fedora",
            "amzn",
            "arch",
            "archarm",
            "manjaro",
            "gentoo",
            "opensuse",
            "opensuse-leap",
            "opensuse-tumbleweed",
            "sles",
            "suse",
            "ol",
            "rocky",
            "almalinux",
            "kali",
            "pop",
            "linuxmint",
            "nixos",
            "alpine",
            "raspbian",
            "elementary",
            "neon",
        ];
        let like = platform_like.to_ascii_lowercase();
        if LINUX_IDS.contains(&platform.as_str()) || like.split_whitespace().any(|id| LINUX_IDS.contains(&id)) {
            Some(Self::Linux)
        } else {
            None
        }
    }
}

/// The platform a host reports in its osquery enroll request (`platform_type` bitmask) when no os_version
/// row is available yet.
pub fn family_of_platform_mask(mask: u32) -> Option<PlatformFamily> {
    if mask & 16 != 0 {
        Some(PlatformFamily::Darwin)
    } else if mask & 2 != 0 {
        Some(PlatformFamily::Windows)
    } else if mask & 8 != 0 {
        Some(PlatformFamily::Linux)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PlatformFamily::*;

    #[test]
    fn families_of_reported_platforms() {
        let cases: &[(&str, &str, Option<PlatformFamily>)] = &[
            ("darwin", "", Some(Darwin)),
            ("windows", "", Some(Windows)),
            ("ubuntu", "debian", Some(Linux)),
            ("rhel", "fedora", Some(Linux)),
            ("Ubuntu", "", Some(Linux)),
            ("someforkos", "ubuntu debian", Some(Linux)),
            ("chrome", "", Some(Chrome)),
            ("freebsd", "", None),
            ("", "", None),
        ];
        for (platform, like, want) in cases {
            assert_eq!(PlatformFamily::of_host_platform(platform, like), *want, "{platform}/{like}");
        }
    }

    #[test]
    fn platform_masks() {
        assert_eq!(family_of_platform_mask(9), Some(Linux));
        assert_eq!(family_of_platform_mask(17), Some(Darwin));
        assert_eq!(family_of_platform_mask(2), Some(Windows));
        assert_eq!(family_of_platform_mask(4), None);
    }

    #[test]
    fn parse_round_trips() {
        for family in PlatformFamily::ALL {
            assert_eq!(PlatformFamily::parse(family.as_str()), Some(family));
        }
        assert_eq!(PlatformFamily::parse("ubuntu"), None);
    }
}
