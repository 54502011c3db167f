#!/usr/bin/env bash
# -----------------------------------------------------------------------------
# slurm_local.sh - idempotently install, configure and start a REAL
# single-node SLURM cluster on localhost (Debian/Ubuntu, no systemd needed), so
# CI can run a Snakemake workflow through snakemake-executor-plugin-slurm.
#
# Tested on: Debian 12 (bookworm) VM, root, 2 cores, no cgroup plugins,
#            slurm-wlm 22.05.8-4+deb12u3, munge 0.5.15, mariadb 10.11,
#            snakemake 9.27.1 + snakemake-executor-plugin-slurm 2.8.0.
#
# Usage (as root, or via sudo):
#   .ci/slurm_local.sh start    # install (if needed), configure, start, smoke-test
#   .ci/slurm_local.sh status   # show daemons / sinfo
#   .ci/slurm_local.sh stop     # stop the daemons (by PID from their pidfiles)
#
# Environment knobs:
#   SLURM_WITH_DBD=1   (default) also run slurmdbd + MariaDB so `sacct` works.
#                      This is what the plugin uses by default, so an unmodified
#                      cluster profile works. Costs ~10 s extra install time.
#   SLURM_WITH_DBD=0   no accounting DB: `sacct` fails ("Slurm accounting storage
#                      is disabled"); the profile MUST then set
#                      `slurm-status-command: squeue` (MinJobAge=300 below keeps
#                      finished jobs visible to squeue for 5 min).
#   SLURM_PARTITION    partition name (default: debug)
#   SLURM_ACCOUNT      account created in slurmdbd (default: ci); users in
#   SLURM_CI_USERS     (default: root and $SUDO_USER) are associated with it,
#                      so `slurm_account: ci` in a profile validates via sacctmgr.
#   SLURM_CLUSTER      ClusterName (default: localci)
# -----------------------------------------------------------------------------
set -euo pipefail

ACTION="${1:-start}"
WITH_DBD="${SLURM_WITH_DBD:-1}"
PARTITION="${SLURM_PARTITION:-debug}"
ACCOUNT="${SLURM_ACCOUNT:-ci}"
CLUSTER="${SLURM_CLUSTER:-localci}"
CI_USERS="${SLURM_CI_USERS:-root ${SUDO_USER:-}}"
DB_PASS="slurmdbpass"   # local-only MariaDB user, socket access from localhost

CONF_DIR=/etc/slurm
MUNGE_PID=/run/munge/munged.pid
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
DBD_PID=/run/slurmdbd.pid

