//! Time-based knock sequences: RFC 6238 TOTP codes turned into ports.
//!
//! A TOTP door's `Sequence` lists **bases**. At unix time *t* the time-step counter is
//! `T = floor(t / step)`; the door's code for step `T` is the RFC 4226 HOTP value of `T`
//! (HMAC-SHA1, -SHA256 or -SHA512 over the 8-byte big-endian counter, dynamic truncation,
//! modulo `10^digits`), written with exactly `digits` digits, leading zeros kept. That code is
//! cut into as many equal decimal groups as the sequence has steps, left to right, and step
//! *i* is knocked on port `base_i + group_i` with step *i*'s protocol. So any authenticator
//! app or `oathtool` plus any knock client can compute the knock:
//!
//! ```
//! use knock_core::totp::{Algorithm, Code, Secret, Totp, TotpParams};
//! use knock_core::Knock;
//!
//! // Sequence = 40000,50000:udp with 8 digits: code 04718362 → 40471, then 58362/udp.
//! let bases = [Knock::tcp(40000), Knock::udp(50000)];
//! let code = Code::new(4_718_362, 8);
//! assert_eq!(code.to_string(), "04718362");
//! assert_eq!(
//!     knock_core::totp::code_to_sequence(code, &bases)?,
//!     [Knock::tcp(40471), Knock::udp(58362)]
//! );
//!
//! // RFC 6238 Appendix B, SHA1, T = 59 s: 94287082.
//! let secret = Secret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")?;
//! let params = TotpParams { algorithm: Algorithm::Sha1, digits: 8, ..TotpParams::default() };
//! let totp = Totp::new(secret, params, &bases)?;
//! assert_eq!(totp.code_at(59).to_string(), "94287082");
//! assert_eq!(totp.sequence_at(59), [Knock::tcp(49428), Knock::udp(57082)]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # For the matcher
//!
//! Everything is pure and takes the unix time in seconds from the caller:
//! [`Totp::window`] gives the candidate sequences of every step in `[T−W, T+W]`, each tagged
//! with its counter and whether it is past, current or future (a door accepts any of them;
//! `(door, counter)` identifies a code for "each code opens once");
//! [`Totp::next_step_boundary`] is when that set changes (for `poll_timeout`);
//! [`sequence_to_code`] and [`Totp::check_code`] tell a complete knock inside the door's port
//! ranges apart as valid, stale (before the window), future (after it) or wrong;
//! [`Totp::port_ranges`] are the port ranges a capture filter must cover (fixed, so the filter
//! never changes with the step). [`Totp::table`] computes all that once per step into a
//! [`CodeTable`], so classifying a knock costs no HMAC.
//! [`CodeTracker`] follows knocks on those ranges whatever their code (the matcher only
//! follows the window's codes), so that a daemon can say whether a complete knock outside
//! the window had a stale, a future or a wrong code.
//!
//! # Secrets
//!
//! A [`Secret`] never shows its bytes: its `Debug` is redacted and no error carries key
//! material. BASE32 text is read the way authenticator apps and `oathtool -b` read it:
//! blanks (and `-`) are ignored, lower case is accepted, `=` padding is optional.

use core::fmt;
use std::sync::LazyLock;

use hmac::{Hmac, KeyInit, Mac};

use crate::config::Knock;
use crate::time::Duration;

mod tracker;

pub use tracker::{CodeTracker, DEFAULT_MAX_TRACKED, KnockedCode};

/// The default `TOTP_Digits`: 6, as authenticator apps use.
pub const DEFAULT_DIGITS: u8 = 6;
/// The default `TOTP_Step`: 30 seconds (RFC 6238's recommended time step).
pub const DEFAULT_STEP: Duration = Duration::from_secs(30);
/// The default `TOTP_Window`: the codes of one step before and after now are accepted too.
pub const DEFAULT_WINDOW: u32 = 1;
/// The largest `TOTP_Window` accepted (so a door accepts at most 21 codes at a time).
pub const MAX_WINDOW: u32 = 10;
/// The shortest secret accepted: 128 bits, RFC 4226 §4 requirement R6.
pub const MIN_SECRET_BYTES: usize = 16;
/// The longest secret accepted (longer keys are hashed by HMAC anyway; this bounds input).
pub const MAX_SECRET_BYTES: usize = 1024;
/// How many steps beyond the window [`Totp::check_code`] still recognises as stale or
/// future (further away, a code is reported as wrong).
pub const DIAGNOSTIC_STEPS: u64 = 10;

/// The HMAC hash function of a TOTP door (`TOTP_Algorithm`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// HMAC-SHA1 (the default; RFC 4226, and what most authenticator apps use).
    #[default]
    Sha1,
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

impl Algorithm {
    /// Every algorithm, in the order of [`Algorithm::name`]s documented for `TOTP_Algorithm`.
    pub const ALL: [Self; 3] = [Self::Sha1, Self::Sha256, Self::Sha512];

    /// The lower-case name used in knockd.conf: `sha1`, `sha256`, `sha512`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
            Self::Sha512 => "sha512",
        }
    }

    /// The algorithm named `name` (any case), if any.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A TOTP shared key. Its `Debug` never shows the bytes; nothing in this crate prints them,
/// except [`Secret::to_base32`] when asked explicitly.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(Box<[u8]>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<redacted, {} bytes>)", self.0.len())
    }
}

