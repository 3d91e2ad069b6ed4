//! Single packet authorization (SPA), compatible with fwknop's default modern mode.
//!
//! One UDP datagram proves that its sender holds two shared keys and asks for a set of
//! ports to be opened for an address. This module decodes and verifies such packets (as
//! sent by fwknop clients 2.5 and later with `--use-hmac`, the default Rijndael mode) and
//! encodes them for our own client. It is pure code: no sockets, no clock, no files, no
//! randomness of its own (the caller passes the current time and, to encode, random bytes).
//!
//! # The packet
//!
//! ```text
//! wire    = base64(ciphertext) without its first 10 characters ("U2FsdGVkX1", the base64 of
//!           "Salted__") and without '=' padding, followed by base64(HMAC-SHA256) (43 chars)
//! HMAC    = HMAC-SHA256(hmac key, "U2FsdGVkX1" + the ciphertext part of the wire)
//! cipher  = "Salted__" + 8-byte salt + AES-256-CBC(PKCS#7)(plaintext); key and IV from
//!           OpenSSL's EVP_BytesToKey with MD5, one round, over the key bytes and the salt
//! plain   = random:user:timestamp:version:type:message[:server_auth][:client_timeout]:digest
//!           (user, message and server_auth in base64 without padding; random is 16 digits;
//!           digest is base64(SHA-256(everything before the last ':')) without padding)
//! message = ADDR,proto/port[,proto/port...]   (ADDR 0.0.0.0 means "the packet's source")
//! ```
//!
//! # Order of checks ([`SpaDoor::verify`])
//!
//! 1. Size (140 to 1500 bytes), no `U2FsdGVkX1` or GnuPG (`hQ`) prefix (fwknopd refuses
//!    those: tacked onto a captured packet they would dodge the replay check), base64 only.
//! 2. The HMAC, in constant time, **before anything is decrypted**. Everything before this
//!    point costs one SHA-256 pass over at most 1500 bytes and allocates nothing, so a flood
//!    of forged packets cannot make the receiver do more; such refusals
//!    ([`Refusal::is_unauthenticated`]) should be counted, not logged one by one.
//! 3. Replay: the SHA-256 of the packet data must not be in the [`ReplayCache`].
//! 4. Decryption and decoding (wrong encryption key, malformed fields, bad inner digest,
//!    unknown version, command or NAT messages, GnuPG-sized packets: refused).
//! 5. The packet enters the replay cache (it was authentic, whatever follows).
//! 6. Age: the timestamp must be within [`SpaDoor::max_age`] of `now`, both directions.
//! 7. Address: `0.0.0.0` means the source; with [`SpaDoor::require_source`], any other
//!    address must equal the source.
//! 8. Every requested protocol/port must be in the door's [`SpaDoor::access`] list.
//!
//! # What it does not do
//!
//! No GnuPG mode, no legacy (non-HMAC) mode, no other HMAC or inner digest than SHA-256, no
//! NAT or command messages (refused with a reason), no `SPA over HTTP`. It does not read key
//! files, open sockets, run commands or keep time: the daemon and the client do.
//!
//! An extension: the address in a message may also be an IPv6 literal (fwknop 2.6 only
//! writes IPv4 addresses there; its clients use `0.0.0.0` with IPv6, which works here).
//!
//! # Example
//!
//! ```
//! use std::net::IpAddr;
//! use knock_core::spa::{AccessPort, ReplayCache, SecretKey, SpaDoor, SpaKeys, SpaRequest, encode};
//!
//! let keys = SpaKeys::new(
//!     SecretKey::from_base64("p94UgXOyC8ZqKULnkrtgEsq4DqkbcSyhspnzUE4gQlY=")?,
//!     SecretKey::from_base64("wMipfKH7Up65R3ciFGUHP2jSPFU0OjvpMsumO1r51Q9/8e5aLg2M9fvbWV+pqmirbzwYgBRQHzWq2KCs4jVYTw==")?,
//! )?;
//! let request = SpaRequest {
//!     username: "alice".to_owned(),
//!     timestamp: 1_800_000_000,
//!     allow: "0.0.0.0".parse()?,
//!     access: AccessPort::parse_list("tcp/22")?,
//!     client_timeout: None,
//! };
//! let packet = encode(&request, &keys, &[7; 16])?; // random bytes from a CSPRNG in real use
//!
//! let door = SpaDoor::new(keys, AccessPort::parse_list("tcp/22,udp/1194")?);
//! let mut cache = ReplayCache::default();
//! let source: IpAddr = "192.0.2.7".parse()?;
//! let grant = door.verify(1_800_000_005, source, packet.as_bytes(), &mut cache)?;
//! assert_eq!(grant.address, source);
//! assert_eq!(grant.ports, AccessPort::parse_list("tcp/22")?);
//! // The same packet again is a replay.
//! assert!(door.verify(1_800_000_006, source, packet.as_bytes(), &mut cache).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod replay;

use core::fmt;
use std::net::{IpAddr, Ipv4Addr};

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::packet::Protocol;

pub use replay::{ReplayCache, ReplayCacheError, ReplayCacheFull};

