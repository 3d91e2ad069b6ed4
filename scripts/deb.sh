#!/usr/bin/env bash
# Builds the Debian package of knockd and knock into target/debian/ (or
# $CARGO_TARGET_DIR/debian/) with cargo-deb, which it installs first if it is missing:
#
#   scripts/deb.sh            # prints the path of the .deb on its last line
#
# The package (knock-server_VERSION-1_ARCH.deb) contains /usr/sbin/knockd, /usr/bin/knock, the
# systemd unit, /etc/knockd.conf, /etc/default/knockd, /etc/logrotate.d/knockd, the man pages
# and the bash/zsh/fish completions; it replaces Debian's knockd package (see the README's
# "Debian package"). Its contents are declared in knockd/Cargo.toml, [package.metadata.deb].
# scripts/deb-test.sh installs it in a throw-away copy of this machine and knocks it.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo deb --version >/dev/null 2>&1; then
    echo "==> cargo install cargo-deb --locked" >&2
    cargo install cargo-deb --locked >&2
fi
# dpkg-shlibdeps (dpkg-dev) computes the Depends line (libc6, libpcap0.8) from the binaries.
command -v dpkg-shlibdeps >/dev/null || {
    echo "deb.sh: dpkg-shlibdeps not found: apt-get install dpkg-dev" >&2
    exit 1
}

# Both binaries come from one release build; cargo-deb then only packs (knock is another
# package of the workspace, which cargo-deb would not build itself).
echo "==> cargo build --release --locked -p knock-server -p knock-client" >&2
cargo build --release --locked -p knock-server -p knock-client >&2
echo "==> cargo deb -p knock-server --no-build" >&2
deb=$(cargo deb -p knock-server --no-build --locked | tail -n 1)
[ -f "$deb" ] || { echo "deb.sh: cargo deb did not report a package ($deb)" >&2; exit 1; }
echo "$deb"