/// Why a secret was refused. Never contains any of the secret's characters.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// No BASE32 characters at all.
    #[error("the secret is empty")]
    Empty,
    /// A character outside the BASE32 alphabet (`A`–`Z`, `2`–`7`; blanks, `-` and final `=`
    /// ignored).
    #[error(
        "the secret is not BASE32: character {position} is not one of A-Z, 2-7 (blanks, \"-\" \
         and final \"=\" are ignored)"
    )]
    InvalidCharacter {
        /// 1-based position (in characters, after leading blanks) of the offending character.
        position: usize,
    },
    /// A BASE32 length that no byte string encodes to (1, 3 or 6 characters past a multiple
    /// of 8).
    #[error("the secret is not BASE32: {chars} characters is not a valid BASE32 length")]
    InvalidLength {
        /// How many BASE32 characters were given.
        chars: usize,
    },
    /// Shorter than [`MIN_SECRET_BYTES`].
    #[error(
        "the secret is {bytes} bytes long; at least {MIN_SECRET_BYTES} bytes (128 bits, 26 BASE32 \
         characters) are required (RFC 4226)"
    )]
    TooShort {
        /// Its length in bytes.
        bytes: usize,
    },
    /// Longer than [`MAX_SECRET_BYTES`].
    #[error("the secret is longer than {MAX_SECRET_BYTES} bytes")]
    TooLong,
}

/// The BASE32 alphabet of RFC 4648, read leniently: lower case translated, blanks and `-`
/// ignored, non-zero trailing bits tolerated (as authenticator apps do).
static LENIENT_BASE32: LazyLock<Option<data_encoding::Encoding>> = LazyLock::new(|| {
    let mut spec = data_encoding::BASE32_NOPAD.specification();
    spec.check_trailing_bits = false;
    spec.ignore.push_str(" \t-");
    spec.translate.from.push_str("abcdefghijklmnopqrstuvwxyz");
    spec.translate.to.push_str("ABCDEFGHIJKLMNOPQRSTUVWXYZ");
    spec.encoding().ok()
});

impl Secret {
    /// A secret from raw key bytes.
    ///
    /// # Errors
    /// Shorter than [`MIN_SECRET_BYTES`] or longer than [`MAX_SECRET_BYTES`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SecretError> {
        if bytes.is_empty() {
            return Err(SecretError::Empty);
        }
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort { bytes: bytes.len() });
        }
        if bytes.len() > MAX_SECRET_BYTES {
            return Err(SecretError::TooLong);
        }
        Ok(Self(bytes.into()))
    }

    /// A secret from BASE32 text as authenticator apps and `oathtool -b` take it: blanks and
    /// `-` ignored, any case, `=` padding optional.
    ///
    /// # Errors
    /// Not BASE32, or a key of the wrong size (see [`SecretError`]).
    pub fn from_base32(text: &str) -> Result<Self, SecretError> {
        let text = text
            .trim()
            .trim_end_matches(|c: char| c == '=' || c.is_whitespace());
        if text.len() > MAX_SECRET_BYTES * 2 {
            return Err(SecretError::TooLong);
        }
        if let Some(index) = text.chars().position(|c| {
            !(c.is_ascii_alphabetic() || ('2'..='7').contains(&c) || " \t-".contains(c))
        }) {
            return Err(SecretError::InvalidCharacter {
                position: index + 1,
            });
        }
        let chars = text.chars().filter(char::is_ascii_alphanumeric).count();
        if chars == 0 {
            return Err(SecretError::Empty);
        }
        let encoding = LENIENT_BASE32
            .as_ref()
            .ok_or(SecretError::InvalidLength { chars })?;
        let bytes = encoding
            .decode(text.as_bytes())
            .map_err(|_| SecretError::InvalidLength { chars })?;
        Self::from_bytes(&bytes)
    }

    /// The key as canonical BASE32 (upper case, no padding). This reveals the secret: only
    /// for writing it where it belongs (a configuration file, a QR code).
    #[must_use]
    pub fn to_base32(&self) -> String {
        data_encoding::BASE32_NOPAD.encode(&self.0)
    }

    /// The key bytes. This reveals the secret.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The key's length in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: a secret has at least [`MIN_SECRET_BYTES`] bytes.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Why a `TOTP_Secret_File` cannot be used. Never contains the file's content.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretFileError {
    /// Group or others have some access to the file.
    #[error(
        "accessible by group or others (mode {mode:04o}); a secret file must be readable by its \
         owner only (chmod 600)"
    )]
    Permissions {
        /// The file's permission bits.
        mode: u32,
    },
    /// The first line is not a usable secret.
    #[error("first line: {0}")]
    Secret(#[from] SecretError),
}

/// The secret in a `TOTP_Secret_File`, given the file's text and its mode bits (the caller
/// reads the file: this crate does no I/O).
///
/// The file must not be accessible to group or others (`mode & 0o077 == 0`, as ssh requires
/// of private keys); its first line is the BASE32 secret (later lines are ignored).
///
/// ```
/// use knock_core::totp::{secret_from_file, SecretFileError};
///
/// let text = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n";
/// assert!(secret_from_file(text, 0o100600).is_ok());
/// assert!(matches!(secret_from_file(text, 0o100644), Err(SecretFileError::Permissions { .. })));
/// ```
///
/// # Errors
/// See [`SecretFileError`].
pub fn secret_from_file(text: &str, mode: u32) -> Result<Secret, SecretFileError> {
    if mode & 0o077 != 0 {
        return Err(SecretFileError::Permissions {
            mode: mode & 0o7777,
        });
    }
    let first = text.lines().next().unwrap_or_default();
    Ok(Secret::from_base32(first)?)
}

/// A TOTP code: a value below `10^digits`, displayed with exactly `digits` digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Code {
    value: u32,
    digits: u8,
}

impl Code {
    /// The code `value` (reduced modulo `10^digits`) with `digits` digits (clamped to 1–9).
    #[must_use]
    pub fn new(value: u32, digits: u8) -> Self {
        let digits = digits.clamp(1, 9);
        Self {
            value: value % 10u32.pow(u32::from(digits)),
            digits,
        }
    }

    /// The numeric value.
    #[must_use]
    pub const fn value(self) -> u32 {
        self.value
    }

    /// How many digits it is written with.
    #[must_use]
    pub const fn digits(self) -> u8 {
        self.digits
    }
}

impl fmt::Display for Code {
    /// Exactly `digits` digits, leading zeros kept (`04718362`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:0width$}",
            self.value,
            width = usize::from(self.digits)
        )
    }
}

