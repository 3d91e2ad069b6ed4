//! `Nft_Set` / `Nft_Set_6`: a reference to an nftables set, `FAMILY TABLE SET`.

use std::fmt;

use super::error::ConfigErrorKind;
use super::parse::Located;

/// The nftables table families a door's set may live in.
///
/// `ip` tables only see IPv4 traffic and `ip6` tables only IPv6; `inet` tables see both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NftFamily {
    /// `ip`: IPv4 only.
    Ip,
    /// `ip6`: IPv6 only.
    Ip6,
    /// `inet`: IPv4 and IPv6.
    Inet,
}

impl NftFamily {
    /// The family's name in the `nft` syntax (`ip`, `ip6`, `inet`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ip => "ip",
            Self::Ip6 => "ip6",
            Self::Inet => "inet",
        }
    }

    /// Parses `ip`, `ip6` or `inet` (lower case, as `nft` spells them).
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "ip" => Some(Self::Ip),
            "ip6" => Some(Self::Ip6),
            "inet" => Some(Self::Inet),
            _ => None,
        }
    }

    /// The family's number in nf_tables netlink messages (`NFPROTO_IPV4` 2, `NFPROTO_IPV6`
    /// 10, `NFPROTO_INET` 1).
    #[must_use]
    pub const fn nfproto(self) -> u8 {
        match self {
            Self::Ip => 2,
            Self::Ip6 => 10,
            Self::Inet => 1,
        }
    }

    /// Whether a table of this family can hold IPv4 (`false`: IPv6) addresses of knockers.
    #[must_use]
    pub const fn carries(self, ipv6: bool) -> bool {
        match self {
            Self::Ip => !ipv6,
            Self::Ip6 => ipv6,
            Self::Inet => true,
        }
    }
}

impl fmt::Display for NftFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The longest table or set name the kernel accepts (`NFT_NAME_MAXLEN` is 256 with the NUL).
pub const MAX_NFT_NAME_LEN: usize = 255;

/// Whether `name` is a valid nftables identifier for a table or a set: an ASCII letter or
/// `_`, then letters, digits, `_`, `-`, `.` or `/` (the `nft` scanner's rule, without
/// quoting), at most [`MAX_NFT_NAME_LEN`] bytes.
#[must_use]
pub fn is_nft_identifier(name: &str) -> bool {
    let mut bytes = name.bytes();
    let Some(first) = bytes.next() else {
        return false;
    };
    name.len() <= MAX_NFT_NAME_LEN
        && (first.is_ascii_alphabetic() || first == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'))
}

/// A set named by `Nft_Set = FAMILY TABLE SET`: the knocker's address is added to it, with
/// the door's `Cmd_Timeout` as the element's timeout. Displays as `FAMILY TABLE SET`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NftSetRef {
    /// The table's family.
    pub family: NftFamily,
    /// The table's name (an nft identifier, see [`is_nft_identifier`]).
    pub table: String,
    /// The set's name (an nft identifier).
    pub set: String,
}

impl NftSetRef {
    /// A reference to set `set` in table `table` of family `family` (names not checked).
    #[must_use]
    pub fn new(family: NftFamily, table: impl Into<String>, set: impl Into<String>) -> Self {
        Self {
            family,
            table: table.into(),
            set: set.into(),
        }
    }
}

impl fmt::Display for NftSetRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.family, self.table, self.set)
    }
}

/// Parses the value of `nft_set` (`ipv6` false) or `nft_set_6` (`ipv6` true): `FAMILY TABLE
/// SET` separated by blanks. `value` is a trimmed, non-empty sub-slice of `line`; errors
/// point at the offending word.
pub(super) fn nft_set_value(
    line: &str,
    key: &str,
    value: &str,
    ipv6: bool,
) -> Result<NftSetRef, Located> {
    let key = key.to_ascii_lowercase();
    let words: Vec<&str> = value.split_whitespace().collect();
    let [family_text, table, set] = words[..] else {
        return Err(Located::at(
            line,
            value,
            ConfigErrorKind::NftSetSyntax {
                key,
                text: value.to_owned(),
            },
        ));
    };
    let Some(family) = NftFamily::from_name(family_text) else {
        return Err(Located::at(
            line,
            family_text,
            ConfigErrorKind::NftFamily {
                key,
                text: family_text.to_owned(),
            },
        ));
    };
    if !family.carries(ipv6) {
        return Err(Located::at(
            line,
            family_text,
            ConfigErrorKind::NftSetWrongFamily { family },
        ));
    }
    for (what, name) in [("table", table), ("set", set)] {
        if !is_nft_identifier(name) {
            return Err(Located::at(
                line,
                name,
                ConfigErrorKind::NftName {
                    what,
                    text: name.to_owned(),
                },
            ));
        }
    }
    Ok(NftSetRef::new(family, table, set))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_follow_the_nft_scanner() {
        for good in ["knockd", "ssh4", "_x", "a-b.c/d_e", "A"] {
            assert!(is_nft_identifier(good), "{good}");
        }
        for bad in ["", "4ssh", "-a", "a b", "a;b", "ä", "a\"", &"a".repeat(256)] {
            assert!(!is_nft_identifier(bad), "{bad}");
        }
        assert!(is_nft_identifier(&"a".repeat(255)));
    }

    #[test]
    fn families() {
        for family in [NftFamily::Ip, NftFamily::Ip6, NftFamily::Inet] {
            assert_eq!(NftFamily::from_name(family.as_str()), Some(family));
        }
        assert_eq!(NftFamily::from_name("INET"), None);
        assert_eq!(NftFamily::from_name("bridge"), None);
        assert!(NftFamily::Ip.carries(false) && !NftFamily::Ip.carries(true));
        assert!(!NftFamily::Ip6.carries(false) && NftFamily::Ip6.carries(true));
        assert!(NftFamily::Inet.carries(false) && NftFamily::Inet.carries(true));
        let set = NftSetRef::new(NftFamily::Inet, "knockd", "ssh4");
        assert_eq!(set.to_string(), "inet knockd ssh4");
    }
}
