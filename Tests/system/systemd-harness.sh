#!/usr/bin/env bash
# A real systemd 252 for the system test, booted as PID 1 of throw-away pid, mount, uts, ipc, net
# and cgroup namespaces on an overlay of / whose writes stay in RAM (the recipe and its reasons:
# /work/shared/SYSTEMD-NAMESPACE.md). Never boot systemd without this isolation: it would treat the
# machine as its own (empty /tmp, write /proc/sys, reset the console, ...).
#
# Usage (STATE is an empty directory the caller owns and removes afterwards):
#   systemd-harness.sh check              exit 0 when this machine can run it; else prints why, exit 77
#   systemd-harness.sh boot STATE         `make install` (PREFIX=/usr) into STATE/stage, boot a systemd
#                                         that sees it, wait until it runs; prints the host pid of PID 1
#   systemd-harness.sh run STATE CMD...   run CMD as root inside every namespace (nsenter)
#   systemd-harness.sh teardown STATE     `systemctl exit` inside; SIGKILL of PID 1 as a fallback (only
#                                         while it is still our namespace); remove the cgroups
#
# Environment: REPO (default: two levels up), HARNESS_CAP_S (hard cap on systemd's whole life, default
# 240 s: when it fires the kernel kills the entire pid namespace), CONFIG (the build to install,
# default debug), MAKE (default make).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=${REPO:-$(cd "$HERE/../.." && pwd)}
CAP_S=${HARNESS_CAP_S:-240}
CONFIG=${CONFIG:-debug}
MAKE=${MAKE:-make}
TARGET=nestcache-test.target