/// The RFC 4226 HOTP value of `counter`: HMAC over the counter as 8 big-endian bytes,
/// dynamic truncation to 31 bits, modulo `10^digits` (`digits` clamped to 1–9).
#[must_use]
pub fn hotp(secret: &Secret, algorithm: Algorithm, counter: u64, digits: u8) -> Code {
    let message = counter.to_be_bytes();
    let truncated = match algorithm {
        Algorithm::Sha1 => truncate(&mac::<sha1::Sha1>(secret.as_bytes(), &message)),
        Algorithm::Sha256 => truncate(&mac::<sha2::Sha256>(secret.as_bytes(), &message)),
        Algorithm::Sha512 => truncate(&mac::<sha2::Sha512>(secret.as_bytes(), &message)),
    };
    Code::new(truncated, digits)
}

fn mac<D>(key: &[u8], message: &[u8]) -> Vec<u8>
where
    D: hmac::EagerHash,
    Hmac<D>: KeyInit + Mac,
{
    // HMAC takes keys of any length, so this never fails; an empty MAC would truncate to 0.
    let Ok(mut mac) = <Hmac<D> as KeyInit>::new_from_slice(key) else {
        return Vec::new();
    };
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// RFC 4226 §5.3 dynamic truncation: the low nibble of the last byte is an offset; the 4
/// bytes there, top bit cleared, are the value.
fn truncate(hash: &[u8]) -> u32 {
    let Some(&last) = hash.last() else {
        return 0;
    };
    let offset = usize::from(last & 0x0f);
    match hash.get(offset..offset + 4) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]) & 0x7fff_ffff,
        _ => 0,
    }
}

/// Why a code cannot be laid out on a sequence's bases.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    /// The sequence has no steps.
    #[error("a TOTP door needs a sequence of base ports")]
    NoSteps,
    /// `digits` is not 6, 7 or 8.
    #[error("totp_digits must be 6, 7 or 8 (got {digits})")]
    Digits {
        /// The digits asked for.
        digits: u8,
    },
    /// `digits` is not a multiple of the number of steps.
    #[error(
        "totp_digits ({digits}) must be divisible by the number of sequence steps ({steps}): the \
         code is cut into equal groups, one per step"
    )]
    NotDivisible {
        /// The digits.
        digits: u8,
        /// The steps.
        steps: usize,
    },
    /// `base + 10^(digits/steps) − 1` is above 65535.
    #[error(
        "base port {base} of step {step} leaves no room for {group_digits}-digit groups: \
         {base} + {max_group} = {} is above 65535; use a base of at most {}",
        u32::from(*base) + max_group,
        65535 - max_group
    )]
    PortOverflow {
        /// 1-based step number.
        step: usize,
        /// The base port.
        base: u16,
        /// Digits per group.
        group_digits: u8,
        /// The largest group value, `10^group_digits − 1`.
        max_group: u32,
    },
}

/// Checks that a `digits`-digit code can be laid out on `bases`: 6–8 digits, divisible by the
/// number of steps, and every `base + 10^(digits/steps) − 1 ≤ 65535`.
///
/// # Errors
/// The first problem (see [`LayoutError`]).
pub fn check_layout(digits: u8, bases: &[Knock]) -> Result<(), LayoutError> {
    if !(6..=8).contains(&digits) {
        return Err(LayoutError::Digits { digits });
    }
    let steps = bases.len();
    if steps == 0 {
        return Err(LayoutError::NoSteps);
    }
    if usize::from(digits) % steps != 0 {
        return Err(LayoutError::NotDivisible { digits, steps });
    }
    let group_digits = group_digits(digits, steps);
    let max_group = 10u32.pow(u32::from(group_digits)) - 1;
    for (index, base) in bases.iter().enumerate() {
        if u32::from(base.port) + max_group > 65535 {
            return Err(LayoutError::PortOverflow {
                step: index + 1,
                base: base.port,
                group_digits,
                max_group,
            });
        }
    }
    Ok(())
}

fn group_digits(digits: u8, steps: usize) -> u8 {
    // steps ≤ digits ≤ 9 whenever the layout is valid.
    u8::try_from(usize::from(digits) / steps.max(1)).unwrap_or(0)
}

/// The knock sequence of `code` on `bases`: the code, written with its digit count, cut into
/// `bases.len()` equal groups, left to right; step *i* is `base_i + group_i` with step *i*'s
/// protocol.
///
/// # Errors
/// The layout is invalid (see [`check_layout`]).
pub fn code_to_sequence(code: Code, bases: &[Knock]) -> Result<Vec<Knock>, LayoutError> {
    check_layout(code.digits, bases)?;
    Ok(layout(code, bases))
}

/// [`code_to_sequence`] for a layout known to be valid.
fn layout(code: Code, bases: &[Knock]) -> Vec<Knock> {
    let steps = bases.len();
    let group_digits = group_digits(code.digits, steps);
    let modulus = 10u32.pow(u32::from(group_digits));
    let mut rest = code.value;
    let mut groups = vec![0u32; steps];
    for group in groups.iter_mut().rev() {
        *group = rest % modulus;
        rest /= modulus;
    }
    bases
        .iter()
        .zip(groups)
        .map(|(base, group)| Knock {
            // check_layout guarantees base + group ≤ 65535.
            port: u16::try_from(u32::from(base.port) + group).unwrap_or(u16::MAX),
            protocol: base.protocol,
        })
        .collect()
}