/// The base64 of `Salted__`, which fwknop strips from the front of every Rijndael packet.
pub const SALTED_PREFIX_B64: &str = "U2FsdGVkX1";
/// The base64 prefix of a GnuPG message, which fwknop strips in GnuPG mode.
pub const GPG_PREFIX_B64: &str = "hQ";
/// fwknop's default SPA port (UDP).
pub const DEFAULT_PORT: u16 = 62201;
/// The default maximum packet age, both directions (fwknopd's `MAX_SPA_PACKET_AGE`).
pub const DEFAULT_MAX_AGE_SECS: u64 = 120;
/// The smallest packet considered (fwknopd's `MIN_SPA_DATA_SIZE`).
pub const MIN_PACKET_LEN: usize = 140;
/// The largest packet considered (fwknopd's `MAX_SPA_PACKET_LEN`).
pub const MAX_PACKET_LEN: usize = 1500;
/// Packets this long or longer are GnuPG-encrypted for fwknop (`MIN_GNUPG_MSG_SIZE`).
pub const GPG_MIN_LEN: usize = 400;
/// How many random bytes [`encode`] needs: 8 for the random digits, 8 for the salt.
pub const ENCODE_RANDOM_LEN: usize = 16;
/// The protocol version fwknop 2.5 to 2.6 writes, and [`encode`] too.
pub const VERSION: &str = "3.0.0";
/// The largest encryption key, in bytes (AES-256; fwknop's `RIJNDAEL_MAX_KEYSIZE`).
pub const MAX_KEY_LEN: usize = 32;
/// The largest HMAC key, in bytes (fwknop's `MAX_DIGEST_BLOCK_LEN`).
pub const MAX_HMAC_KEY_LEN: usize = 128;
/// The largest client timeout a message may carry (fwknop's limit, 2 << 15).
pub const MAX_CLIENT_TIMEOUT: u32 = 2 << 15;

const HMAC_B64_LEN: usize = 43;
const DIGEST_B64_LEN: usize = 43;
const RANDOM_DIGITS: usize = 16;
const MAX_USERNAME_LEN: usize = 64;
const MAX_MESSAGE_LEN: usize = 256;
const MAX_TIMESTAMP_LEN: usize = 12;
const MAX_VERSION_LEN: usize = 8;
const MAX_FIELDS: usize = 10;
const BLOCK: usize = 16;

/// Standard alphabet, padding optional, trailing bits tolerated (what fwknop accepts).
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true)
        .with_encode_padding(false),
);
/// Standard alphabet, no padding, canonical only: the HMAC must have one spelling.
const STRICT: GeneralPurpose = general_purpose::STANDARD_NO_PAD;

// ---------------------------------------------------------------------------------------
// Keys

/// A secret key: bytes that never appear in `Debug` output or errors, and are zeroed when
/// dropped.
#[derive(Clone)]
pub struct SecretKey(Zeroizing<Vec<u8>>);

impl SecretKey {
    /// A key from its bytes.
    #[must_use]
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// A key from base64 text, as `fwknop --key-gen` prints it (`KEY_BASE64`,
    /// `HMAC_KEY_BASE64`); surrounding blanks are ignored, padding is optional.
    ///
    /// # Errors
    /// [`KeyError::BadBase64`] (the error does not quote the text) or
    /// [`KeyError::Empty`].
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let bytes = Zeroizing::new(
            LENIENT
                .decode(text.trim().as_bytes())
                .map_err(|_| KeyError::BadBase64)?,
        );
        if bytes.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(Self(bytes))
    }

    /// The key's length in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the key is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl PartialEq for SecretKey {
    /// Constant-time comparison (the lengths are not secret).
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len() && bool::from(self.0.ct_eq(&other.0))
    }
}

impl Eq for SecretKey {}

/// A problem with a key. Never contains key material.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The text is not base64.
    #[error("the key is not valid base64")]
    BadBase64,
    /// The key is empty.
    #[error("the key is empty")]
    Empty,
    /// The encryption key is longer than [`MAX_KEY_LEN`] bytes.
    #[error("the encryption key is {len} bytes; at most {MAX_KEY_LEN} are allowed")]
    EncryptionKeyTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The HMAC key is longer than [`MAX_HMAC_KEY_LEN`] bytes.
    #[error("the HMAC key is {len} bytes; at most {MAX_HMAC_KEY_LEN} are allowed")]
    HmacKeyTooLong {
        /// Its length in bytes.
        len: usize,
    },
}

/// The two keys of a door: Rijndael (AES) encryption and HMAC-SHA256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpaKeys {
    encryption: SecretKey,
    hmac: SecretKey,
}

impl SpaKeys {
    /// Both keys, checked for length (1 to [`MAX_KEY_LEN`] and 1 to [`MAX_HMAC_KEY_LEN`]
    /// bytes; `fwknop --key-gen` makes 32 and 64).
    ///
    /// # Errors
    /// [`KeyError`] for an empty or too long key.
    pub fn new(encryption: SecretKey, hmac: SecretKey) -> Result<Self, KeyError> {
        if encryption.is_empty() || hmac.is_empty() {
            return Err(KeyError::Empty);
        }
        if encryption.len() > MAX_KEY_LEN {
            return Err(KeyError::EncryptionKeyTooLong {
                len: encryption.len(),
            });
        }
        if hmac.len() > MAX_HMAC_KEY_LEN {
            return Err(KeyError::HmacKeyTooLong { len: hmac.len() });
        }
        Ok(Self { encryption, hmac })
    }
}

