#!/usr/bin/env bash
# Installs the Debian package built by scripts/deb.sh for real, with this machine's dpkg and
# package database, and knocks the installed knockd, without changing this machine:
#
#   scripts/deb-test.sh [PACKAGE.deb]      (root; default: the newest target/debian/*.deb)
#
# How: in private mount, network and pid namespaces it mounts an overlay of / whose writes go
# to a tmpfs, chroots into it and runs dpkg there. The host's files, its dpkg database and its
# knockd 0.8 (which the interoperability tests run as /usr/sbin/knockd, possibly at this very
# moment) are never touched; everything written disappears with the namespaces. So the test
# starts from this machine's real state, Debian's knockd 0.8 installed or not, and checks:
#
#  1. upgrade from 0.8: `dpkg -i` removes Debian's knockd (Conflicts + Replaces), keeps the
#     administrator's /etc/knockd.conf (now a conffile of knock-server), installs the
#     binaries, unit, /etc/default/knockd, logrotate, man pages, completions, /var/lib/knockd;
#     `man knockd` finds our knockd(8); the installed unit passes `systemd-analyze verify`;
#  2. a knock through the installed binaries, started the way the unit starts them
#     (ExecStartPre then ExecStart with $KNOCKD_OPTS from /etc/default/knockd), on the
#     loopback interface of the private network namespace: the door's command runs;
#  3. purge, then a fresh install on a machine without knockd 0.8: /etc/knockd.conf is ours
#     and passes `knockd --check`.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
    echo "deb-test.sh: FAILED: $*" >&2
    exit 1
}

if [ "${1:-}" != --inside ]; then
    [ "$(id -u)" -eq 0 ] || fail "needs root (mount and network namespaces, chroot)"
    deb=${1:-$(ls -t "${CARGO_TARGET_DIR:-target}"/debian/knock-server_*.deb 2>/dev/null | head -n 1)}
    [ -f "$deb" ] || fail "no package: run scripts/deb.sh first"
    base=$(mktemp -d "/tmp/knock-deb-test.$$.XXXXXX")
    status=0
    unshare --mount --net --pid --fork --mount-proc -- \
        "$0" --inside "$(realpath "$deb")" "$base" || status=$?
    rmdir "$base" 2>/dev/null || true
    exit $status
fi

deb=$2
base=$3
say() { printf '==> deb-test: %s\n' "$*" >&2; }

# --- the throw-away copy of this machine ------------------------------------------------------
mount --make-rprivate /
mount -t tmpfs -o mode=0755 tmpfs "$base"
mkdir "$base/upper" "$base/work" "$base/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$base/upper,workdir=$base/work" "$base/root"
r=$base/root
mount --rbind /dev "$r/dev"
mount --rbind /proc "$r/proc"
mount --rbind /sys "$r/sys"
mount -t tmpfs tmpfs "$r/tmp"
mount -t tmpfs tmpfs "$r/run"
cp "$deb" "$r/tmp/"
pkg=/tmp/$(basename "$deb")
ip link set lo up
in_root() {
    chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive "$@"
}
installed() { in_root dpkg-query -W -f '${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

# --- 1. install over Debian's knockd 0.8 (or over nothing) ------------------------------------
if installed knockd; then
    say "Debian's knockd $(in_root dpkg-query -W -f '${Version}' knockd) is installed: testing the switch"
    had_08=yes
else
    say "Debian's knockd is not installed: testing a first install"
    had_08=no
fi
# The administrator's configuration: 0.8's file (or a fresh one) with a local edit.
marker="# edited by the administrator ($$)"
[ -f "$r/etc/knockd.conf" ] || printf '[openSSH]\n\tsequence = 7000,8000,9000\n\tcommand = true\n' >"$r/etc/knockd.conf"
echo "$marker" >>"$r/etc/knockd.conf"

say "dpkg -i $(basename "$deb")"
in_root dpkg --force-confold -i "$pkg" >&2 || fail "dpkg -i failed"
installed knock-server || fail "knock-server is not installed"
! installed knockd || fail "Debian's knockd is still installed beside it"
if [ $had_08 = yes ]; then
    in_root dpkg-query -W -f '${Status}\n' knockd | grep -q " ok config-files" ||
        fail "knockd 0.8 was not removed (its status: $(in_root dpkg-query -W -f '${Status}' knockd))"
fi
grep -qxF "$marker" "$r/etc/knockd.conf" || fail "the administrator's /etc/knockd.conf was replaced"
in_root dpkg-query -W -f '${Conffiles}\n' knock-server | grep -q "^ /etc/knockd.conf " ||
    fail "/etc/knockd.conf is not a conffile of knock-server"
for f in /usr/sbin/knockd /usr/bin/knock /lib/systemd/system/knockd.service \
    /etc/default/knockd /etc/logrotate.d/knockd \
    /usr/share/bash-completion/completions/knockd /usr/share/bash-completion/completions/knock \
    /usr/share/zsh/vendor-completions/_knockd /usr/share/fish/vendor_completions.d/knockd.fish; do
    [ -f "$r$f" ] || fail "$f is missing"
done
ls "$r"/usr/share/man/man8/knockd.8* "$r"/usr/share/man/man1/knock.1* >/dev/null ||
    fail "man pages missing"
[ ! -e "$r/usr/share/man/man1/knockd.1.gz" ] || fail "0.8's knockd(1) is still installed"
[ "$(stat -c %a "$r/var/lib/knockd")" = 700 ] || fail "/var/lib/knockd is not a 0700 directory"
in_root knockd --version | grep -q "^knockd 0\.[1-7]\|^knockd [1-9]" ||
    fail "/usr/sbin/knockd is not ours: $(in_root knockd --version)"
if in_root sh -c 'command -v man' >/dev/null; then
    page=$(in_root man -w knockd)
    case $page in */man8/knockd.8*) ;; *) fail "man knockd shows $page, not our knockd(8)" ;; esac