/// The code a knocked sequence stands for, when every step is on its base's protocol and
/// within `[base, base + 10^(digits/steps) − 1]`; `None` otherwise. The inverse of
/// [`code_to_sequence`] (for telling wrong codes from knocks that are no TOTP attempt).
#[must_use]
pub fn sequence_to_code(knocked: &[Knock], bases: &[Knock], digits: u8) -> Option<Code> {
    if knocked.len() != bases.len() || check_layout(digits, bases).is_err() {
        return None;
    }
    let modulus = 10u32.pow(u32::from(group_digits(digits, bases.len())));
    let mut value = 0u32;
    for (knock, base) in knocked.iter().zip(bases) {
        let group = knock.port.checked_sub(base.port)?;
        if knock.protocol != base.protocol || u32::from(group) >= modulus {
            return None;
        }
        value = value * modulus + u32::from(group);
    }
    Some(Code::new(value, digits))
}

/// The TOTP settings of a door other than its secret and bases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TotpParams {
    /// `TOTP_Algorithm`.
    pub algorithm: Algorithm,
    /// `TOTP_Digits`: 6, 7 or 8.
    pub digits: u8,
    /// `TOTP_Step`: whole seconds, at least 1.
    pub step: Duration,
    /// `TOTP_Window`: steps accepted before and after the current one, at most
    /// [`MAX_WINDOW`].
    pub window: u32,
}

impl Default for TotpParams {
    fn default() -> Self {
        Self {
            algorithm: Algorithm::Sha1,
            digits: DEFAULT_DIGITS,
            step: DEFAULT_STEP,
            window: DEFAULT_WINDOW,
        }
    }
}

/// Why a [`Totp`] cannot be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TotpError {
    /// The code does not fit the bases.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// The step is not a whole number of seconds ≥ 1.
    #[error("totp_step must be a whole number of seconds, at least 1")]
    Step,
    /// The window is above [`MAX_WINDOW`].
    #[error("totp_window must be at most {MAX_WINDOW} (got {window})")]
    Window {
        /// The window asked for.
        window: u32,
    },
}

/// Checks `params` on their own (step and window; the digits go with the bases in
/// [`check_layout`]).
///
/// # Errors
/// See [`TotpError`].
pub fn check_params(params: &TotpParams) -> Result<(), TotpError> {
    if params.step.subsec_nanos() != 0 || params.step.as_secs() == 0 {
        return Err(TotpError::Step);
    }
    if params.window > MAX_WINDOW {
        return Err(TotpError::Window {
            window: params.window,
        });
    }
    Ok(())
}

/// Where a step lies relative to the current one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StepKind {
    /// Before the current step (clock skew, a slow knocker).
    Past,
    /// The current step.
    Current,
    /// After the current step (the knocker's clock is ahead).
    Future,
}

/// One accepted sequence of a TOTP door at some time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The time-step counter `T` of this code (with the door, what "spent" remembers).
    pub counter: u64,
    /// Past, current or future relative to the time asked about.
    pub kind: StepKind,
    /// The code (log it only if codes may be logged: it is valid until its step passes).
    pub code: Code,
    /// The ports to knock.
    pub sequence: Vec<Knock>,
}

/// What a complete knock's code is, at some time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodeCheck {
    /// The code of a step inside the window: accept (unless already spent).
    Valid {
        /// Its counter.
        counter: u64,
        /// Past, current or future.
        kind: StepKind,
    },
    /// The code of a step before the window (within [`DIAGNOSTIC_STEPS`]).
    Stale {
        /// Its counter.
        counter: u64,
    },
    /// The code of a step after the window (within [`DIAGNOSTIC_STEPS`]).
    Future {
        /// Its counter.
        counter: u64,
    },
    /// No nearby step has this code.
    Wrong,
}

/// A TOTP door ready to compute: its secret, parameters and base ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Totp {
    secret: Secret,
    params: TotpParams,
    step_secs: u64,
    bases: Vec<Knock>,
}

impl Totp {
    /// A TOTP door with `secret`, `params` and the `Sequence` `bases`.
    ///
    /// # Errors
    /// The parameters are out of range or the code does not fit the bases.
    pub fn new(secret: Secret, params: TotpParams, bases: &[Knock]) -> Result<Self, TotpError> {
        check_params(&params)?;
        check_layout(params.digits, bases)?;
        Ok(Self {
            secret,
            step_secs: params.step.as_secs(),
            params,
            bases: bases.to_vec(),
        })
    }

    /// The parameters.
    #[must_use]
    pub fn params(&self) -> &TotpParams {
        &self.params
    }

    /// The base ports (the door's `Sequence`).
    #[must_use]
    pub fn bases(&self) -> &[Knock] {
        &self.bases
    }

    /// The time-step counter at unix time `unix_secs`: `floor(unix_secs / step)`.
    #[must_use]
    pub fn counter_at(&self, unix_secs: u64) -> u64 {
        unix_secs / self.step_secs
    }

    /// The code of step `counter`.
    #[must_use]
    pub fn code_for_counter(&self, counter: u64) -> Code {
        hotp(
            &self.secret,
            self.params.algorithm,
            counter,
            self.params.digits,
        )
    }

    /// The code at unix time `unix_secs` (what `oathtool --totp` prints at that time).
    #[must_use]
    pub fn code_at(&self, unix_secs: u64) -> Code {
        self.code_for_counter(self.counter_at(unix_secs))
    }

    /// The sequence of step `counter`.
    #[must_use]
    pub fn sequence_for_counter(&self, counter: u64) -> Vec<Knock> {
        layout(self.code_for_counter(counter), &self.bases)
    }

    /// The sequence to knock at unix time `unix_secs`.
    #[must_use]
    pub fn sequence_at(&self, unix_secs: u64) -> Vec<Knock> {
        self.sequence_for_counter(self.counter_at(unix_secs))
    }

    /// The counters of the window at `unix_secs`: `[T−W, T+W]`, clipped to `0..=u64::MAX`.
    #[must_use]
    pub fn window_counters(&self, unix_secs: u64) -> core::ops::RangeInclusive<u64> {
        let current = self.counter_at(unix_secs);
        let window = u64::from(self.params.window);
        current.saturating_sub(window)..=current.saturating_add(window)
    }

