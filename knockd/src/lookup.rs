//! `-l`: knockers' host names for log lines, looked up on a worker thread so a slow or dead
//! DNS server never delays matching (0.8 bug B10: it called `gethostbyaddr` in the packet
//! path).
//!
//! The first log line about a new source shows the plain address; once the answer arrives,
//! later lines show `IP (host)`. Bounded: at most [`MAX_CACHED`] answers are kept (the cache
//! is cleared when full) and at most [`MAX_QUEUED`] lookups wait (further requests are
//! dropped and retried on a later log line). Lookups are requested only for sources that
//! reach a log line (a knock stage), not for every packet.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use crossbeam_channel::{Receiver, Sender, TrySendError};

/// Most answers kept.
pub(crate) const MAX_CACHED: usize = 4096;
/// Most lookups waiting for the worker.
pub(crate) const MAX_QUEUED: usize = 256;

/// The lookup cache and its worker.
#[derive(Debug)]
pub(crate) struct Lookup {
    requests: Sender<IpAddr>,
    answers: Receiver<(IpAddr, Option<String>)>,
    cache: HashMap<IpAddr, Option<String>>,
    pending: HashSet<IpAddr>,
}

impl Lookup {
    /// Starts the worker thread (it ends when the `Lookup` is dropped).
    ///
    /// # Errors
    /// The thread could not be started.
    pub(crate) fn start() -> std::io::Result<Self> {
        let (requests, request_rx) = crossbeam_channel::bounded::<IpAddr>(MAX_QUEUED);
        let (answer_tx, answers) = crossbeam_channel::bounded(MAX_QUEUED);
        std::thread::Builder::new()
            .name("knockd-lookup".into())
            .spawn(move || {
                for address in request_rx {
                    let name = dns_lookup::lookup_addr(&address)
                        .ok()
                        .filter(|name| *name != address.to_string());
                    if answer_tx.send((address, name)).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Self {
            requests,
            answers,
            cache: HashMap::new(),
            pending: HashSet::new(),
        })
    }

    /// The channel on which answers arrive; pass each to [`answer`](Self::answer).
    #[must_use]
    pub(crate) fn answers(&self) -> &Receiver<(IpAddr, Option<String>)> {
        &self.answers
    }

    /// Stores an answer from the worker.
    pub(crate) fn answer(&mut self, address: IpAddr, name: Option<String>) {
        self.pending.remove(&address);
        if self.cache.len() >= MAX_CACHED {
            self.cache.clear();
        }
        self.cache.insert(address, name);
    }

    /// The host name of `address` if known; otherwise asks the worker and returns `None`.
    pub(crate) fn host(&mut self, address: IpAddr) -> Option<&str> {
        if !self.cache.contains_key(&address) && !self.pending.contains(&address) {
            match self.requests.try_send(address) {
                Ok(()) => {
                    self.pending.insert(address);
                }
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {}
            }
        }
        self.cache.get(&address).and_then(Option::as_deref)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn answers_fill_the_cache_without_blocking() {
        let mut lookup = Lookup::start().unwrap();
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        // The first call never waits for the answer.
        assert_eq!(lookup.host(loopback), None);
        let (address, name) = lookup
            .answers()
            .recv_timeout(Duration::from_secs(30))
            .unwrap();
        assert_eq!(address, loopback);
        lookup.answer(address, name.clone());
        assert_eq!(lookup.host(loopback), name.as_deref());
    }
}