// ---------------------------------------------------------------------------------------
// Access lists

/// One `proto/port` of an access request or an `SPA_Access` list (`tcp/22`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccessPort {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The port, 1-65535.
    pub port: u16,
}

/// A bad `proto/port` list.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccessError {
    /// The list or one of its items is empty.
    #[error("empty item in protocol/port list (expected e.g. tcp/22,udp/1194)")]
    Empty {
        /// Byte offset of the item in the text.
        offset: usize,
    },
    /// An item is not `proto/port`.
    #[error("\"{item}\" is not protocol/port (expected e.g. tcp/22)")]
    Syntax {
        /// Byte offset of the item in the text.
        offset: usize,
        /// The item.
        item: String,
    },
    /// A protocol other than tcp or udp.
    #[error("unknown protocol \"{protocol}\" (expected tcp or udp)")]
    Protocol {
        /// Byte offset of the item in the text.
        offset: usize,
        /// The protocol as written.
        protocol: String,
    },
    /// A port that is not 1-65535.
    #[error("port \"{port}\" is invalid (expected 1-65535)")]
    Port {
        /// Byte offset of the port in the text.
        offset: usize,
        /// The port as written.
        port: String,
    },
}

impl AccessError {
    /// The byte offset in the parsed text where the problem is.
    #[must_use]
    pub fn offset(&self) -> usize {
        match self {
            Self::Empty { offset }
            | Self::Syntax { offset, .. }
            | Self::Protocol { offset, .. }
            | Self::Port { offset, .. } => *offset,
        }
    }
}

impl AccessPort {
    /// A TCP port.
    #[must_use]
    pub const fn tcp(port: u16) -> Self {
        Self {
            protocol: Protocol::Tcp,
            port,
        }
    }

    /// A UDP port.
    #[must_use]
    pub const fn udp(port: u16) -> Self {
        Self {
            protocol: Protocol::Udp,
            port,
        }
    }

    /// Parses `tcp/22,udp/1194` (protocols in any case, blanks around items allowed).
    ///
    /// # Errors
    /// The first bad item, with its byte offset.
    pub fn parse_list(text: &str) -> Result<Vec<Self>, AccessError> {
        let mut list = Vec::new();
        let mut offset = 0;
        for raw in text.split(',') {
            let lead = raw.len() - raw.trim_start().len();
            let item = raw.trim();
            let at = offset + lead;
            offset += raw.len() + 1;
            if item.is_empty() {
                return Err(AccessError::Empty { offset: at });
            }
            let Some((protocol, port)) = item.split_once('/') else {
                return Err(AccessError::Syntax {
                    offset: at,
                    item: item.to_owned(),
                });
            };
            let protocol_text = protocol.trim();
            let protocol = if protocol_text.eq_ignore_ascii_case("tcp") {
                Protocol::Tcp
            } else if protocol_text.eq_ignore_ascii_case("udp") {
                Protocol::Udp
            } else {
                return Err(AccessError::Protocol {
                    offset: at,
                    protocol: protocol_text.to_owned(),
                });
            };
            let port_text = port.trim();
            let port_at = at + item.len() - port.trim_start().len();
            let port = parse_port(port_text).ok_or_else(|| AccessError::Port {
                offset: port_at,
                port: port_text.to_owned(),
            })?;
            list.push(Self { protocol, port });
        }
        Ok(list)
    }
}

fn parse_port(text: &str) -> Option<u16> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u16>().ok().filter(|&port| port != 0)
}

impl fmt::Display for AccessPort {
    /// `tcp/22`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.protocol, self.port)
    }
}

/// A `proto/port` list as written in `SPA_Access` and in messages: `tcp/22,udp/1194`.
#[derive(Clone, Copy, Debug)]
pub struct DisplayAccess<'a>(pub &'a [AccessPort]);

impl fmt::Display for DisplayAccess<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, item) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            write!(f, "{item}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Refusals

/// A field of the decrypted message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Field {
    /// The message as a whole (non-printable characters, field count).
    Layout,
    /// The 16 random digits.
    Random,
    /// The user name.
    Username,
    /// The timestamp.
    Timestamp,
    /// The protocol version.
    Version,
    /// The message type.
    MessageType,
    /// The access request `ADDR,proto/port,...`.
    Access,
    /// The optional server authentication field.
    ServerAuth,
    /// The client timeout.
    ClientTimeout,
    /// The inner digest.
    Digest,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Layout => "layout",
            Self::Random => "random value",
            Self::Username => "user name",
            Self::Timestamp => "timestamp",
            Self::Version => "version",
            Self::MessageType => "message type",
            Self::Access => "access request",
            Self::ServerAuth => "server auth",
            Self::ClientTimeout => "client timeout",
            Self::Digest => "digest",
        })
    }
}

