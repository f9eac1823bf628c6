#!/usr/bin/env bash
# Tear down the test cluster that tests/slurm/slurm_up.sh DIR brought up: cancel its jobs,
# stop exactly the daemons whose pid files are in DIR (slurmd, slurmctld, and munged when
# slurm_up started it), by PID, never by name, and remove the /etc/slurm/slurm.conf symlink
# to DIR/slurm.conf. Safe to run twice or after a failed bring-up.
set -uo pipefail

[ "$#" -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
dir=$(cd "$1" 2>/dev/null && pwd -P) || { echo "slurm_down: no directory $1" >&2; exit 0; }
export SLURM_CONF="$dir/slurm.conf"

# stop PIDFILE NAME: TERM the pid in PIDFILE if it is still NAME, wait up to 20 s, then KILL.
stop() {
    local pidfile=$1 name=$2 pid
    [ -s "$pidfile" ] || return 0
    pid=$(tr -dc 0-9 <"$pidfile")
    if [ -z "$pid" ] || [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != "$name" ]; then
        rm -f "$pidfile"  # gone already (or the pid now belongs to someone else)
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 200); do
        [ -d "/proc/$pid" ] || break
        sleep 0.1
    done
    if [ -d "/proc/$pid" ]; then
        echo "slurm_down: $name ($pid) ignored TERM for 20 s: KILL" >&2
        kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$pidfile"
    echo "slurm_down: stopped $name ($pid)"
}

# Jobs still queued or running on this private cluster would outlive slurmd.
if [ -s "$dir/slurmctld.pid" ] && command -v scancel >/dev/null; then
    scancel --state=PENDING 2>/dev/null
    scancel --state=RUNNING 2>/dev/null
    for _ in $(seq 50); do
        [ -z "$(squeue --noheader --states=PENDING,RUNNING,COMPLETING 2>/dev/null)" ] && break
        sleep 0.2
    done
fi

stop "$dir/slurmd.pid" slurmd
stop "$dir/slurmctld.pid" slurmctld
stop "$dir/munged.pid" munged
# The /etc/slurm/slurm.conf symlink slurm_up.sh made, if it is still ours.
if [ -L /etc/slurm/slurm.conf ] && [ "$(readlink /etc/slurm/slurm.conf)" = "$dir/slurm.conf" ]; then
    rm -f /etc/slurm/slurm.conf
    echo "slurm_down: removed the symlink /etc/slurm/slurm.conf"
fi
exit 0