log() { printf 'systemd-harness: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# Units that would touch global state or are useless in a container without devices (§5).
MASKED=(
    systemd-tmpfiles-setup.service systemd-tmpfiles-setup-dev.service systemd-tmpfiles-clean.service
    systemd-tmpfiles-clean.timer systemd-sysctl.service systemd-binfmt.service
    proc-sys-fs-binfmt_misc.automount proc-sys-fs-binfmt_misc.mount systemd-modules-load.service
    kmod-static-nodes.service systemd-timesyncd.service systemd-firstboot.service
    systemd-machine-id-commit.service systemd-repart.service systemd-random-seed.service
    systemd-pstore.service systemd-sysusers.service ldconfig.service systemd-hwdb-update.service
    systemd-journal-catalog-update.service systemd-update-done.service systemd-update-utmp.service
    systemd-update-utmp-runlevel.service systemd-journal-flush.service systemd-remount-fs.service
    systemd-fsck-root.service systemd-pcrphase.service systemd-pcrphase-sysinit.service
    systemd-pcrphase-initrd.service systemd-udevd.service systemd-udevd-control.socket
    systemd-udevd-kernel.socket systemd-udev-trigger.service systemd-udev-settle.service
    systemd-journald-audit.socket dev-hugepages.mount sys-fs-fuse-connections.mount
    sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount
    systemd-ask-password-console.path systemd-ask-password-wall.path console-getty.service
    getty.target timers.target apt-daily.timer apt-daily-upgrade.timer emergency.service
    emergency.target rescue.service rescue.target
)

# Why this machine cannot run the test; empty when it can.
skip_reason() {
    [[ $(id -u) -eq 0 ]] || { echo "needs root (runs unshare, mount and a systemd as PID 1)"; return; }
    [[ $(uname -s) == Linux ]] || { echo "needs Linux"; return; }
    [[ -x /lib/systemd/systemd ]] || { echo "no /lib/systemd/systemd"; return; }
    local tool
    for tool in unshare nsenter setpriv timeout mount pivot_root mknod systemctl systemd-analyze; do
        command -v "$tool" >/dev/null 2>&1 || { echo "no $tool (util-linux / systemd)"; return; }
    done
    grep -qw overlay /proc/filesystems || { echo "no overlayfs in /proc/filesystems"; return; }
    [[ -n $(cgroup2_mount) ]] || { echo "no cgroup2 hierarchy mounted"; return; }
    grep -q '^0::' /proc/self/cgroup || { echo "this process is in no cgroup2 cgroup"; return; }
    local cg
    cg=$(cgroup2_mount)$(sed -n 's/^0:://p' /proc/self/cgroup)
    [[ -w $cg ]] || { echo "cannot write to $cg (cgroup2 delegated read-only?)"; return; }
    unshare --pid --mount --uts --ipc --net --cgroup --fork --propagation private true 2>/dev/null ||
        { echo "unshare of pid/mount/uts/ipc/net/cgroup namespaces is refused"; return; }
}

cgroup2_mount() {
    awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo
}

# The host pid of the namespace's PID 1, if it still is ours (same pid namespace as at boot).
live_pid() {
    local state=$1 pid ns
    [[ -s $state/hostpid && -s $state/pidns ]] || return 1
    pid=$(<"$state/hostpid")
    ns=$(readlink "/proc/$pid/ns/pid" 2>/dev/null) || return 1
    [[ $ns == "$(<"$state/pidns")" ]] || return 1
    echo "$pid"
}

in_ns() {
    local pid=$1
    shift
    nsenter -t "$pid" -m -u -i -n -p -C -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
        TERM=dumb SYSTEMD_PAGER= SYSTEMD_COLORS=0 "$@"
}

# PID 1 of the new namespaces, first stage: report the host pid, join the cgroup, then unshare
# the cgroup namespace (rooted at that cgroup) for the second stage.
write_init() {
    local state=$1
    cat >"$state/init.sh" <<'EOF'
#!/usr/bin/env bash
set -euo pipefail
state=$1 cg=$2
read -r hostpid _ </proc/self/stat            # the host's /proc: the new one is not mounted yet
readlink /proc/self/ns/pid >"$state/pidns"
echo "$hostpid" >"$state/hostpid.tmp" && mv "$state/hostpid.tmp" "$state/hostpid"
echo 0 >"$cg/cgroup.procs"
exec unshare --cgroup bash "$state/stage2.sh" "$state"
EOF
    cat >"$state/stage2.sh" <<'EOF'
#!/usr/bin/env bash
# Second stage: a throw-away root on an overlay of /, then pivot_root and exec systemd.
set -euo pipefail
state=$1
mnt=$state/mnt
mount --make-rprivate /
mkdir -p "$mnt"
mount -t tmpfs -o mode=0755 nestcache-test "$mnt"
mkdir -p "$mnt/upper" "$mnt/work" "$mnt/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$mnt/upper,workdir=$mnt/work" "$mnt/root"
root=$mnt/root

mount -t proc proc "$root/proc"
for p in sys sysrq-trigger; do
    [[ -e $root/proc/$p ]] || continue
    mount --bind "$root/proc/$p" "$root/proc/$p"
    mount -o remount,bind,ro "$root/proc/$p"
done
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$root/sys"
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$root/sys/fs/cgroup"

dev=$root/dev
mount -t tmpfs -o mode=0755,nosuid dev "$dev"
mknod -m 666 "$dev/null" c 1 3
mknod -m 666 "$dev/zero" c 1 5
mknod -m 666 "$dev/full" c 1 7
mknod -m 666 "$dev/random" c 1 8
mknod -m 666 "$dev/urandom" c 1 9
mknod -m 666 "$dev/tty" c 5 0
mkdir -m 755 "$dev/pts" "$dev/mqueue"
mkdir -m 1777 "$dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,nosuid,noexec devpts "$dev/pts"
ln -s pts/ptmx "$dev/ptmx"
mount -t tmpfs -o mode=1777,nosuid,nodev shm "$dev/shm"
mount -t mqueue -o nosuid,nodev,noexec mqueue "$dev/mqueue"
ln -s /proc/self/fd "$dev/fd"
ln -s /proc/self/fd/0 "$dev/stdin"
ln -s /proc/self/fd/1 "$dev/stdout"
ln -s /proc/self/fd/2 "$dev/stderr"
touch "$dev/console"
mount --bind "$state/console.log" "$dev/console"

mount -t tmpfs -o mode=0755,nosuid,nodev run "$root/run"
mount -t tmpfs -o mode=1777,nosuid,nodev tmp "$root/tmp"

# The staged install: /etc copied (the test edits the configuration), the rest bound read-only.
stage=$state/stage
if [[ -d $stage/etc ]]; then cp -a "$stage/etc/." "$root/etc/"; fi
while IFS= read -r -d '' f; do
    rel=${f#"$stage"}
    mkdir -p "$(dirname "$root$rel")"
    [[ -e $root$rel ]] || touch "$root$rel"
    mount --bind "$f" "$root$rel"
    mount -o remount,bind,ro "$root$rel"
done < <(find "$stage" -path "$stage/etc" -prune -o -type f -print0)

units=$root/run/systemd/system
mkdir -p "$units" "$root/run/nestcache-test-no-generators"
while read -r unit; do
    [[ -n $unit ]] && ln -sf /dev/null "$units/$unit"
done <"$state/masked"
cat >"$units/nestcache-test.target" <<'UNIT'
[Unit]
Description=nestcache system test
Requires=sysinit.target
Wants=systemd-journald.service
After=sysinit.target
AllowIsolate=yes
UNIT

cd "$root"
pivot_root . .
umount -l .
exec env -i container=nestcache-test SYSTEMD_GENERATOR_PATH=/run/nestcache-test-no-generators \
    setpriv --bounding-set -sys_module,-sys_time,-sys_rawio,-sys_pacct,-syslog,-wake_alarm,-block_suspend,-mac_admin,-mac_override,-audit_control,-audit_read \
    /lib/systemd/systemd --system --unit=nestcache-test.target --show-status=no
EOF
    printf '%s\n' "${MASKED[@]}" >"$state/masked"
}

boot() {
    local state=$1
    [[ -d $state ]] || die "no such directory: $state"
    state=$(cd "$state" && pwd)
    local reason
    reason=$(skip_reason)
    [[ -z $reason ]] || { echo "SKIP: $reason"; exit 77; }

    log "make install PREFIX=/usr DESTDIR=$state/stage (CONFIG=$CONFIG)"
    mkdir -p "$state/stage"
    "$MAKE" --no-print-directory -s -C "$REPO" install PREFIX=/usr DESTDIR="$state/stage" CONFIG="$CONFIG" \
        NOBUILD="${NOBUILD:-}" >"$state/install.log" 2>&1 || { cat "$state/install.log" >&2; die "make install failed"; }

    local cg
    cg=$(cgroup2_mount)$(sed -n 's/^0:://p' /proc/self/cgroup)
    cg=${cg%/}/nestcache-systest.$$.$RANDOM
    mkdir "$cg"
    echo "$cg" >"$state/cgroup"
    : >"$state/console.log"
    write_init "$state"

    # setsid and no inherited descriptors: the boot outlives this script, and holds no pipe of
    # the caller open. The cap kills unshare; --kill-child then kills PID 1 and so the namespace.
    setsid timeout --kill-after=5 "$CAP_S" unshare --fork --kill-child=SIGKILL --pid --mount --uts \
        --ipc --net --propagation private bash "$state/init.sh" "$state" "$cg" \
        </dev/null >"$state/systemd.log" 2>&1 &
    echo $! >"$state/timeout.pid"

    local i pid=
    for ((i = 0; i < 300; i++)); do
        if pid=$(live_pid "$state") && [[ -S /proc/$pid/root/run/systemd/private ]]; then break; fi
        pid=
        kill -0 "$(<"$state/timeout.pid")" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z $pid ]]; then
        log "systemd did not come up; its output:"
        cat "$state/systemd.log" "$state/console.log" >&2 || true
        teardown "$state" || true
        exit 1
    fi
    local status
    status=$(timeout 60 nsenter -t "$pid" -m -p -- systemctl is-system-running --wait 2>&1) || true
    case $status in
        running) ;;
        degraded)
            log "system degraded; failed units:"
            in_ns "$pid" systemctl --failed --no-legend >&2 || true ;;
        *)
            log "is-system-running: $status"
            teardown "$state" || true
            exit 1 ;;
    esac
    echo "$pid"
}