log() { printf '[slurm-setup %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# True if the pidfile names a live process whose command is $2.
running() {
    local pidfile=$1 name=$2 pid
    [[ -s $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ -r /proc/$pid/comm ]] && [[ $(</proc/"$pid"/comm) == "$name" ]]
}

# Stop a daemon by the PID in its pidfile (never by name), wait for it to exit.
stop_pidfile() {
    local pidfile=$1 name=$2 pid i
    if running "$pidfile" "$name"; then
        pid=$(<"$pidfile")
        log "stopping $name (pid $pid)"
        kill "$pid"
        for i in $(seq 1 50); do [[ -d /proc/$pid ]] || break; sleep 0.2; done
        [[ -d /proc/$pid ]] && { log "$name did not exit, sending KILL"; kill -9 "$pid"; }
    fi
    rm -f "$pidfile"
}

# Poll a command until it succeeds (max $1 seconds).
wait_for() {
    local secs=$1; shift
    local end=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        (( SECONDS < end )) || return 1
        sleep 0.5
    done
}

do_stop() {
    stop_pidfile "$SLURMD_PID" slurmd
    stop_pidfile "$CTLD_PID" slurmctld
    stop_pidfile "$DBD_PID" slurmdbd
    if command -v mysqladmin >/dev/null && mysqladmin ping >/dev/null 2>&1; then
        log "stopping MariaDB (mysqladmin shutdown)"
        mysqladmin shutdown || true
    fi
    stop_pidfile "$MUNGE_PID" munged
}

do_status() {
    local d
    for d in "$MUNGE_PID munged" "$DBD_PID slurmdbd" "$CTLD_PID slurmctld" "$SLURMD_PID slurmd"; do
        set -- $d
        if running "$1" "$2"; then echo "$2: running (pid $(<"$1"))"; else echo "$2: not running"; fi
    done
    sinfo 2>/dev/null || true
}

install_packages() {
    local pkgs=(slurm-wlm munge) missing=() p
    [[ $WITH_DBD == 1 ]] && pkgs+=(slurmdbd mariadb-server)
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    if ((${#missing[@]})); then
        log "installing: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        # On systemd hosts apt may auto-start munge/mariadb; the checks below cope.
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

start_munge() {
    # Debian's munge postinst normally creates the key; create one if missing.
    if [[ ! -s /etc/munge/munge.key ]]; then
        log "creating munge key"
        mungekey --create --keyfile=/etc/munge/munge.key \
            || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    fi
    chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
    if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        log "starting munged"
        runuser -u munge -- /usr/sbin/munged    # daemonises itself
        wait_for 10 sh -c 'munge -n | unmunge' || die "munged did not come up"
    fi
}

write_slurm_conf() {
    # `slurmd -C` prints "NodeName=<hostname -s> CPUs=.. Boards=.. ... RealMemory=.."
    local nodeline nodename acct
    nodeline=$(slurmd -C | head -n1)
    nodename=$(sed -n 's/^NodeName=\([^ ]*\).*/\1/p' <<<"$nodeline")
    [[ -n $nodename ]] || die "could not parse 'slurmd -C' output: $nodeline"
    NODENAME=$nodename
    if [[ $WITH_DBD == 1 ]]; then
        acct="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
# store each job's --comment (the Snakemake SLURM plugin writes the rule name there)
AccountingStoreFlags=job_comment"
    else
        acct="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
    fi
    install -d -o slurm -g slurm -m 0755 /var/lib/slurm /var/lib/slurm/slurmctld \
        /var/lib/slurm/slurmd /var/log/slurm
    local tmp; tmp=$(mktemp)
    cat >"$tmp" <<EOF
# Generated by .ci/slurm_local.sh - single-node SLURM on localhost for CI.
ClusterName=$CLUSTER
# Give the address explicitly so no DNS lookup of the hostname is needed.
SlurmctldHost=$nodename(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
# No cgroups (containers/VMs): track processes via /proc, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
# Cores and memory are consumable, so --mem/--cpus-per-task are enforced by
# the scheduler; DefMemPerCPU stops a job without --mem grabbing the whole node.
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=512
$acct
JobCompType=jobcomp/none
# Keep finished jobs in slurmctld for 5 min (needed for squeue-based polling).
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=30
$nodeline NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=$PARTITION Nodes=$nodename Default=YES MaxTime=INFINITE State=UP
EOF
    if ! cmp -s "$tmp" "$CONF_DIR/slurm.conf"; then
        log "writing $CONF_DIR/slurm.conf"
        install -m 0644 "$tmp" "$CONF_DIR/slurm.conf"
        CONF_CHANGED=1
    fi
    rm -f "$tmp"
}

start_dbd() {
    [[ $WITH_DBD == 1 ]] || return 0
    if ! mysqladmin ping >/dev/null 2>&1; then
        log "starting MariaDB"
        # init script works without systemd (and redirects to systemctl with it)
        /etc/init.d/mariadb start >/dev/null
        wait_for 30 mysqladmin ping || die "MariaDB did not come up"
    fi
    mysql -u root <<EOF
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
EOF
    local tmp; tmp=$(mktemp)
    cat >"$tmp" <<EOF
# Generated by .ci/slurm_local.sh
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=slurm
LogFile=/var/log/slurm/slurmdbd.log
PidFile=$DBD_PID
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
    if ! cmp -s "$tmp" "$CONF_DIR/slurmdbd.conf"; then
        install -m 0600 -o slurm -g slurm "$tmp" "$CONF_DIR/slurmdbd.conf"
        stop_pidfile "$DBD_PID" slurmdbd
    fi
    rm -f "$tmp"
    # slurmdbd refuses a config that is not mode 600 / owned by SlurmUser
    chown slurm:slurm "$CONF_DIR/slurmdbd.conf"; chmod 0600 "$CONF_DIR/slurmdbd.conf"
    if ! running "$DBD_PID" slurmdbd; then
        log "starting slurmdbd"
        /usr/sbin/slurmdbd        # daemonises itself
    fi
    wait_for 30 sacctmgr -n list cluster || die "slurmdbd not answering (see /var/log/slurm/slurmdbd.log)"
    # cluster / account / user associations (all idempotent)
    if [[ -z $(sacctmgr -n -P list cluster "$CLUSTER" format=cluster) ]]; then
        sacctmgr -i add cluster "$CLUSTER" >/dev/null
    fi
    if [[ -z $(sacctmgr -n -P list account "$ACCOUNT" format=account) ]]; then
        sacctmgr -i add account "$ACCOUNT" Description="CI account" Organization=ci >/dev/null
    fi
    local u
    for u in $CI_USERS; do
        if ! sacctmgr -n -P list assoc user="$u" account="$ACCOUNT" format=user | grep -qx "$u"; then
            sacctmgr -i add user "$u" Account="$ACCOUNT" DefaultAccount="$ACCOUNT" >/dev/null
        fi
    done
}

start_slurm() {
    if [[ ${CONF_CHANGED:-0} == 1 ]]; then
        # plugin types (accounting, select, ...) need a full restart, not reconfigure
        stop_pidfile "$SLURMD_PID" slurmd
        stop_pidfile "$CTLD_PID" slurmctld
    fi
    if ! running "$CTLD_PID" slurmctld; then
        log "starting slurmctld"
        /usr/sbin/slurmctld       # daemonises itself (do NOT use -D in a script)
    fi
    wait_for 30 scontrol ping || die "slurmctld not answering (see /var/log/slurm/slurmctld.log)"
    if ! running "$SLURMD_PID" slurmd; then
        log "starting slurmd"
        /usr/sbin/slurmd -N "$NODENAME"
    fi
    # node may come back DOWN/DRAIN after an unclean stop; resume it
    local state
    wait_for 30 sh -c "sinfo -h -n '$NODENAME' -o %T | grep -Eq '^(idle|mixed|allocated|down|drained|draining)'" || true
    state=$(sinfo -h -n "$NODENAME" -o %T)
    if [[ $state =~ down|drain ]]; then
        log "node $NODENAME is $state - resuming"
        scontrol update NodeName="$NODENAME" State=RESUME || true
    fi
    wait_for 30 sh -c "sinfo -h -n '$NODENAME' -o %T | grep -Eq '^(idle|mixed|allocated)\$'" \
        || die "node $NODENAME not idle: $(sinfo -h -o '%T %E')"
}

smoke_test() {
    log "smoke test: srun + sbatch"
    srun -t 1 -n1 hostname >/dev/null
    local out; out=$(mktemp)
    sbatch --wait -t 1 -o "$out" --wrap 'echo ok-$SLURM_JOB_ID' >/dev/null
    grep -q '^ok-' "$out" || die "sbatch smoke test failed"
    rm -f "$out"
    if [[ $WITH_DBD == 1 ]]; then
        wait_for 15 sh -c "sacct -X -n -P --format=State -S now-1hours | grep -q COMPLETED" \
            || die "sacct does not show completed jobs"
    fi
}

case $ACTION in
    start)
        [[ $EUID -eq 0 ]] || die "run as root (sudo)"
        install_packages
        start_munge
        write_slurm_conf
        start_dbd
        start_slurm
        smoke_test
        log "cluster '$CLUSTER' ready: partition=$PARTITION account=$ACCOUNT dbd=$WITH_DBD"
        sinfo
        ;;
    stop)   [[ $EUID -eq 0 ]] || die "run as root (sudo)"; do_stop ;;
    status) do_status ;;
    *) die "usage: $0 start|stop|status" ;;
esac
