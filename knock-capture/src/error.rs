//! Errors of live and offline capture.

use std::path::PathBuf;

/// Why a capture could not be started, reconfigured or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// libpcap refused to open or configure an interface (permission denied, …).
    #[error("could not capture on {interface}: {source}")]
    Pcap {
        /// The interface name.
        interface: String,
        /// libpcap's error.
        #[source]
        source: pcap::Error,
    },
    /// A savefile could not be opened or read.
    #[error("{}: {source}", path.display())]
    File {
        /// The savefile.
        path: PathBuf,
        /// libpcap's error.
        #[source]
        source: pcap::Error,
    },
    /// The interface or savefile uses a link layer the decoder does not handle.
    #[error("{source_name}: unsupported link-layer type {dlt}")]
    UnsupportedLinkType {
        /// The interface name or savefile path.
        source_name: String,
        /// libpcap's data-link type value.
        dlt: i32,
    },
    /// The filter expression does not compile.
    #[error("invalid capture filter `{filter}`: {source}")]
    Filter {
        /// The expression.
        filter: String,
        /// libpcap's error.
        #[source]
        source: pcap::Error,
    },
    /// The configuration names no interface.
    #[error("no interface to capture on")]
    NoInterface,
    /// A capture thread could not be spawned.
    #[error("could not start a capture thread: {0}")]
    Thread(#[source] std::io::Error),
}