/// Why a packet was refused. Never contains key material; fields quoted from a packet
/// are bounded in length.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// Shorter than [`MIN_PACKET_LEN`].
    #[error("not SPA data: {len} bytes is too short")]
    TooShort {
        /// The payload length.
        len: usize,
    },
    /// Longer than [`MAX_PACKET_LEN`].
    #[error("not SPA data: {len} bytes is too long")]
    TooLong {
        /// The payload length.
        len: usize,
    },
    /// Starts with the base64 of `Salted__`, which clients strip: a prefix tacked onto a
    /// captured packet to dodge the replay check.
    #[error("SPA data starts with the base64 of \"Salted__\" (prefix tacked on, refused)")]
    SaltedPrefix,
    /// A GnuPG-sized packet starting with the GnuPG base64 prefix (tacked on).
    #[error("SPA data starts with the GnuPG prefix (prefix tacked on, refused)")]
    GpgPrefix,
    /// Not base64 text.
    #[error("not SPA data: not base64")]
    NotBase64,
    /// The HMAC does not match (wrong HMAC key, or not an SPA packet for this door).
    #[error("HMAC verification failed")]
    BadHmac,
    /// The same packet was seen before.
    #[error("replayed SPA packet (seen before)")]
    Replay,
    /// The replay cache is full of live entries, so the packet cannot be remembered.
    #[error("replay cache full ({capacity} live entries); packet refused")]
    ReplayCacheFull {
        /// The cache's capacity.
        capacity: usize,
    },
    /// Authentic, but GnuPG-encrypted (not supported).
    #[error("GnuPG-encrypted SPA is not supported")]
    Gpg,
    /// Authentic, but the ciphertext is not a whole number of AES blocks after a salt.
    #[error("bad ciphertext (not salted AES blocks)")]
    BadCiphertext,
    /// Authentic, but decryption failed: most likely a wrong encryption key.
    #[error("decryption failed (wrong encryption key?)")]
    DecryptionFailed,
    /// A field of the decrypted message is malformed.
    #[error("malformed {field} in SPA message")]
    Malformed {
        /// The field.
        field: Field,
    },
    /// The inner digest does not match the message.
    #[error("inner digest mismatch")]
    BadDigest,
    /// The inner digest is not SHA-256 (fwknop's default; others are not supported).
    #[error("unsupported inner digest type (only SHA-256 is supported)")]
    UnsupportedDigest,
    /// A protocol version this decoder does not know.
    #[error("unsupported SPA version \"{version}\"")]
    UnsupportedVersion {
        /// The version as sent (at most 8 characters).
        version: String,
    },
    /// A command message (fwknop's `--server-cmd`): never executed.
    #[error("SPA command messages are not supported")]
    CommandMessage,
    /// A NAT access message (forwarding): not supported.
    #[error("SPA NAT access messages are not supported")]
    NatAccess,
    /// A protocol other than tcp or udp in the access request (`icmp`, `none`).
    #[error("unsupported protocol \"{protocol}\" in access request")]
    UnsupportedProtocol {
        /// The protocol as sent (at most 4 characters).
        protocol: String,
    },
    /// The timestamp is more than the maximum age in the past.
    #[error("SPA packet too old ({age} s; at most {max_age} s)")]
    TooOld {
        /// How old, in seconds.
        age: u64,
        /// The door's maximum age.
        max_age: u64,
    },
    /// The timestamp is more than the maximum age in the future.
    #[error("SPA packet from the future ({ahead} s ahead; at most {max_age} s)")]
    TooNew {
        /// How far ahead, in seconds.
        ahead: u64,
        /// The door's maximum age.
        max_age: u64,
    },
    /// The message names another address than the packet's source, and the door requires
    /// the source.
    #[error("address {requested} in the message is not the packet's source {from}")]
    SourceMismatch {
        /// The address in the message.
        requested: IpAddr,
        /// The packet's source.
        from: IpAddr,
    },
    /// A requested protocol/port is not in the door's access list.
    #[error("{requested} is not allowed by this door")]
    NotAllowed {
        /// The first requested port that is not allowed.
        requested: AccessPort,
    },
}

impl Refusal {
    /// Whether the packet was refused before its HMAC was verified (or by the HMAC): such
    /// packets may come from anyone, so a receiver should count them rather than log each.
    #[must_use]
    pub fn is_unauthenticated(&self) -> bool {
        matches!(
            self,
            Self::TooShort { .. }
                | Self::TooLong { .. }
                | Self::SaltedPrefix
                | Self::GpgPrefix
                | Self::NotBase64
                | Self::BadHmac
        )
    }

