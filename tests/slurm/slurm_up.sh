#!/usr/bin/env bash
# Bring up a private single-node Slurm cluster (Debian 12's Slurm 22.05) on this machine.
#
#   tests/slurm/slurm_up.sh DIR      # as root; then: . DIR/env.sh; sinfo; squeue
#   tests/slurm/slurm_down.sh DIR    # stops exactly the daemons this script started
#
# Everything lives in DIR: slurm.conf, state and spool directories, logs, pid files. The
# daemons and the Slurm commands read the file named by SLURM_CONF (DIR/env.sh exports it),
# but the `srun` that snakemake's slurm-jobstep executor runs inside each job does not: that
# plugin removes every SLURM_* variable (SLURM_CONF included) from srun's environment, and
# srun then looks for /etc/slurm/slurm.conf. So /etc/slurm/slurm.conf is made a symlink to
# DIR/slurm.conf; the script refuses to run when that path is already taken (another cluster's
# configuration), and slurm_down.sh removes the symlink. munged keeps its Debian defaults
# (socket and pid file under /run/munge, key /etc/munge/munge.key): an already running munged
# is used and left alone.
#
# Exit status: 0 up (the node is idle), 3 the Debian packages are missing (the message
# names them), 4 not root, 1 anything else (the message names the log to read).
set -euo pipefail

usage="usage: $0 DIR"
[ "$#" -eq 1 ] || { echo "$usage" >&2; exit 2; }

packages=(slurmctld slurmd slurm-client munge)
missing=()
for pkg in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$pkg")
done
if [ "${#missing[@]}" -ne 0 ]; then
    echo "slurm_up: Debian packages not installed: ${missing[*]}" >&2
    echo "slurm_up: install them with:" \
        "apt-get install -y --no-install-recommends ${packages[*]}" >&2
    exit 3
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "slurm_up: must run as root (the test cluster runs its daemons and jobs as root)" >&2
    exit 4
fi

mkdir -p "$1"
dir=$(cd "$1" && pwd -P)
mkdir -p "$dir/state" "$dir/spool" "$dir/log"
conf="$dir/slurm.conf"
export SLURM_CONF="$conf"
trap 'echo "slurm_up: failed (line $LINENO); logs: $dir/log; clean up: slurm_down.sh $dir" >&2' ERR

host=$(hostname -s)
cpus=$(nproc)
mem_total_mib=$(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024))
real_memory=$((mem_total_mib - 1024))  # leave 1 GiB to the system
[ "$real_memory" -ge 1024 ] || real_memory=$((mem_total_mib / 2))
gpus=2 fake_gpu_type=fake  # GPUs that are not there (see slurm.conf below)
ctld_port=${SLURM_TEST_CTLD_PORT:-6817}
slurmd_port=${SLURM_TEST_SLURMD_PORT:-6818}

# No cgroups (proctrack/linuxproc, task/affinity), no accounting daemon. DefMemPerCPU keeps a
# job without a memory request from taking the whole node; MinJobAge keeps finished jobs
# visible to squeue, which the Slurm profile's status checks use (slurm-status-command:
# squeue), for an hour (Slurm's default is 300 s): tests/test_slurm.py reads every job of a
# run back from squeue after the run, and a loaded machine takes over 5 minutes for the full
# workflow (about 30 s a job on its critical path). No key may be left empty: "Key=" is a fatal parse error. The node advertises two
# GPUs of type "fake" that are not there (GresTypes, the node's Gres, and gres.conf below),
# so that the profile's GPU requests (sbatch --gpus=N or --gpus=fake:N, and the srun inside
# each job) are real requests that Slurm schedules, and rejects beyond two. Nothing in the
# jobs uses a GPU.
cat >"$conf" <<CONF
# Written by tests/slurm/slurm_up.sh: a private single-node test cluster.
ClusterName=moemui-test
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
SlurmctldPort=${ctld_port}
SlurmdPort=${slurmd_port}
AuthType=auth/munge
StateSaveLocation=${dir}/state
SlurmdSpoolDir=${dir}/spool
SlurmctldPidFile=${dir}/slurmctld.pid
SlurmdPidFile=${dir}/slurmd.pid
SlurmctldLogFile=${dir}/log/slurmctld.log
SlurmdLogFile=${dir}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
MinJobAge=3600
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
GresTypes=gpu
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${real_memory} Gres=gpu:${fake_gpu_type}:${gpus} State=UNKNOWN
PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP
CONF
# slurmd reads gres.conf next to slurm.conf. Slurm 22.05 drops a GPU without a device file
# ("Removing file-less GPU") and wants a character device: each fake GPU is a symlink to
# /dev/null. A job's CUDA_VISIBLE_DEVICES then names them (0, 0,1), as on a GPU node.
for ((i = 0; i < gpus; i++)); do
    ln -sfn /dev/null "$dir/fake-gpu$i"
done
cat >"$dir/gres.conf" <<GRES
# Written by tests/slurm/slurm_up.sh: ${gpus} GPUs that are not there (/dev/null).
Name=gpu Type=${fake_gpu_type} File=${dir}/fake-gpu[0-$((gpus - 1))]
GRES

# The configuration of the srun inside each job (see above). A dangling symlink is what a
# killed earlier run left behind: replace it.
etc_conf=/etc/slurm/slurm.conf
if [ -L "$etc_conf" ] && [ ! -e "$etc_conf" ]; then
    rm -f "$etc_conf"
fi
if [ -e "$etc_conf" ] || [ -L "$etc_conf" ]; then
    if [ "$(readlink -f "$etc_conf")" != "$conf" ]; then
        echo "slurm_up: $etc_conf exists (-> $(readlink -f "$etc_conf")): another Slurm" \
            "configuration is in use here; not starting a test cluster" >&2
        exit 1
    fi
else
    mkdir -p /etc/slurm
    ln -s "$conf" "$etc_conf"
fi

cat >"$dir/env.sh" <<ENV
# source me: the Slurm commands then talk to the test cluster in $dir
export SLURM_CONF=$conf
ENV

# munge: start Debian's munged unless one already answers on the default socket.
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    echo "slurm_up: using the munged already running (left alone by slurm_down)"
else
    mkdir -p /run/munge
    chown munge: /run/munge
    chmod 0755 /run/munge
    runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
    cp /run/munge/munged.pid "$dir/munged.pid"  # ours to stop
    for _ in $(seq 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.1
    done
    munge -n | unmunge >/dev/null || {
        echo "slurm_up: munged does not answer; see /var/log/munge/munged.log" >&2
        exit 1
    }
fi

# Slurm's own daemon mode: each forks, detaches and writes its pid file.
/usr/sbin/slurmctld
/usr/sbin/slurmd

for _ in $(seq 120); do
    state=$(sinfo --noheader --nodes="$host" --format=%T 2>/dev/null || true)
    if [ "$state" = "idle" ]; then
        echo "slurm_up: node $host idle ($cpus CPUs, ${real_memory} MiB, $gpus fake GPUs of type $fake_gpu_type);" \
            "SLURM_CONF=$conf"
        exit 0
    fi
    sleep 0.5
done
echo "slurm_up: node $host not idle after 60 s (state: '${state:-none}');" \
    "see $dir/log/slurmctld.log and $dir/log/slurmd.log" >&2
exit 1