fi
if in_root sh -c 'command -v systemd-analyze' >/dev/null; then
    in_root systemd-analyze verify --man=no /lib/systemd/system/knockd.service >&2 ||
        fail "systemd-analyze verify rejects the installed unit"
fi
in_root knockd --check --quiet -c /etc/knockd.conf || fail "the kept /etc/knockd.conf fails --check"

# --- 2. a knock through the installed service binary -----------------------------------------
say "knocking the installed knockd on lo, started as the unit starts it"
cat >"$r/tmp/test.conf" <<'EOF'
[options]
	LogFile = /tmp/knockd.log
[testDoor]
	sequence    = 7131,8242:udp,9353
	seq_timeout = 10
	tcpflags    = syn
	command     = echo %IP% >/tmp/opened
EOF
echo 'KNOCKD_OPTS="-i lo -c /tmp/test.conf"' >"$r/etc/default/knockd"
unit=$r/lib/systemd/system/knockd.service
pre=$(sed -n 's/^ExecStartPre=//p' "$unit")
start=$(sed -n 's/^ExecStart=//p' "$unit")
[ -n "$pre" ] && [ -n "$start" ] || fail "the unit lacks ExecStartPre or ExecStart"
in_root sh -c ". /etc/default/knockd && $pre" || fail "ExecStartPre ($pre) failed"
in_root sh -c ". /etc/default/knockd && exec $start" >"$r/tmp/knockd.out" 2>&1 &
server=$!
opened=no
for _ in $(seq 1 50); do
    if grep -q "listening on lo" "$r/tmp/knockd.log" 2>/dev/null; then
        in_root knock 127.0.0.1 7131 8242:udp 9353
        sleep 0.3
        if [ "$(cat "$r/tmp/opened" 2>/dev/null)" = 127.0.0.1 ]; then
            opened=yes
            break
        fi
    fi
    sleep 0.2
done
kill -TERM "$server" 2>/dev/null || true
wait "$server" 2>/dev/null || true
[ $opened = yes ] || fail "the knock did not open the door; log: $(cat "$r/tmp/knockd.log" "$r/tmp/knockd.out" 2>/dev/null)"
grep -q "127.0.0.1: testDoor: OPEN SESAME" "$r/tmp/knockd.log" || fail "no OPEN SESAME line in the log"

# --- 3. purge, and a first install on a machine without knockd 0.8 ---------------------------
say "dpkg --purge, then a fresh install"
in_root dpkg --purge knock-server >&2 || fail "dpkg --purge knock-server failed"
for f in /usr/sbin/knockd /usr/bin/knock /etc/knockd.conf /var/lib/knockd; do
    [ ! -e "$r$f" ] || fail "$f is left after purge"
done
if [ $had_08 = yes ]; then in_root dpkg --purge knockd >&2; fi
in_root dpkg -i "$pkg" >&2 || fail "fresh dpkg -i failed"
cmp -s "$r/etc/knockd.conf" examples/configs/knockd.conf || fail "fresh /etc/knockd.conf is not ours"
in_root knockd --check --quiet -c /etc/knockd.conf || fail "the shipped /etc/knockd.conf fails --check"
if [ $had_08 = yes ]; then over="knockd 0.8"; else over="a machine without knockd"; fi
say "ok: installed over $over, knocked through the installed knockd, purged, reinstalled"