    /// A short stable name for logs and JSON events (`bad_hmac`, `replay`, `too_old`, ...).
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooShort { .. } => "too_short",
            Self::TooLong { .. } => "too_long",
            Self::SaltedPrefix => "salted_prefix",
            Self::GpgPrefix => "gpg_prefix",
            Self::NotBase64 => "not_base64",
            Self::BadHmac => "bad_hmac",
            Self::Replay => "replay",
            Self::ReplayCacheFull { .. } => "replay_cache_full",
            Self::Gpg => "gpg",
            Self::BadCiphertext => "bad_ciphertext",
            Self::DecryptionFailed => "decryption_failed",
            Self::Malformed { .. } => "malformed",
            Self::BadDigest => "bad_digest",
            Self::UnsupportedDigest => "unsupported_digest",
            Self::UnsupportedVersion { .. } => "unsupported_version",
            Self::CommandMessage => "command_message",
            Self::NatAccess => "nat_access",
            Self::UnsupportedProtocol { .. } => "unsupported_protocol",
            Self::TooOld { .. } => "too_old",
            Self::TooNew { .. } => "too_new",
            Self::SourceMismatch { .. } => "source_mismatch",
            Self::NotAllowed { .. } => "not_allowed",
        }
    }
}

// ---------------------------------------------------------------------------------------
// Decoding

/// A decrypted, well-formed access request (before the age, address and access checks of
/// [`SpaDoor::verify`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpaMessage {
    /// The 16 random digits.
    pub random: String,
    /// The user name the client sent (fwknop sends the login name).
    pub username: String,
    /// The client's clock, Unix seconds.
    pub timestamp: u64,
    /// The protocol version (`3.0.0`).
    pub version: String,
    /// The address to let in (`0.0.0.0`: the packet's source).
    pub allow: IpAddr,
    /// The requested protocols/ports.
    pub access: Vec<AccessPort>,
    /// The client's requested timeout in seconds (message type 3), if any.
    pub client_timeout: Option<u32>,
}

/// Checks the outer layer and the HMAC: steps 1 and 2 of [`SpaDoor::verify`].
fn authenticate(packet: &[u8], keys: &SpaKeys) -> Result<(), Refusal> {
    let len = packet.len();
    if len < MIN_PACKET_LEN {
        return Err(Refusal::TooShort { len });
    }
    if len > MAX_PACKET_LEN {
        return Err(Refusal::TooLong { len });
    }
    if packet.starts_with(SALTED_PREFIX_B64.as_bytes()) {
        return Err(Refusal::SaltedPrefix);
    }
    if len > GPG_MIN_LEN && packet.starts_with(GPG_PREFIX_B64.as_bytes()) {
        return Err(Refusal::GpgPrefix);
    }
    if !packet
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    {
        return Err(Refusal::NotBase64);
    }
    let (data, tag_b64) = packet.split_at(len - HMAC_B64_LEN);
    let mut tag = [0u8; 32];
    match STRICT.decode_slice(tag_b64, &mut tag) {
        Ok(32) => {}
        _ => return Err(Refusal::BadHmac),
    }
    let mut mac =
        Hmac::<Sha256>::new_from_slice(keys.hmac.bytes()).map_err(|_| Refusal::BadHmac)?;
    mac.update(SALTED_PREFIX_B64.as_bytes());
    mac.update(data);
    mac.verify_slice(&tag).map_err(|_| Refusal::BadHmac)
}

/// EVP_BytesToKey(MD5, one round): key = D1 || D2, IV = D3, Dn = MD5(Dn-1 || key || salt).
fn derive_key_iv(key: &[u8], salt: &[u8]) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 16]>) {
    let mut out = Zeroizing::new([0u8; 48]);
    let mut previous: Option<Zeroizing<[u8; 16]>> = None;
    for chunk in out.chunks_mut(16) {
        let mut md5 = Md5::new();
        if let Some(previous) = &previous {
            md5.update(previous.as_slice());
        }
        md5.update(key);
        md5.update(salt);
        let digest: [u8; 16] = md5.finalize().into();
        chunk.copy_from_slice(&digest);
        previous = Some(Zeroizing::new(digest));
    }
    let mut k = Zeroizing::new([0u8; 32]);
    let mut iv = Zeroizing::new([0u8; 16]);
    k.copy_from_slice(&out[..32]);
    iv.copy_from_slice(&out[32..]);
    (k, iv)
}

/// Decrypts an authenticated packet's data (the wire text minus the HMAC).
fn decrypt(data: &[u8], keys: &SpaKeys) -> Result<Zeroizing<Vec<u8>>, Refusal> {
    let mut text = Vec::with_capacity(SALTED_PREFIX_B64.len() + data.len());
    text.extend_from_slice(SALTED_PREFIX_B64.as_bytes());
    text.extend_from_slice(data);
    let raw = LENIENT.decode(&text).map_err(|_| Refusal::BadCiphertext)?;
    if raw.len() < 2 * BLOCK || raw.len() % BLOCK != 0 || !raw.starts_with(b"Salted__") {
        return Err(Refusal::BadCiphertext);
    }
    let (key, iv) = derive_key_iv(keys.encryption.bytes(), &raw[8..16]);
    let decryptor = cbc::Decryptor::<aes::Aes256>::new_from_slices(key.as_slice(), iv.as_slice())
        .map_err(|_| Refusal::DecryptionFailed)?;
    let plain = decryptor
        .decrypt_padded_vec::<Pkcs7>(&raw[16..])
        .map_err(|_| Refusal::DecryptionFailed)?;
    let plain = Zeroizing::new(plain);
    // A right key yields 16 digits and a ':' first (fwknop's own check).
    if plain.len() <= RANDOM_DIGITS
        || !plain[..RANDOM_DIGITS].iter().all(u8::is_ascii_digit)
        || plain[RANDOM_DIGITS] != b':'
    {
        return Err(Refusal::DecryptionFailed);
    }
    Ok(plain)
}

