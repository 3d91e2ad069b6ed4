//! Everything in the client that differs between operating systems, in one place (the rest
//! of the crate is portable Rust and `socket2`):
//!
//! * [`bind_device`]: `--interface`, `SO_BINDTODEVICE`, exists on Linux (and Android and
//!   Fuchsia) only; elsewhere it fails with "not supported on this platform" before anything
//!   is sent.
//! * [`syn_was_sent`]: which error of a non-blocking `connect` still means the SYN left
//!   (`EINPROGRESS`/`ECONNREFUSED` on Unix, `WSAEWOULDBLOCK`/`WSAECONNREFUSED` on Windows).
//! * [`permission_bits`]: a secret file (TOTP secret, SPA key) must not be readable by group
//!   or others, judged by its Unix permission bits; Windows has none (its ACLs are the
//!   user's business), so nothing is refused there.

use std::io;

use socket2::Socket;

/// Binds `socket` to the network device `interface` (`SO_BINDTODEVICE`).
#[cfg(any(target_os = "linux", target_os = "android", target_os = "fuchsia"))]
pub(crate) fn bind_device(socket: &Socket, interface: &str) -> io::Result<()> {
    socket.bind_device(Some(interface.as_bytes()))
}

/// Binding to a device is Linux-only: an error naming the platform.
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "fuchsia")))]
pub(crate) fn bind_device(_socket: &Socket, _interface: &str) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "not supported on this platform (SO_BINDTODEVICE is Linux-only)",
    ))
}

/// Whether a non-blocking `connect` error still means the SYN left: in progress (the normal
/// case), or already refused (a loopback or very close peer answered with RST at once).
#[cfg(unix)]
pub(crate) fn syn_was_sent(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EINPROGRESS | libc::ECONNREFUSED)
    )
}

/// Whether a non-blocking `connect` error still means the SYN left: Winsock says
/// `WSAEWOULDBLOCK` (in progress) or `WSAECONNREFUSED`.
#[cfg(not(unix))]
pub(crate) fn syn_was_sent(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::ConnectionRefused
    )
}

/// The Unix permission bits of a file (`mode & 0o7777`), to refuse secret files that group or
/// others can read.
#[cfg(unix)]
pub(crate) fn permission_bits(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    meta.permissions().mode() & 0o7777
}

/// No Unix permission bits outside Unix: reported as owner-only (`0o600`).
#[cfg(not(unix))]
pub(crate) fn permission_bits(_meta: &std::fs::Metadata) -> u32 {
    0o600
}
