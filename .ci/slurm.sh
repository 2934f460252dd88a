#!/usr/bin/env bash
# A throw-away single-node SLURM cluster on localhost, for the SLURM test (tests/test_slurm.py).
#
#   bash .ci/slurm.sh install   apt-get install slurm-wlm + munge (Debian/Ubuntu, as root; skipped if present)
#   bash .ci/slurm.sh start     write the config, start munged, slurmctld, slurmd; wait for an idle node
#                               (a second `start` restarts the daemons this script started)
#   bash .ci/slurm.sh stop      stop the daemons this script started (by their recorded PIDs)
#   bash .ci/slurm.sh status    daemons, sinfo, squeue
#   bash .ci/slurm.sh env       print `export SLURM_CONF=...` for the client commands
#
# The cluster: one node "localhost" with all CPUs, 90 % of RAM and one fake GPU (gres.conf
# File=/dev/null), one partition "debug", no accounting database (AccountingStorageType none:
# `sacct` does not work, so Snakemake must use `--slurm-status-command squeue`), no cgroups
# (proctrack/linuxproc, task/none). Everything lives in $MIPIPE_SLURM_DIR (default
# /tmp/mipipe-slurm); /etc/slurm/slurm.conf is linked to it when no other config is there.
# Daemons run as root. Only for CI and local testing: never on a machine that is part of a
# real cluster.
set -euo pipefail

DIR=${MIPIPE_SLURM_DIR:-/tmp/mipipe-slurm}
CONF=$DIR/slurm.conf
ETC_CONF=/etc/slurm/slurm.conf
MARK="# mipipe-test-cluster"
WAIT_S=${MIPIPE_SLURM_WAIT:-60}
DAEMONS=(slurmd slurmctld munged)   # stop order

log() { echo "slurm.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
    else die "needs root (or password-less sudo) for: $*"; fi
}

have_slurm() {
    command -v slurmctld >/dev/null 2>&1 && command -v slurmd >/dev/null 2>&1 &&
        command -v sinfo >/dev/null 2>&1 && command -v sbatch >/dev/null 2>&1 &&
        command -v munged >/dev/null 2>&1
}

cmd_install() {
    if have_slurm; then
        log "slurm-wlm and munge already installed ($(slurm_version))"
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 || die "no apt-get: install SLURM (slurmctld, slurmd, client) and munge by hand"
    log "installing slurm-wlm and munge with apt-get ..."
    local apt=(apt-get -q -y -o DPkg::Lock::Timeout=600 -o Dpkg::Use-Pty=0)
    # `apt-get update` only when the package lists do not know slurm-wlm yet (fresh container)
    if ! apt-cache show slurm-wlm >/dev/null 2>&1; then
        as_root env DEBIAN_FRONTEND=noninteractive "${apt[@]}" update >/dev/null
    fi
    as_root env DEBIAN_FRONTEND=noninteractive "${apt[@]}" install --no-install-recommends \
        slurm-wlm munge >"${TMPDIR:-/tmp}/mipipe-slurm-apt.log" 2>&1 ||
        { tail -n 20 "${TMPDIR:-/tmp}/mipipe-slurm-apt.log" >&2; die "apt-get install failed"; }
    have_slurm || die "installed, but slurmctld/slurmd/sinfo/munged are still missing"
    log "installed $(slurm_version)"
}

slurm_version() { dpkg-query -W -f '${Package} ${Version}' slurm-wlm 2>/dev/null || slurmctld -V; }

pid_alive() {  # pid_alive NAME: the recorded PID of NAME is alive and still runs NAME
    local f=$DIR/pids/$1.pid pid
    [ -s "$f" ] || return 1
    pid=$(cat "$f")
    kill -0 "$pid" 2>/dev/null || return 1
    grep -q "$1" "/proc/$pid/cmdline" 2>/dev/null
}

stop_one() {
    local name=$1 f=$DIR/pids/$1.pid pid
    [ -s "$f" ] || return 0
    pid=$(cat "$f")
    if pid_alive "$name"; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            log "$name ($pid) did not stop in 10 s: SIGKILL"
            kill -9 "$pid" 2>/dev/null || true
        fi
        log "stopped $name (pid $pid)"
    fi
    rm -f "$f"
}

cmd_stop() {
    local d
    for d in "${DAEMONS[@]}"; do stop_one "$d"; done
}

write_config() {
    local cpus mem_mb
    cpus=$(nproc)
    # 90 % of the memory slurmd will see, so the node never drains for "low RealMemory"
    mem_mb=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
    mkdir -p "$DIR"/{state,spool,log,pids}
    cat >"$CONF" <<EOF
$MARK (written by .ci/slurm.sh; see there)
ClusterName=mipipe
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/state/slurmctld.pid
SlurmdPidFile=$DIR/spool/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups needed
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# no slurmdbd: sacct cannot answer, Snakemake must poll with squeue
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
# finished jobs stay visible to squeue for 10 min (the plugin wants >= 3 x its poll interval)
MinJobAge=600
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
GresTypes=gpu
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
Waittime=0
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
    cat >"$DIR/gres.conf" <<EOF
$MARK
# a fake GPU: lets jobs request --gres=gpu:1 (Snakemake resource gpu=1) on a machine without one
NodeName=localhost Name=gpu File=/dev/null
EOF
    # slurmd looks for gres.conf next to slurm.conf; client commands without SLURM_CONF read /etc/slurm
    if [ ! -e "$ETC_CONF" ] || { [ -L "$ETC_CONF" ] && [ "$(readlink "$ETC_CONF")" = "$CONF" ]; } ||
        grep -q "^$MARK" "$ETC_CONF" 2>/dev/null; then
        as_root mkdir -p /etc/slurm
        as_root ln -sfn "$CONF" "$ETC_CONF"
    else
        log "note: $ETC_CONF belongs to another set-up and is left alone; export SLURM_CONF=$CONF"
    fi
}