    /// The accepted sequences at unix time `unix_secs`: one per step in `[T−W, T+W]`, in
    /// counter order, each tagged with its counter and [`StepKind`] (at most
    /// `2 × MAX_WINDOW + 1` = 21).
    #[must_use]
    pub fn window(&self, unix_secs: u64) -> Vec<Candidate> {
        let current = self.counter_at(unix_secs);
        self.window_counters(unix_secs)
            .map(|counter| {
                let code = self.code_for_counter(counter);
                Candidate {
                    counter,
                    kind: kind_of(counter, current),
                    code,
                    sequence: layout(code, &self.bases),
                }
            })
            .collect()
    }

    /// The unix time (seconds) at which the step after the one of `unix_secs` begins: the
    /// window changes then (saturating at `u64::MAX`).
    #[must_use]
    pub fn next_step_boundary(&self, unix_secs: u64) -> u64 {
        self.counter_at(unix_secs)
            .saturating_add(1)
            .saturating_mul(self.step_secs)
    }

    /// The codes of every step within `W + DIAGNOSTIC_STEPS` of the step of `unix_secs`
    /// (computed now, at most 41 HMACs), for classifying knocks until
    /// [`CodeTable::valid_until`].
    #[must_use]
    pub fn table(&self, unix_secs: u64) -> CodeTable {
        let current = self.counter_at(unix_secs);
        let window = u64::from(self.params.window);
        let reach = window + DIAGNOSTIC_STEPS;
        let first = current.saturating_sub(reach);
        let last = current.saturating_add(reach);
        CodeTable {
            current,
            window,
            first,
            codes: (first..=last).map(|c| self.code_for_counter(c)).collect(),
            bases: self.bases.clone(),
            digits: self.params.digits,
            valid_until: self.next_step_boundary(unix_secs),
        }
    }

    /// Moves `table` (made by [`table`](Self::table) of this `Totp`) to the step of
    /// `unix_secs`, computing only the codes it did not hold: one HMAC when it moves by one
    /// step (what a daemon does at each step boundary), the whole table when it jumps
    /// further than its reach. The result equals `self.table(unix_secs)`.
    pub fn advance_table(&self, table: &mut CodeTable, unix_secs: u64) {
        let current = self.counter_at(unix_secs);
        let window = u64::from(self.params.window);
        let reach = window + DIAGNOSTIC_STEPS;
        let first = current.saturating_sub(reach);
        let last = current.saturating_add(reach);
        let codes = (first..=last)
            .map(|counter| {
                table
                    .code(counter)
                    .unwrap_or_else(|| self.code_for_counter(counter))
            })
            .collect();
        *table = CodeTable {
            current,
            window,
            first,
            codes,
            bases: self.bases.clone(),
            digits: self.params.digits,
            valid_until: self.next_step_boundary(unix_secs),
        };
    }

    /// Which step, if any near `unix_secs`, has `code`: valid inside the window, stale or
    /// future within [`DIAGNOSTIC_STEPS`] beyond it, else wrong. Inside the window the
    /// current step is preferred, then the nearest. (Computes the codes each time; a matcher
    /// keeps a [`CodeTable`] instead.)
    #[must_use]
    pub fn check_code(&self, unix_secs: u64, code: Code) -> CodeCheck {
        if code.digits != self.params.digits {
            return CodeCheck::Wrong;
        }
        let current = self.counter_at(unix_secs);
        let window = u64::from(self.params.window);
        let matches = |counter: u64| self.code_for_counter(counter) == code;
        for distance in 0..=window + DIAGNOSTIC_STEPS {
            let before = current.checked_sub(distance);
            let after = current.checked_add(distance);
            for counter in [before, after].into_iter().flatten() {
                if !matches(counter) {
                    continue;
                }
                return if distance <= window {
                    CodeCheck::Valid {
                        counter,
                        kind: kind_of(counter, current),
                    }
                } else if counter < current {
                    CodeCheck::Stale { counter }
                } else {
                    CodeCheck::Future { counter }
                };
            }
        }
        CodeCheck::Wrong
    }

    /// The port range of each step: `(protocol, base, base + 10^(digits/steps) − 1)`. Every
    /// code's sequence lies inside them, so a capture filter covering them never changes.
    #[must_use]
    pub fn port_ranges(&self) -> Vec<(crate::packet::Protocol, u16, u16)> {
        port_ranges(self.params.digits, &self.bases)
    }
}

/// The port range of each step of a door with `digits`-digit codes on `bases`:
/// `(protocol, base, base + 10^(digits/steps) − 1)` (what [`Totp::port_ranges`] gives,
/// without the secret: a capture filter needs only the configuration).
#[must_use]
pub fn port_ranges(digits: u8, bases: &[Knock]) -> Vec<(crate::packet::Protocol, u16, u16)> {
    let group = u32::from(group_digits(digits, bases.len()));
    let max_group = u16::try_from(10u32.saturating_pow(group) - 1).unwrap_or(u16::MAX);
    bases
        .iter()
        .map(|base| {
            (
                base.protocol,
                base.port,
                base.port.saturating_add(max_group),
            )
        })
        .collect()
}

/// The codes around one time step, computed once per step: what a matcher keeps between two
/// step boundaries, so that telling a knock's code valid, stale, future or wrong costs no
/// HMAC and no allocation (at most `2 × (MAX_WINDOW + DIAGNOSTIC_STEPS) + 1` = 41 codes).
///
/// ```
/// use knock_core::totp::{Algorithm, CodeCheck, Secret, StepKind, Totp, TotpParams};
/// use knock_core::Knock;
///
/// let secret = Secret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")?;
/// let params = TotpParams { digits: 8, ..TotpParams::default() };
/// let totp = Totp::new(secret, params, &[Knock::tcp(40000), Knock::udp(50000)])?;
/// let table = totp.table(1_111_111_111);
/// assert_eq!(table.valid_until(), 1_111_111_140); // rebuild it then
/// let knocked = [Knock::tcp(40708), Knock::udp(51804)]; // 07081804, one step ago
/// assert_eq!(
///     table.check_sequence(&knocked),
///     Some(CodeCheck::Valid { counter: 0x23523EC, kind: StepKind::Past })
/// );
/// assert_eq!(table.check_sequence(&[Knock::tcp(7000), Knock::udp(8000)]), None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeTable {
    current: u64,
    window: u64,
    first: u64,
    codes: Vec<Code>,
    bases: Vec<Knock>,
    digits: u8,
    valid_until: u64,
}

