//! Vocabulary shared by the source model (`guest`) and the XVA records (`xva::records`): a
//! leaf module that imports nothing of this crate, so that neither of the two has to import
//! the other.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// HVM firmware.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Firmware {
    /// Legacy BIOS (hvmloader + SeaBIOS/ROMBIOS).
    Bios,
    /// UEFI (OVMF; XenServer 8 / XCP-ng 8.2 and later).
    Uefi,
}

impl Firmware {
    /// Every value, in the order `--firmware` lists them.
    pub const ALL: [Firmware; 2] = [Firmware::Bios, Firmware::Uefi];

    /// The name xapi and the command line use: `bios`, `uefi`.
    pub fn as_str(self) -> &'static str {
        match self {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
        }
    }
}

impl fmt::Display for Firmware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Firmware {
    type Err = String;

    /// `bios` or `uefi`, case-insensitive.
    fn from_str(s: &str) -> Result<Firmware, String> {
        Firmware::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown firmware {s:?}; one of bios, uefi"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for f in Firmware::ALL {
            assert_eq!(f.as_str().parse::<Firmware>(), Ok(f));
        }
        assert_eq!("UEFI".parse::<Firmware>(), Ok(Firmware::Uefi));
        assert!("efi".parse::<Firmware>().is_err());
    }
}