fn b64_field(text: &str, field: Field, max: usize) -> Result<String, Refusal> {
    let malformed = Refusal::Malformed { field };
    if text.is_empty() || text.len() > max * 4 / 3 + 4 {
        return Err(malformed);
    }
    let bytes = LENIENT
        .decode(text.as_bytes())
        .map_err(|_| malformed.clone())?;
    let string = String::from_utf8(bytes).map_err(|_| malformed.clone())?;
    if string.is_empty() || string.len() > max || string.contains('\0') {
        return Err(malformed);
    }
    Ok(string)
}

fn valid_username(name: &str) -> bool {
    const FORBIDDEN: &[u8] = b"\"/\\[]:;|=,+*?<>";
    !name.is_empty()
        && name.len() <= MAX_USERNAME_LEN
        && name
            .bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && !FORBIDDEN.contains(&b))
}

fn digits(text: &str, max_len: usize) -> Option<u64> {
    if text.is_empty() || text.len() > max_len || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn parse_version(text: &str) -> Result<String, Refusal> {
    if text.is_empty()
        || text.len() > MAX_VERSION_LEN
        || !text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    {
        return Err(Refusal::Malformed {
            field: Field::Version,
        });
    }
    // fwknop has written "2.0.x" and "3.0.0"; the layout has not changed since.
    let major = text.split('.').next().unwrap_or_default();
    if major != "2" && major != "3" {
        return Err(Refusal::UnsupportedVersion {
            version: text.to_owned(),
        });
    }
    Ok(text.to_owned())
}

/// Parses `ADDR,proto/port[,proto/port...]`.
fn parse_access_message(text: &str) -> Result<(IpAddr, Vec<AccessPort>), Refusal> {
    let malformed = || Refusal::Malformed {
        field: Field::Access,
    };
    let mut items = text.split(',');
    let address = items.next().ok_or_else(malformed)?;
    let allow: IpAddr = address.parse().map_err(|_| malformed())?;
    let mut access = Vec::new();
    for item in items {
        let (protocol, port) = item.split_once('/').ok_or_else(malformed)?;
        let protocol = match protocol {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "icmp" | "none" => {
                return Err(Refusal::UnsupportedProtocol {
                    protocol: protocol.to_owned(),
                });
            }
            _ => return Err(malformed()),
        };
        let port = parse_port(port).ok_or_else(malformed)?;
        access.push(AccessPort { protocol, port });
    }
    if access.is_empty() {
        return Err(malformed());
    }
    Ok((allow, access))
}

/// Parses the decrypted plaintext (`random:user:...:digest`).
fn parse_plaintext(plain: &[u8]) -> Result<SpaMessage, Refusal> {
    let layout = Refusal::Malformed {
        field: Field::Layout,
    };
    if !plain.iter().all(|&b| (0x20..=0x7e).contains(&b)) {
        return Err(layout);
    }
    let text = core::str::from_utf8(plain).map_err(|_| layout.clone())?;
    let (body, digest) = text.rsplit_once(':').ok_or_else(|| layout.clone())?;
    if digest.len() != DIGEST_B64_LEN {
        return Err(if matches!(digest.len(), 22 | 27 | 64 | 86) {
            Refusal::UnsupportedDigest
        } else {
            Refusal::Malformed {
                field: Field::Digest,
            }
        });
    }
    let expected = STRICT.encode(Sha256::digest(body.as_bytes()));
    if !bool::from(expected.as_bytes().ct_eq(digest.as_bytes())) {
        return Err(Refusal::BadDigest);
    }
    let fields: Vec<&str> = body.splitn(MAX_FIELDS, ':').collect();
    if fields.len() < 6 || fields.iter().any(|f| f.contains(':')) {
        return Err(layout);
    }
    let random = fields[0];
    if random.len() != RANDOM_DIGITS || !random.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Refusal::Malformed {
            field: Field::Random,
        });
    }
    let username = b64_field(fields[1], Field::Username, MAX_USERNAME_LEN)?;
    if !valid_username(&username) {
        return Err(Refusal::Malformed {
            field: Field::Username,
        });
    }
    let timestamp = digits(fields[2], MAX_TIMESTAMP_LEN).ok_or(Refusal::Malformed {
        field: Field::Timestamp,
    })?;
    let version = parse_version(fields[3])?;
    let message_type = digits(fields[4], 2).ok_or(Refusal::Malformed {
        field: Field::MessageType,
    })?;
    let with_timeout = match message_type {
        0 => return Err(Refusal::CommandMessage),
        1 => false,
        3 => true,
        2 | 4..=6 => return Err(Refusal::NatAccess),
        _ => {
            return Err(Refusal::Malformed {
                field: Field::MessageType,
            });
        }
    };
    let message = b64_field(fields[5], Field::Access, MAX_MESSAGE_LEN)?;
    let (allow, access) = parse_access_message(&message)?;
    // What follows the message: [server_auth] for type 1, [server_auth:]timeout for type 3.
    let rest = &fields[6..];
    let (server_auth, timeout) = match (with_timeout, rest) {
        (false, []) => (None, None),
        (false, [auth]) => (Some(*auth), None),
        (true, [timeout]) => (None, Some(*timeout)),
        (true, [auth, timeout]) => (Some(*auth), Some(*timeout)),
        _ => return Err(layout),
    };
    if let Some(auth) = server_auth {
        b64_field(auth, Field::ServerAuth, MAX_MESSAGE_LEN)?;
    }
    let client_timeout = match timeout {
        None => None,
        Some(text) => Some(
            digits(text, 6)
                .and_then(|t| u32::try_from(t).ok())
                .filter(|&t| t <= MAX_CLIENT_TIMEOUT)
                .ok_or(Refusal::Malformed {
                    field: Field::ClientTimeout,
                })?,
        ),
    };
    Ok(SpaMessage {
        random: random.to_owned(),
        username,
        timestamp,
        version,
        allow,
        access,
        client_timeout: client_timeout.filter(|&t| t > 0),
    })
}