impl CodeTable {
    /// The current step's counter `T`.
    #[must_use]
    pub fn current(&self) -> u64 {
        self.current
    }

    /// The unix time (seconds) at which the next step begins: the table is stale from then.
    #[must_use]
    pub fn valid_until(&self) -> u64 {
        self.valid_until
    }

    /// The code of `counter`, if the table holds it.
    #[must_use]
    pub fn code(&self, counter: u64) -> Option<Code> {
        let index = usize::try_from(counter.checked_sub(self.first)?).ok()?;
        self.codes.get(index).copied()
    }

    /// The accepted sequences: one per step in `[T−W, T+W]` (see [`Totp::window`]).
    #[must_use]
    pub fn window(&self) -> Vec<Candidate> {
        let low = self.current.saturating_sub(self.window);
        let high = self.current.saturating_add(self.window);
        (low..=high)
            .filter_map(|counter| {
                let code = self.code(counter)?;
                Some(Candidate {
                    counter,
                    kind: kind_of(counter, self.current),
                    code,
                    sequence: layout(code, &self.bases),
                })
            })
            .collect()
    }

    /// Which step has `code`: valid inside the window (the current step preferred, then the
    /// nearest), stale or future within [`DIAGNOSTIC_STEPS`] beyond it, else wrong.
    #[must_use]
    pub fn check_code(&self, code: Code) -> CodeCheck {
        if code.digits != self.digits {
            return CodeCheck::Wrong;
        }
        let reach = self.window + DIAGNOSTIC_STEPS;
        for distance in 0..=reach {
            let before = self.current.checked_sub(distance);
            let after = self.current.checked_add(distance);
            for counter in [before, after].into_iter().flatten() {
                if self.code(counter) != Some(code) {
                    continue;
                }
                return if distance <= self.window {
                    CodeCheck::Valid {
                        counter,
                        kind: kind_of(counter, self.current),
                    }
                } else if counter < self.current {
                    CodeCheck::Stale { counter }
                } else {
                    CodeCheck::Future { counter }
                };
            }
        }
        CodeCheck::Wrong
    }

    /// [`check_code`](Self::check_code) for a complete knock: `None` when the knock is not
    /// inside the door's port ranges (not a TOTP attempt at all), else its code's verdict.
    #[must_use]
    pub fn check_sequence(&self, knocked: &[Knock]) -> Option<CodeCheck> {
        sequence_to_code(knocked, &self.bases, self.digits).map(|code| self.check_code(code))
    }
}

