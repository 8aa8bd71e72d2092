#!/usr/bin/env bash
# A real one-node Slurm cluster on this machine, for tests: Debian's slurm-wlm and munge,
# two partitions on the one node ("cpu" and "ascend" with a count-only npu resource).
#   cluster/local-slurm.sh start   # install if needed, write the config, start munged, slurmctld, slurmd
#   cluster/local-slurm.sh stop    # stop exactly the daemons that `start` started (by their pid files)
# Needs root. State lives in $SLURM_LOCAL_DIR (default /tmp/local-slurm).
set -euo pipefail
DIR=${SLURM_LOCAL_DIR:-/tmp/local-slurm}
PIDS=$DIR/pids

install() {
    command -v slurmctld >/dev/null && command -v munged >/dev/null && return
    # Without systemd the packages would try to start services; a policy that says no prevents it.
    [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
}

write_config() {
    local cpus=4 mem
    mem=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
    mkdir -p /etc/slurm /run/munge /run/slurm /var/spool/slurmctld /var/spool/slurmd "$PIDS"
    chown munge:munge /run/munge && chmod 0755 /run/munge
    cat > /etc/slurm/slurm.conf <<CONF
ClusterName=local
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
MinJobAge=300
SlurmdParameters=config_overrides
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$PIDS/slurmctld.pid
SlurmdPidFile=$PIDS/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
GresTypes=npu
NodeName=localhost NodeAddr=127.0.0.1 NodeHostname=localhost CPUs=$cpus RealMemory=$mem Gres=npu:2 State=UNKNOWN
PartitionName=cpu Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=ascend Nodes=localhost MaxTime=INFINITE State=UP
CONF
    echo "NodeName=localhost Name=npu Count=2" > /etc/slurm/gres.conf
}

wait_for() {  # wait_for SECONDS COMMAND...
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || { echo "local-slurm: timed out waiting for: $*" >&2; return 1; }
        sleep 0.5
    done
}

start() {
    [ "$(id -u)" = 0 ] || { echo "local-slurm: needs root" >&2; exit 2; }
    install
    write_config
    runuser -u munge -- /usr/sbin/munged --pid-file="$PIDS/munged.pid" 2>/dev/null \
        || runuser -u munge -- /usr/sbin/munged
    [ -s "$PIDS/munged.pid" ] || pgrep -u munge -n munged > "$PIDS/munged.pid"
    wait_for 10 bash -c "munge -n | unmunge"
    /usr/sbin/slurmctld
    /usr/sbin/slurmd -N localhost
    wait_for 30 bash -c "sinfo -h -o %T | grep -qE 'idle|mix'"
    sinfo
}

alive() {  # a pid that exists and is not a zombie
    [ -r "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat")" != Z ]
}

stop() {
    for daemon in slurmd slurmctld munged; do
        local file=$PIDS/$daemon.pid pid
        [ -s "$file" ] || continue
        pid=$(cat "$file")
        if alive "$pid"; then
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 40); do alive "$pid" || break; sleep 0.25; done
        fi
        rm -f "$file"
    done
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