start_munge() {
    if pid_alive munged; then return 0; fi
    local key=/etc/munge/munge.key user=root
    id munge >/dev/null 2>&1 && user=munge
    if [ ! -s "$key" ]; then
        as_root mkdir -p /etc/munge
        if command -v mungekey >/dev/null 2>&1; then as_root mungekey --create --keyfile="$key"
        else as_root dd if=/dev/urandom of="$key" bs=1 count=1024 status=none; fi
    fi
    as_root chown "$user": "$key" /etc/munge
    as_root chmod 0400 "$key"
    as_root chmod 0700 /etc/munge
    as_root mkdir -p /run/munge /var/lib/munge /var/log/munge
    as_root chown "$user": /run/munge /var/lib/munge /var/log/munge
    as_root chmod 0755 /run/munge
    # an munged that this script did not start answers already: use it
    if [ -S /run/munge/munge.socket.2 ] && munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        log "munged already running (not started by this script)"
        return 0
    fi
    rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock 2>/dev/null || true
    # --foreground: $! is the daemon's PID. setsid + redirections: no terminal, no inherited pipes.
    if [ "$user" = root ]; then
        setsid munged --foreground --force </dev/null >>"$DIR/log/munged.log" 2>&1 &
    else
        # setpriv execs munged (so $! stays its PID); runuser would stay in between
        if command -v setpriv >/dev/null 2>&1; then
            setsid setpriv --reuid=munge --regid=munge --init-groups munged --foreground \
                </dev/null >>"$DIR/log/munged.log" 2>&1 &
        else
            setsid runuser -u munge -- munged --foreground </dev/null >>"$DIR/log/munged.log" 2>&1 &
        fi
    fi
    echo $! >"$DIR/pids/munged.pid"
    for _ in $(seq 1 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    tail -n 20 "$DIR/log/munged.log" >&2 || true
    die "munged does not answer"
}

node_state() { SLURM_CONF=$CONF sinfo -h -N -n localhost -o %t 2>/dev/null | head -n1; }

cmd_start() {
    have_slurm || die "SLURM not installed: run .ci/slurm.sh install"
    cmd_stop   # a second start is a restart
    # slurmd/slurmctld started by someone else on this host would take the ports
    if pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null; then
        die "a slurmctld/slurmd not started by this script is running (pgrep -a slurm); stop it first"
    fi
    write_config
    start_munge
    export SLURM_CONF=$CONF
    # -D: foreground, so $! is the daemon's PID; -c: forget the jobs of an earlier start
    setsid slurmctld -D -c -f "$CONF" </dev/null >>"$DIR/log/slurmctld.out" 2>&1 &
    echo $! >"$DIR/pids/slurmctld.pid"
    for _ in $(seq 1 50); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.2; done
    setsid slurmd -D -N localhost -f "$CONF" </dev/null >>"$DIR/log/slurmd.out" 2>&1 &
    echo $! >"$DIR/pids/slurmd.pid"
    local state="" t0=$SECONDS d
    while [ $((SECONDS - t0)) -lt "$WAIT_S" ]; do
        for d in slurmctld slurmd; do
            pid_alive "$d" || { tail -n 30 "$DIR/log/$d.log" "$DIR/log/$d.out" >&2 2>/dev/null; die "$d exited"; }
        done
        state=$(node_state)
        case "$state" in
            idle|mix|alloc) break ;;
            down*|drain*|drng*|inval*) scontrol update nodename=localhost state=resume 2>/dev/null || true ;;
        esac
        sleep 1
    done
    case "$state" in
        idle|mix|alloc) ;;
        *) tail -n 30 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 2>/dev/null || true
           die "node not idle after ${WAIT_S}s (state '${state}')" ;;
    esac
    # smoke test: a job step runs (slurmd has registered, munge credentials work)
    if ! timeout 60 srun -N1 -n1 -t 1 --quiet true </dev/null; then
        tail -n 30 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 2>/dev/null || true
        die "the node is $state, but a test job (srun true) failed"
    fi
    log "SLURM up in $((SECONDS - t0))s: node localhost $state, partition debug, config $CONF"
}

cmd_status() {
    local d rc=0
    for d in munged slurmctld slurmd; do
        if pid_alive "$d"; then echo "$d: running (pid $(cat "$DIR/pids/$d.pid"))"
        else echo "$d: not running (from this script)"; rc=1; fi
    done
    if [ -f "$CONF" ] && command -v sinfo >/dev/null 2>&1 && pid_alive slurmctld; then
        SLURM_CONF=$CONF sinfo -N -o "%N %t %c %m %G %P" || rc=1
        SLURM_CONF=$CONF squeue || true
    fi
    return $rc
}

case "${1:-}" in
    install) cmd_install ;;
    start | restart) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    *) echo "usage: $0 install|start|stop|status|env" >&2; exit 2 ;;
esac
