//! The replay cache: SHA-256 digests of authentic SPA packets, each kept until the packet
//! would be refused as too old anyway.

use std::collections::HashMap;
use std::fmt::Write as _;

/// Digests of the authentic packets seen, with the Unix time until which each is kept.
///
/// # Bounds (DoS)
///
/// Only packets whose HMAC verified enter the cache (see [`SpaDoor::verify`]), so filling
/// it takes the door's HMAC key; forged floods never touch it. An entry lives until its
/// packet's timestamp plus the door's maximum age, so the live size is at most the rate
/// of authentic packets times about twice the maximum age. On top of that, a hard
/// [`capacity`](Self::capacity) (default [`DEFAULT_CAPACITY`](Self::DEFAULT_CAPACITY),
/// 65 536 entries, about 3 MB): when it is reached, expired entries are dropped and, if
/// none is, the new packet is **refused** rather than an entry evicted (evicting would
/// let that packet be replayed). Each entry is a 32-byte digest and an 8-byte time.
///
/// # Persistence
///
/// [`to_text`](Self::to_text) and [`from_text`](Self::from_text) give a line format for
/// a state file: `<64 hex digits> <expiry, Unix seconds>` per line, `#` comments.
///
/// [`SpaDoor::verify`]: super::SpaDoor::verify
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayCache {
    entries: HashMap<[u8; 32], u64>,
    capacity: usize,
}

impl Default for ReplayCache {
    fn default() -> Self {
        Self::with_capacity(Self::DEFAULT_CAPACITY)
    }
}

/// The cache is full of live entries (see [`ReplayCache`]'s bounds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("replay cache full ({capacity} live entries)")]
#[non_exhaustive]
pub struct ReplayCacheFull {
    /// The cache's capacity.
    pub capacity: usize,
}

/// A bad line in a persisted replay cache.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("replay cache line {line}: {reason}")]
#[non_exhaustive]
pub struct ReplayCacheError {
    /// The 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: &'static str,
}

impl ReplayCache {
    /// The default hard cap on entries.
    pub const DEFAULT_CAPACITY: usize = 65_536;

    /// An empty cache holding at most `capacity` entries (at least 1).
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// The hard cap on entries.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many entries are held (expired ones included until purged).
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `digest` is held and not expired at `now` (Unix seconds).
    #[must_use]
    pub fn contains(&self, digest: &[u8; 32], now: u64) -> bool {
        self.entries.get(digest).is_some_and(|&until| until >= now)
    }

    /// Remembers `digest` until `until` (Unix seconds).
    ///
    /// # Errors
    /// [`ReplayCacheFull`] when the cache holds `capacity` live entries.
    pub fn insert(
        &mut self,
        digest: [u8; 32],
        until: u64,
        now: u64,
    ) -> Result<(), ReplayCacheFull> {
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&digest) {
            self.purge(now);
            if self.entries.len() >= self.capacity {
                return Err(ReplayCacheFull {
                    capacity: self.capacity,
                });
            }
        }
        let entry = self.entries.entry(digest).or_insert(until);
        *entry = (*entry).max(until);
        Ok(())
    }

    /// Drops the entries expired at `now`.
    pub fn purge(&mut self, now: u64) {
        self.entries.retain(|_, until| *until >= now);
    }

    /// The cache as text, one `<hex digest> <expiry>` line per entry, sorted.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut lines: Vec<_> = self.entries.iter().collect();
        lines.sort_unstable();
        let mut text =
            String::from("# knock SPA replay cache: sha256(packet) expiry-unix-seconds\n");
        for (digest, until) in lines {
            for byte in digest {
                let _ = write!(text, "{byte:02x}");
            }
            let _ = writeln!(text, " {until}");
        }
        text
    }

    /// Reads [`to_text`](Self::to_text)'s format, dropping entries expired at `now` and
    /// keeping at most `capacity` (the latest-expiring ones).
    ///
    /// # Errors
    /// The first malformed line.
    pub fn from_text(text: &str, now: u64, capacity: usize) -> Result<Self, ReplayCacheError> {
        let mut entries = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let error = |reason| ReplayCacheError {
                line: index + 1,
                reason,
            };
            let (hex, until) = line
                .split_once(' ')
                .ok_or_else(|| error("expected \"<digest> <expiry>\""))?;
            let until: u64 = until
                .trim()
                .parse()
                .map_err(|_| error("expiry is not a number"))?;
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(error("digest is not 64 hex digits"));
            }
            let mut digest = [0u8; 32];
            for (i, byte) in digest.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                    .map_err(|_| error("digest is not 64 hex digits"))?;
            }
            if until >= now {
                entries.push((digest, until));
            }
        }
        let mut cache = Self::with_capacity(capacity);
        entries.sort_unstable_by_key(|&(_, until)| core::cmp::Reverse(until));
        for (digest, until) in entries.into_iter().take(cache.capacity) {
            let entry = cache.entries.entry(digest).or_insert(until);
            *entry = (*entry).max(until);
        }
        Ok(cache)
    }
}