/// Authenticates, decrypts and decodes one packet payload with `keys`: steps 1, 2 and 4 of
/// [`SpaDoor::verify`] (no replay, age, address or access checks).
///
/// # Errors
/// Why the packet is refused.
pub fn decode(packet: &[u8], keys: &SpaKeys) -> Result<SpaMessage, Refusal> {
    authenticate(packet, keys)?;
    decode_authenticated(packet, keys)
}

fn decode_authenticated(packet: &[u8], keys: &SpaKeys) -> Result<SpaMessage, Refusal> {
    if packet.len() >= GPG_MIN_LEN {
        return Err(Refusal::Gpg);
    }
    let data = &packet[..packet.len() - HMAC_B64_LEN];
    let plain = decrypt(data, keys)?;
    parse_plaintext(&plain)
}

/// The plaintext parser alone, for the fuzz target (`cfg(fuzzing)` only): what a holder of
/// the keys could make the decoder parse.
#[cfg(fuzzing)]
#[doc(hidden)]
pub fn parse_plaintext_for_fuzzing(plain: &[u8]) -> Result<SpaMessage, Refusal> {
    parse_plaintext(plain)
}

/// The replay-cache key of a packet: SHA-256 of the payload as received.
#[must_use]
pub fn packet_digest(packet: &[u8]) -> [u8; 32] {
    Sha256::digest(packet).into()
}

// ---------------------------------------------------------------------------------------
// Verification for a door

/// What a verified packet grants.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Grant {
    /// The address to let in (the message's, or the source for `0.0.0.0`).
    pub address: IpAddr,
    /// The protocols/ports to open for it (all within the door's access list).
    pub ports: Vec<AccessPort>,
    /// The client's requested timeout in seconds, if any (the daemon caps it).
    pub client_timeout: Option<u32>,
    /// The user name in the message (informational: anyone with the keys can write any).
    pub username: String,
    /// The message's timestamp (Unix seconds).
    pub timestamp: u64,
}

/// An SPA door's verifier: its keys, what it may open, and its age rule.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpaDoor {
    /// The encryption and HMAC keys.
    pub keys: SpaKeys,
    /// The protocols/ports a client may ask for.
    pub access: Vec<AccessPort>,
    /// The largest accepted difference between the message's timestamp and now, seconds.
    pub max_age: u64,
    /// Whether the address in the message (other than `0.0.0.0`) must be the source.
    pub require_source: bool,
}

impl SpaDoor {
    /// A door with [`DEFAULT_MAX_AGE_SECS`] and `require_source` off.
    #[must_use]
    pub fn new(keys: SpaKeys, access: Vec<AccessPort>) -> Self {
        Self {
            keys,
            access,
            max_age: DEFAULT_MAX_AGE_SECS,
            require_source: false,
        }
    }