fn kind_of(counter: u64, current: u64) -> StepKind {
    match counter.cmp(&current) {
        core::cmp::Ordering::Less => StepKind::Past,
        core::cmp::Ordering::Equal => StepKind::Current,
        core::cmp::Ordering::Greater => StepKind::Future,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B seeds: the ASCII digits "1234567890" repeated to 20, 32 and 64
    /// bytes for SHA1, SHA256 and SHA512.
    fn rfc_secret(algorithm: Algorithm) -> Secret {
        let len = match algorithm {
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
            Algorithm::Sha512 => 64,
        };
        let bytes: Vec<u8> = b"1234567890".iter().copied().cycle().take(len).collect();
        Secret::from_bytes(&bytes).unwrap()
    }

    fn rfc_totp(algorithm: Algorithm) -> Totp {
        let params = TotpParams {
            algorithm,
            digits: 8,
            ..TotpParams::default()
        };
        Totp::new(rfc_secret(algorithm), params, &[Knock::tcp(1); 2]).unwrap()
    }

    #[test]
    fn rfc_6238_appendix_b() {
        // (time, counter, SHA1, SHA256, SHA512)
        let table: [(u64, u64, &str, &str, &str); 6] = [
            (59, 0x1, "94287082", "46119246", "90693936"),
            (1_111_111_109, 0x23523EC, "07081804", "68084774", "25091201"),
            (1_111_111_111, 0x23523ED, "14050471", "67062674", "99943326"),
            (1_234_567_890, 0x273EF07, "89005924", "91819424", "93441116"),
            (2_000_000_000, 0x3F940AA, "69279037", "90698825", "38618901"),
            (
                20_000_000_000,
                0x27BC86AA,
                "65353130",
                "77737706",
                "47863826",
            ),
        ];
        for (time, counter, sha1, sha256, sha512) in table {
            for (algorithm, expected) in [
                (Algorithm::Sha1, sha1),
                (Algorithm::Sha256, sha256),
                (Algorithm::Sha512, sha512),
            ] {
                let totp = rfc_totp(algorithm);
                assert_eq!(totp.counter_at(time), counter, "T at {time}");
                assert_eq!(
                    totp.code_at(time).to_string(),
                    expected,
                    "{algorithm} at {time}"
                );
            }
        }
    }

    #[test]
    fn rfc_4226_appendix_d_hotp() {
        // The RFC 4226 test key is 20 bytes; 6-digit values for counters 0..9.
        let secret = rfc_secret(Algorithm::Sha1);
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, code) in expected.into_iter().enumerate() {
            assert_eq!(
                hotp(&secret, Algorithm::Sha1, counter as u64, 6).to_string(),
                code
            );
        }
    }

    #[test]
    fn base32_like_authenticator_apps() {
        let canonical = Secret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
        assert_eq!(canonical.as_bytes(), b"12345678901234567890");
        for text in [
            "gezdgnbvgy3tqojqgezdgnbvgy3tqojq",
            "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ",
            "  gezd-gnbv-gy3t-qojq-gezd-gnbv-gy3t-qojq  ",
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ====",
        ] {
            assert_eq!(Secret::from_base32(text).unwrap(), canonical, "{text}");
        }
        // 26 characters, unpadded: 16 bytes.
        let sixteen = Secret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY").unwrap();
        assert_eq!(sixteen.len(), 16);
        assert_eq!(canonical.to_base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    }

    #[test]
    fn bad_secrets_never_echo_the_secret() {
        let cases = [
            ("", SecretError::Empty),
            ("   ", SecretError::Empty),
            (
                "GEZDGNBVGY3TQOJ1GEZDGNBVGY3TQOJQ",
                SecretError::InvalidCharacter { position: 16 },
            ),
            ("GEZDGNBVGY3TQOJQ", SecretError::TooShort { bytes: 10 }),
            (
                "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQG",
                SecretError::InvalidLength { chars: 33 },
            ),
        ];
        for (text, expected) in cases {
            let error = Secret::from_base32(text).unwrap_err();
            assert_eq!(error, expected, "{text:?}");
            if text.len() > 4 {
                assert!(!error.to_string().contains(&text[..4]), "{error}");
            }
        }
    }

    #[test]
    fn debug_is_redacted() {
        let secret = Secret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
        let debug = format!("{secret:?} {:?}", rfc_totp(Algorithm::Sha1));
        assert!(!debug.contains("GEZD"), "{debug}");
        assert!(!debug.contains("49, 50"), "{debug}");
        assert!(!debug.contains("1234567890"), "{debug}");
        assert!(debug.contains("redacted"), "{debug}");
    }

    #[test]
    fn secret_files() {
        let text = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\nignored\n";
        assert_eq!(
            secret_from_file(text, 0o100600).unwrap().as_bytes(),
            b"12345678901234567890"
        );
        assert!(secret_from_file(text, 0o400).is_ok());
        for mode in [0o640, 0o604, 0o100644, 0o660, 0o602] {
            assert_eq!(
                secret_from_file(text, mode),
                Err(SecretFileError::Permissions { mode: mode & 0o777 })
            );
        }
        assert_eq!(
            secret_from_file("", 0o600),
            Err(SecretFileError::Secret(SecretError::Empty))
        );
    }

    #[test]
    fn code_to_ports() {
        let bases = [Knock::tcp(40000), Knock::udp(50000)];
        let code = Code::new(4_718_362, 8);
        assert_eq!(code.to_string(), "04718362");
        assert_eq!(
            code_to_sequence(code, &bases).unwrap(),
            [Knock::tcp(40471), Knock::udp(58362)]
        );
        // All zeros and all nines, three steps of two digits.
        let three = [Knock::tcp(1000), Knock::tcp(2000), Knock::udp(3000)];
        assert_eq!(
            code_to_sequence(Code::new(0, 6), &three).unwrap(),
            [Knock::tcp(1000), Knock::tcp(2000), Knock::udp(3000)]
        );
        assert_eq!(
            code_to_sequence(Code::new(999_999, 6), &three).unwrap(),
            [Knock::tcp(1099), Knock::tcp(2099), Knock::udp(3099)]
        );
        assert_eq!(
            code_to_sequence(Code::new(12_345, 6), &three).unwrap(),
            [Knock::tcp(1001), Knock::tcp(2023), Knock::udp(3045)],
            "012345: the leading zero belongs to the first group"
        );
        // Inverse.
        for value in [0, 4_718_362, 99_999_999] {
            let code = Code::new(value, 8);
            let sequence = code_to_sequence(code, &bases).unwrap();
            assert_eq!(sequence_to_code(&sequence, &bases, 8), Some(code));
        }
        assert_eq!(
            sequence_to_code(&[Knock::tcp(40471), Knock::tcp(58362)], &bases, 8),
            None,
            "wrong protocol"
        );
        assert_eq!(
            sequence_to_code(&[Knock::tcp(39999), Knock::udp(58362)], &bases, 8),
            None,
            "below the base"
        );
        assert_eq!(
            sequence_to_code(&[Knock::tcp(50000), Knock::udp(58362)], &bases, 8),
            None,
            "past the group range"
        );
    }

    #[test]
    fn layout_bounds() {
        // 8 digits on 2 steps: groups up to 9999; 65535 − 9999 = 55536 is the largest base.
        assert_eq!(check_layout(8, &[Knock::tcp(55536), Knock::tcp(1)]), Ok(()));
        assert_eq!(
            code_to_sequence(
                Code::new(99_999_999, 8),
                &[Knock::tcp(55536), Knock::udp(1)]
            )
            .unwrap(),
            [Knock::tcp(65535), Knock::udp(10000)]
        );
        let error = check_layout(8, &[Knock::tcp(1), Knock::tcp(55537)]).unwrap_err();
        assert_eq!(
            error,
            LayoutError::PortOverflow {
                step: 2,
                base: 55537,
                group_digits: 4,
                max_group: 9999
            }
        );
        assert_eq!(
            error.to_string(),
            "base port 55537 of step 2 leaves no room for 4-digit groups: 55537 + 9999 = 65536 \
             is above 65535; use a base of at most 55536"
        );
        // One step of 6 digits: 65535 − 999999 < 0, no base fits.
        assert!(matches!(
            check_layout(6, &[Knock::tcp(1)]),
            Err(LayoutError::PortOverflow { .. })
        ));
        assert_eq!(
            check_layout(8, &[Knock::tcp(1); 3]),
            Err(LayoutError::NotDivisible {
                digits: 8,
                steps: 3
            })
        );
        assert_eq!(check_layout(7, &[Knock::tcp(1); 7]), Ok(()));
        assert_eq!(
            check_layout(9, &[Knock::tcp(1); 3]),
            Err(LayoutError::Digits { digits: 9 })
        );
        assert_eq!(check_layout(6, &[]), Err(LayoutError::NoSteps));
    }

    #[test]
    fn window_and_boundaries() {
        let params = TotpParams {
            digits: 8,
            window: 1,
            ..TotpParams::default()
        };
        let secret = rfc_secret(Algorithm::Sha1);
        let bases = [Knock::tcp(40000), Knock::udp(50000)];
        let totp = Totp::new(secret, params, &bases).unwrap();
        let now = 1_111_111_111; // T = 0x23523ED
        let window = totp.window(now);
        assert_eq!(window.len(), 3);
        assert_eq!(
            window
                .iter()
                .map(|c| (c.counter, c.kind))
                .collect::<Vec<_>>(),
            [
                (0x23523EC, StepKind::Past),
                (0x23523ED, StepKind::Current),
                (0x23523EE, StepKind::Future)
            ]
        );
        // Appendix B: 07081804 at 1111111109 (T = 0x23523EC), 14050471 at 1111111111.
        assert_eq!(window[0].code.to_string(), "07081804");
        assert_eq!(window[0].sequence, [Knock::tcp(40708), Knock::udp(51804)]);
        assert_eq!(window[1].sequence, [Knock::tcp(41405), Knock::udp(50471)]);
        assert_eq!(totp.next_step_boundary(now), 0x23523EE * 30);
        assert_eq!(totp.next_step_boundary(0), 30);
        assert_eq!(totp.next_step_boundary(29), 30);
        assert_eq!(totp.next_step_boundary(30), 60);
        // Near the epoch the window is clipped.
        assert_eq!(totp.window(10).len(), 2);

        let code = |counter| totp.code_for_counter(counter);
        let t = totp.counter_at(now);
        assert_eq!(
            totp.check_code(now, code(t)),
            CodeCheck::Valid {
                counter: t,
                kind: StepKind::Current
            }
        );
        assert_eq!(
            totp.check_code(now, code(t - 1)),
            CodeCheck::Valid {
                counter: t - 1,
                kind: StepKind::Past
            }
        );
        assert_eq!(
            totp.check_code(now, code(t - 2)),
            CodeCheck::Stale { counter: t - 2 }
        );
        assert_eq!(
            totp.check_code(now, code(t + 5)),
            CodeCheck::Future { counter: t + 5 }
        );
        // A code no nearby step has (pick one that differs from all of them).
        let nearby: Vec<Code> = (t - 11..=t + 11).map(code).collect();
        let wrong = (0..)
            .map(|v| Code::new(v, 8))
            .find(|c| !nearby.contains(c))
            .unwrap();
        assert_eq!(totp.check_code(now, wrong), CodeCheck::Wrong);
        // The per-step table agrees with the direct computation, for every nearby code.
        let table = totp.table(now);
        assert_eq!(table.window(), totp.window(now));
        assert_eq!(table.valid_until(), totp.next_step_boundary(now));
        for counter in t - 12..=t + 12 {
            assert_eq!(
                table.check_code(code(counter)),
                totp.check_code(now, code(counter)),
                "T{:+}",
                i128::from(counter) - i128::from(t)
            );
        }
        assert_eq!(table.check_code(wrong), CodeCheck::Wrong);
        assert_eq!(
            table.check_code(code(t - 12)),
            CodeCheck::Wrong,
            "beyond the reach"
        );
        let knocked = totp.sequence_for_counter(t + 1);
        assert_eq!(
            table.check_sequence(&knocked),
            Some(CodeCheck::Valid {
                counter: t + 1,
                kind: StepKind::Future
            })
        );
        assert_eq!(table.check_sequence(&[Knock::tcp(1), Knock::udp(2)]), None);
        // Moved step by step (one HMAC each) or by a jump, a table equals a fresh one.
        let mut moving = totp.table(now);
        for later in [now + 30, now + 60, now + 29 * 30, now + 400 * 30, 0, now] {
            totp.advance_table(&mut moving, later);
            assert_eq!(moving, totp.table(later), "at {later}");
        }
        // Near the epoch nothing underflows.
        let early = totp.table(0);
        assert_eq!(early.window().len(), 2);
        assert_eq!(
            early.check_code(code(0)),
            CodeCheck::Valid {
                counter: 0,
                kind: StepKind::Current
            }
        );
        assert_eq!(
            totp.check_code(now, Code::new(code(t).value(), 6)),
            CodeCheck::Wrong
        );

        assert_eq!(
            totp.port_ranges(),
            [
                (crate::packet::Protocol::Tcp, 40000, 49999),
                (crate::packet::Protocol::Udp, 50000, 59999)
            ]
        );
    }

    #[test]
    fn params_are_checked() {
        let secret = rfc_secret(Algorithm::Sha1);
        let bases = [Knock::tcp(40000), Knock::udp(50000)];
        let with = |params| Totp::new(secret.clone(), params, &bases);
        assert_eq!(
            with(TotpParams {
                step: Duration::from_millis(1500),
                ..TotpParams::default()
            }),
            Err(TotpError::Step)
        );
        assert_eq!(
            with(TotpParams {
                step: Duration::ZERO,
                ..TotpParams::default()
            }),
            Err(TotpError::Step)
        );
        assert_eq!(
            with(TotpParams {
                window: 11,
                ..TotpParams::default()
            }),
            Err(TotpError::Window { window: 11 })
        );
        let sixty = with(TotpParams {
            step: Duration::from_secs(60),
            window: 0,
            ..TotpParams::default()
        })
        .unwrap();
        assert_eq!(sixty.counter_at(119), 1);
        assert_eq!(sixty.window(119).len(), 1);
    }

    #[test]
    fn algorithm_names() {
        for algorithm in Algorithm::ALL {
            assert_eq!(Algorithm::from_name(algorithm.name()), Some(algorithm));
        }
        assert_eq!(Algorithm::from_name("SHA256"), Some(Algorithm::Sha256));
        assert_eq!(Algorithm::from_name("md5"), None);
        assert_eq!(Algorithm::default(), Algorithm::Sha1);
    }
}
