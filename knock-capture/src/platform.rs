//! Everything in knock-capture that differs between operating systems, in one place (the
//! rest is libpcap, `nix`'s portable POSIX calls and plain Rust):
//!
//! * [`netlink_watch`] / [`drain_netlink`]: on Linux a netlink socket announces link and
//!   address changes at once; elsewhere there is none and the addresses are polled every
//!   `CaptureConfig::address_poll_interval` (the portable fallback, also used on Linux when
//!   `address_netlink` is off or the socket cannot be opened).
//! * [`cloexec_pipe`]: `pipe2(O_CLOEXEC)` where it exists (Linux, Android, the BSDs);
//!   `pipe` then `fcntl` elsewhere (macOS), where no command runs between the two calls that
//!   could inherit the descriptors, because knock-capture starts no processes.

use std::os::fd::OwnedFd;

/// A netlink socket that receives a message whenever a link or an IPv4/IPv6 address of this
/// network namespace changes; `None` if it cannot be opened (then addresses are polled).
#[cfg(target_os = "linux")]
pub(crate) fn netlink_watch() -> Option<OwnedFd> {
    use std::os::fd::AsRawFd as _;

    use nix::sys::socket::{
        AddressFamily, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, socket,
    };
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        SockProtocol::NetlinkRoute,
    )
    .ok()?;
    let groups =
        u32::try_from(libc::RTMGRP_LINK | libc::RTMGRP_IPV4_IFADDR | libc::RTMGRP_IPV6_IFADDR)
            .ok()?;
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, groups)).ok()?;
    Some(fd)
}

/// No netlink outside Linux: the caller polls the addresses.
#[cfg(not(target_os = "linux"))]
pub(crate) fn netlink_watch() -> Option<OwnedFd> {
    None
}

/// Reads every pending netlink message (their content does not matter: any change means
/// "re-read the addresses"; an overflow, ENOBUFS, means the same).
pub(crate) fn drain_netlink(socket: &OwnedFd) {
    let mut buffer = [0u8; 8192];
    loop {
        match nix::unistd::read(socket, &mut buffer) {
            Ok(0) => return,
            Ok(_) | Err(nix::errno::Errno::ENOBUFS | nix::errno::Errno::EINTR) => {}
            Err(_) => return,
        }
    }
}

/// A pipe whose both ends are close-on-exec, and non-blocking if `nonblocking`.
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
))]
pub(crate) fn cloexec_pipe(nonblocking: bool) -> nix::Result<(OwnedFd, OwnedFd)> {
    use nix::fcntl::OFlag;
    let mut flags = OFlag::O_CLOEXEC;
    if nonblocking {
        flags |= OFlag::O_NONBLOCK;
    }
    nix::unistd::pipe2(flags)
}

/// A pipe whose both ends are close-on-exec, and non-blocking if `nonblocking`.
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
)))]
pub(crate) fn cloexec_pipe(nonblocking: bool) -> nix::Result<(OwnedFd, OwnedFd)> {
    use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
    let (read, write) = nix::unistd::pipe()?;
    for fd in [&read, &write] {
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
        if nonblocking {
            fcntl(fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        }
    }
    Ok((read, write))
}
