#!/usr/bin/env bash
# The whole test suite, as CI runs it: `scripts/test.sh`.
#
# On a fresh Debian/Ubuntu machine as root it first installs what the build and the tests need.
# As root it also runs the tests marked #[ignore = "needs root"] (network namespaces, live
# capture, the 0.8 interoperability tests); as another user those are skipped, and it says so.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: libpcap-dev to build, dpkg-dev for scripts/deb.sh; the rest are used by
# root tests (namespaces, the knockd 0.8 reference for interoperability, a packet sniffer to
# check what the client sends, nft to load rulesets and read sets back in the nftables tests,
# fwknop's client and server for the SPA interoperability tests, oathtool to cross-check TOTP
# codes, strace to check the order of knockd's system calls).
packages=(libpcap-dev iproute2 knockd tcpdump hping3 python3 dpkg-dev nftables fwknop-client
    fwknop-server oathtool e2fsprogs strace)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        echo "==> installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "==> missing Debian packages: ${missing[*]} (install them, or run as root)" >&2
        exit 1
    fi
fi
# Debian's knockd package ships a service; it must never run beside our tests.
if command -v systemctl >/dev/null 2>&1; then systemctl stop knockd 2>/dev/null || true; fi

echo "==> cargo fmt --check"
cargo fmt --all --check

echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

ignored=()
if [ "$(id -u)" -eq 0 ]; then
    ignored=(--include-ignored)
    echo "==> cargo test (root: including the tests that need root)"
else
    echo "==> cargo test (not root: tests marked 'needs root' are skipped)"
fi
cargo test --workspace --locked -- "${ignored[@]}"

echo "==> cargo test --benches (each benchmark once, as a smoke test)"
cargo test --workspace --benches --locked

# The four crates.io packages: each ships its licence texts and README, and builds from its
# packaged sources alone. One `cargo package` call packages them together, so knock-capture,
# knock-server and knock-client are verified against the packaged (unpublished) knock-core
# and knock-capture through cargo's temporary local registry; only crates.io is contacted.
echo "==> cargo package (knock-core, knock-capture, knock-server, knock-client)"
published=(knock-core knock-capture knock-server knock-client)
package_args=()
for crate in "${published[@]}"; do
    package_args+=(-p "$crate")
    listing=$(cargo package --list --allow-dirty --locked -p "$crate")
    for file in LICENSE-MIT LICENSE-APACHE README.md; do
        grep -qx "$file" <<<"$listing" || { echo "$crate: $file is not in its package" >&2; exit 1; }
    done
done
# cargo extracts the temporary registry's crates under $CARGO_HOME/registry/src/, in a directory
# named after the registry's path, and never extracts a version again: a second run from the same
# checkout would verify against the first run's sources. Remove those extractions first.
rm -rf "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/knock-{core,capture,server,client}-[0-9]*/
cargo package --allow-dirty --locked "${package_args[@]}"

# The Debian package: built with cargo-deb (installed on first use), then installed for real
# in a throw-away overlay of this machine and knocked (see scripts/deb-test.sh; the host and
# its knockd 0.8 are not touched).
if [ "$(id -u)" -eq 0 ]; then
    echo "==> Debian package (scripts/deb.sh, scripts/deb-test.sh)"
    deb=$(scripts/deb.sh | tail -n 1)
    scripts/deb-test.sh "$deb"
fi

# Other platforms: knock-core and the knock client build for macOS, the BSDs and Windows,
# and the server for the Unix ones (platform-specific code sits in one `platform` module per
# crate). Checked for every target whose standard library is installed (rustup target add
# TARGET); with only the host's, there is nothing to check and this says so.
host=$(rustc -vV | sed -n 's/^host: //p')
others=()
if command -v rustup >/dev/null; then
    while read -r target; do
        [ -n "$target" ] && [ "$target" != "$host" ] && others+=("$target")
    done < <(rustup target list --installed)
fi
if [ ${#others[@]} -eq 0 ]; then
    echo "==> other targets: none installed (rustup target list --installed), not checked"
fi
for target in "${others[@]}"; do
    echo "==> cargo check --target $target"
    cargo check --locked --target "$target" -p knock-core -p knock-client
    case $target in
        *windows*) ;;
        *) cargo check --locked --target "$target" -p knock-capture -p knock-server ;;
    esac
done