    /// Verifies one payload (a UDP datagram's data) received from `source` at `now_unix`
    /// (Unix seconds), in the order given in the [module documentation](self), recording
    /// authentic packets in `cache`.
    ///
    /// # Errors
    /// Why the packet is refused. [`Refusal::is_unauthenticated`] tells the refusals that
    /// anyone can provoke (count them; do not log each one).
    pub fn verify(
        &self,
        now_unix: u64,
        source: IpAddr,
        payload: &[u8],
        cache: &mut ReplayCache,
    ) -> Result<Grant, Refusal> {
        authenticate(payload, &self.keys)?;
        let digest = packet_digest(payload);
        if cache.contains(&digest, now_unix) {
            return Err(Refusal::Replay);
        }
        let message = decode_authenticated(payload, &self.keys)?;
        let expires = message.timestamp.saturating_add(self.max_age);
        if expires >= now_unix {
            cache
                .insert(digest, expires, now_unix)
                .map_err(|full| Refusal::ReplayCacheFull {
                    capacity: full.capacity,
                })?;
        }
        if message.timestamp < now_unix && now_unix - message.timestamp > self.max_age {
            return Err(Refusal::TooOld {
                age: now_unix - message.timestamp,
                max_age: self.max_age,
            });
        }
        if message.timestamp > now_unix && message.timestamp - now_unix > self.max_age {
            return Err(Refusal::TooNew {
                ahead: message.timestamp - now_unix,
                max_age: self.max_age,
            });
        }
        let address = if message.allow.is_unspecified() {
            source
        } else {
            if self.require_source && message.allow != source {
                return Err(Refusal::SourceMismatch {
                    requested: message.allow,
                    from: source,
                });
            }
            message.allow
        };
        if let Some(&requested) = message.access.iter().find(|p| !self.access.contains(p)) {
            return Err(Refusal::NotAllowed { requested });
        }
        Ok(Grant {
            address,
            ports: message.access,
            client_timeout: message.client_timeout,
            username: message.username,
            timestamp: message.timestamp,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Encoding

/// What our client asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpaRequest {
    /// The user name to send (fwknopd may require one; ours ignores it).
    pub username: String,
    /// The client's clock, Unix seconds.
    pub timestamp: u64,
    /// The address to let in; `0.0.0.0` asks for the packet's source. fwknopd 2.6 accepts
    /// IPv4 addresses only here.
    pub allow: IpAddr,
    /// The protocols/ports to open (at least one).
    pub access: Vec<AccessPort>,
    /// A requested timeout in seconds (sent as message type 3), at most
    /// [`MAX_CLIENT_TIMEOUT`].
    pub client_timeout: Option<u32>,
}

/// Why a request cannot be encoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The user name is empty, too long or has a character fwknop forbids.
    #[error("invalid SPA user name (1-64 printable characters, none of \"/\\[]:;|=,+*?<>)")]
    Username,
    /// No protocol/port requested.
    #[error("the access request names no protocol/port")]
    NoAccess,
    /// The client timeout is above [`MAX_CLIENT_TIMEOUT`].
    #[error("client timeout {0} is above {MAX_CLIENT_TIMEOUT}")]
    ClientTimeout(u32),
    /// The packet would be too long for fwknop's Rijndael mode.
    #[error("SPA packet too long ({0} bytes); request fewer ports")]
    TooLong(usize),
}

/// Encodes `request` as an SPA packet payload (base64 text, ready for one UDP datagram).
///
/// `random` must come from a cryptographically secure generator: its first 8 bytes make
/// the 16 random digits, the last 8 the encryption salt.
///
/// # Errors
/// [`EncodeError`] for a request fwknop could not carry.
pub fn encode(
    request: &SpaRequest,
    keys: &SpaKeys,
    random: &[u8; ENCODE_RANDOM_LEN],
) -> Result<String, EncodeError> {
    if !valid_username(&request.username) {
        return Err(EncodeError::Username);
    }
    if request.access.is_empty() {
        return Err(EncodeError::NoAccess);
    }
    let timeout = request.client_timeout.filter(|&t| t > 0);
    if let Some(t) = timeout.filter(|&t| t > MAX_CLIENT_TIMEOUT) {
        return Err(EncodeError::ClientTimeout(t));
    }
    let mut digit_seed = [0u8; 8];
    digit_seed.copy_from_slice(&random[..8]);
    let digits = u64::from_le_bytes(digit_seed) % 10_000_000_000_000_000;
    let allow = match request.allow {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
    };
    let allow = if allow.is_unspecified() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        allow
    };
    let message = format!("{allow},{}", DisplayAccess(&request.access));
    let mut body = Zeroizing::new(format!(
        "{digits:016}:{}:{}:{VERSION}:{}:{}",
        STRICT.encode(request.username.as_bytes()),
        request.timestamp,
        if timeout.is_some() { 3 } else { 1 },
        STRICT.encode(message.as_bytes()),
    ));
    if let Some(t) = timeout {
        body.push_str(&format!(":{t}"));
    }
    let digest = STRICT.encode(Sha256::digest(body.as_bytes()));
    body.push(':');
    body.push_str(&digest);

    let salt = &random[8..];
    let (key, iv) = derive_key_iv(keys.encryption.bytes(), salt);
    let encryptor = cbc::Encryptor::<aes::Aes256>::new_from_slices(key.as_slice(), iv.as_slice())
        .map_err(|_| EncodeError::TooLong(0))?;
    let ciphertext = encryptor.encrypt_padded_vec::<Pkcs7>(body.as_bytes());
    let mut raw = Vec::with_capacity(16 + ciphertext.len());
    raw.extend_from_slice(b"Salted__");
    raw.extend_from_slice(salt);
    raw.extend_from_slice(&ciphertext);
    let full = STRICT.encode(&raw);
    let mut mac =
        Hmac::<Sha256>::new_from_slice(keys.hmac.bytes()).map_err(|_| EncodeError::TooLong(0))?;
    mac.update(full.as_bytes());
    let tag = STRICT.encode(mac.finalize().into_bytes());
    let mut packet = String::with_capacity(full.len() + tag.len());
    packet.push_str(&full[SALTED_PREFIX_B64.len()..]);
    packet.push_str(&tag);
    if packet.len() >= GPG_MIN_LEN {
        return Err(EncodeError::TooLong(packet.len()));
    }
    Ok(packet)
}

#[cfg(test)]
mod tests;