run() {
    local state=$1
    shift
    local pid
    pid=$(live_pid "$state") || die "no systemd running for $state"
    in_ns "$pid" "$@"
}

teardown() {
    local state=$1 pid i
    if pid=$(live_pid "$state"); then
        timeout 10 nsenter -t "$pid" -m -p -- systemctl exit >/dev/null 2>&1 || true
        for ((i = 0; i < 100; i++)); do
            live_pid "$state" >/dev/null || break
            sleep 0.1
        done
        # Only while /proc/PID/ns/pid is still our namespace (the pid may not be reused).
        if pid=$(live_pid "$state"); then
            log "systemd did not exit within 10 s: SIGKILL to $pid"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    if [[ -s $state/timeout.pid ]]; then
        local tpid
        tpid=$(<"$state/timeout.pid")
        for ((i = 0; i < 100; i++)); do
            kill -0 "$tpid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    if [[ -s $state/cgroup ]]; then
        local cg
        cg=$(<"$state/cgroup")
        for ((i = 0; i < 50; i++)); do
            [[ -d $cg ]] || break
            find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
            [[ -d $cg ]] && sleep 0.1
        done
        [[ ! -d $cg ]] || { log "could not remove $cg"; return 1; }
    fi
}

case ${1:-} in
    check)
        reason=$(skip_reason)
        if [[ -n $reason ]]; then echo "SKIP: $reason"; exit 77; fi ;;
    boot) boot "${2:?usage: boot STATE}" ;;
    run) [[ $# -ge 3 ]] || die "usage: run STATE CMD..."; shift; run "$@" ;;
    teardown) teardown "${2:?usage: teardown STATE}" ;;
    *) die "usage: $0 check | boot STATE | run STATE CMD... | teardown STATE" ;;
esac
