#!/usr/bin/env bash
# A throw-away, single-node SLURM cluster (with accounting) for Mosaic's tests.
#
# Usage:
#   tests/slurm/cluster.sh install          # apt-get install the packages (idempotent, root)
#   tests/slurm/cluster.sh start  DIR       # configure + start everything under DIR, print env
#   tests/slurm/cluster.sh stop   DIR       # stop every daemon started for DIR (idempotent)
#   tests/slurm/cluster.sh status DIR       # sinfo / squeue / sacct
#
# `start` prints the environment a caller needs on stdout (progress goes to stderr):
#   eval "$(tests/slurm/cluster.sh start "$DIR")"     # -> export SLURM_CONF=DIR/etc/slurm.conf
# The same lines are written to DIR/env.sh.
#
# Everything (configs, munge key and socket, MariaDB datadir, spool/state/log/pid files)
# lives in DIR; the one exception is the symlink /etc/slurm/slurm.conf -> DIR/etc/slurm.conf
# while the cluster runs (see link_system_conf). No systemd is used:
# every daemon is started directly, as root, and writes a pid file into DIR/pid.
# All TCP ports (mariadb, slurmdbd, slurmctld, slurmd) are picked free at start, on
# 127.0.0.1, so several clusters (or a stale one) cannot collide with the default ports.
#
# Debian 12 (slurm-wlm 22.05, munge 0.5.15, MariaDB 10.11), run as root.

set -euo pipefail

PACKAGES=(slurm-wlm slurmdbd munge mariadb-server)
WAIT_S=${SLURM_TEST_WAIT_S:-60}        # bound for every wait in `start`
CLUSTER_NAME=mosaic
PARTITION=debug
ACCOUNT=root

log() { printf '[cluster.sh +%ds] %s\n' "$SECONDS" "$*" >&2; }
die() { printf '[cluster.sh] ERROR: %s\n' "$*" >&2; exit 1; }

need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root (SlurmUser=root, daemons started directly)"; }

# --------------------------------------------------------------------------- install

packages_installed() {
    local p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || return 1
    done
}

cmd_install() {
    if packages_installed; then
        log "packages already installed: ${PACKAGES[*]}"
        return 0
    fi
    need_root
    command -v apt-get >/dev/null || die "apt-get not found: only Debian/Ubuntu are supported"
    export DEBIAN_FRONTEND=noninteractive

    # The maintainer scripts would start munge/mariadb/slurm through invoke-rc.d (sysv init
    # scripts, since there is no systemd), leaving system daemons on the default ports and
    # sockets behind. A policy-rc.d returning 101 forbids that; ours is removed afterwards.
    local policy=/usr/sbin/policy-rc.d own_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\n# temporary, from tests/slurm/cluster.sh install\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        own_policy=1
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi

    local apt_opts=(-y -q --no-install-recommends -o DPkg::Lock::Timeout=120
                    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
    # apt-get update only when the package lists don't know the packages (fresh machine)
    # or when the install fails (stale lists -> 404); then try once more.
    local p
    for p in "${PACKAGES[@]}"; do
        if ! apt-cache show "$p" >/dev/null 2>&1; then
            log "apt-get update (package lists lack $p)"
            timeout 600 apt-get -q update >&2 || die "apt-get update failed"
            break
        fi
    done
    log "apt-get install ${PACKAGES[*]}"
    if ! timeout 900 apt-get install "${apt_opts[@]}" "${PACKAGES[@]}" >&2; then
        log "install failed; apt-get update and retry"
        timeout 600 apt-get -q update >&2 || die "apt-get update failed"
        timeout 900 apt-get install "${apt_opts[@]}" "${PACKAGES[@]}" >&2 \
            || die "could not install ${PACKAGES[*]} (see apt output above)"
    fi
    packages_installed || die "packages still not installed after apt-get: ${PACKAGES[*]}"
    if ((own_policy)); then rm -f "$policy"; trap - EXIT; fi
    log "installed: ${PACKAGES[*]}"
}

# --------------------------------------------------------------------------- helpers

# Resolve DIR to an absolute path (created by `start`).
abs_dir() {
    [[ -n ${1:-} ]] || die "missing DIR argument"
    mkdir -p "$1"
    (cd "$1" && pwd -P)
}

# A TCP port that nothing on this machine has bound (checked in /proc/net/tcp{,6}).
# Already-chosen ports of this run are passed as arguments and avoided too.
free_port() {
    local used=" $* " sl local_addr rest port i
    while read -r sl local_addr rest; do
        [[ $sl == sl ]] && continue                      # header line
        used+="$((16#${local_addr##*:})) "
    done < <(cat /proc/net/tcp /proc/net/tcp6 2>/dev/null)
    for ((i = 0; i < 200; i++)); do
        port=$((20000 + RANDOM % 30000))
        if [[ $used != *" $port "* ]]; then
            echo "$port"
            return 0
        fi
    done
    die "no free TCP port found"
}

# running PID: the process exists and is not a zombie (daemons are orphans of PID 1,
# which may be slow to reap them in containers).
running() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }          # fields after "pid (comm) "
    [[ ${stat%% *} != Z ]]
}

# pid_alive PIDFILE NAME: succeed if PIDFILE names a running process whose command is NAME
# (guards against a recycled pid belonging to someone else).
pid_alive() {
    local pidfile=$1 name=$2 pid comm
    [[ -s $pidfile ]] || return 1
    pid=$(tr -dc '0-9' <"$pidfile")
    [[ -n $pid ]] || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    [[ $comm == "$name" ]] && running "$pid"
}

# wait_for SECONDS DESCRIPTION CMD...: poll CMD every 0.2 s until it succeeds.
wait_for() {
    local secs=$1 what=$2 deadline
    shift 2
    deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || { log "timed out after ${secs}s waiting for $what"; return 1; }
        sleep 0.2
    done
}

# Print the last lines of a log file to stderr (for failure diagnostics).
show_log() {
    if [[ -f $1 ]]; then
        log "---- tail of $1"
        tail -n 25 "$1" >&2
    fi
}

# launch LOGFILE CMD...: run a self-daemonizing daemon, detached from our stdio (a caller
# capturing our output must not wait for the daemon); on failure show its log.
launch() {
    local logfile=$1
    shift
    "$@" </dev/null >/dev/null 2>>"$logfile" || { show_log "$logfile"; return 1; }
}

# Layout inside DIR (shared by start/stop/status).
set_paths() {
    D=$1
    ETC=$D/etc PIDS=$D/pid LOGS=$D/log
    SLURM_CONF_FILE=$ETC/slurm.conf
    MUNGE_DIR=$D/munge MUNGE_SOCKET=$D/munge/munge.socket
    DB_DIR=$D/mysql DB_SOCKET=$D/mysql/mysqld.sock DB_CNF=$ETC/my.cnf
}

# --------------------------------------------------------------------------- /etc/slurm link

# The one path outside DIR: snakemake-executor-plugin-slurm-jobstep (0.6.1) runs `srun`
# inside each job with every SLURM_* variable removed from the environment, SLURM_CONF
# included, so that srun only finds the default /etc/slurm/slurm.conf. While the cluster
# runs, that path is a symlink to DIR/etc/slurm.conf; `stop` removes it. A leftover link to a
# stopped cluster would make every slurm tool (and each snakemake start) wait for a dead
# controller, and a dangling one (DIR deleted) is harmless.
SYSTEM_CONF=/etc/slurm/slurm.conf

# Refuse early if the link belongs to another running cluster or is a real file.
check_system_conf() {
    if [[ -L $SYSTEM_CONF ]]; then
        local target other
        target=$(readlink "$SYSTEM_CONF")
        if [[ $target != "$SLURM_CONF_FILE" ]]; then
            other=$(dirname "$(dirname "$target")")
            if pid_alive "$other/pid/slurmctld.pid" slurmctld; then
                die "$SYSTEM_CONF points to another running test cluster ($other)"
            fi
            log "replacing stale link $SYSTEM_CONF -> $target"
        fi
    elif [[ -e $SYSTEM_CONF ]]; then
        die "$SYSTEM_CONF exists and is not a link made by this script; refusing to replace it"
    fi
}

link_system_conf() {       # after check_system_conf
    mkdir -p "$(dirname "$SYSTEM_CONF")"
    ln -sfn "$SLURM_CONF_FILE" "$SYSTEM_CONF"
}

unlink_system_conf() {
    if [[ -L $SYSTEM_CONF && $(readlink "$SYSTEM_CONF") == "$SLURM_CONF_FILE" ]]; then
        rm -f "$SYSTEM_CONF"
    fi
}

# --------------------------------------------------------------------------- start

write_configs() {
    local host=$1 cpus=$2 mem_mb=$3 db_port=$4 dbd_port=$5 ctld_port=$6 slurmd_port=$7
    local db_pass=$8

    # MariaDB: private datadir/socket; TCP only on 127.0.0.1 because slurmdbd cannot be
    # told a unix socket path (StorageHost/StoragePort only).
    cat >"$DB_CNF" <<EOF
[mysqld]
user = root
datadir = $DB_DIR/data
socket = $DB_SOCKET
pid-file = $PIDS/mariadbd.pid
log-error = $LOGS/mariadbd.log
bind-address = 127.0.0.1
port = $db_port
skip-name-resolve
skip-log-bin
innodb_buffer_pool_size = 128M
innodb_log_file_size = 64M
innodb_lock_wait_timeout = 900
innodb_use_native_aio = 0

[client]
socket = $DB_SOCKET
user = root
EOF

    cat >"$ETC/slurmdbd.conf" <<EOF
# generated by tests/slurm/cluster.sh
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$dbd_port
SlurmUser=root
PidFile=$PIDS/slurmdbd.pid
LogFile=$LOGS/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$db_port
StorageUser=slurm
StoragePass=$db_pass
StorageLoc=slurm_acct_db
EOF
    chmod 600 "$ETC/slurmdbd.conf"   # slurmdbd refuses a world-readable config

    cat >"$SLURM_CONF_FILE" <<EOF
# generated by tests/slurm/cluster.sh
ClusterName=$CLUSTER_NAME
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$PIDS/slurmctld.pid
SlurmdPidFile=$PIDS/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$ETC/plugstack.conf
MpiDefault=none
MailProg=/bin/true
SwitchType=switch/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$dbd_port
# Clients and slurmctld take the munge socket for slurmdbd connections from here, not from
# AuthInfo (slurm's "alternate munge daemon" feature); without it they try /run/munge.
AccountingStoragePass=$MUNGE_SOCKET
JobCompType=jobcomp/none
ReturnToService=2
SchedulerType=sched/backfill
# start a submitted batch job at once instead of batching submissions for up to 3 s
SchedulerParameters=batch_sched_delay=0
# quick turnaround for tests
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
NodeName=$host NodeHostname=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    : >"$ETC/plugstack.conf"   # keep slurm away from /etc/slurm/plugstack.conf
}

start_munge() {
    if [[ ! -s $MUNGE_DIR/munge.key ]]; then
        mungekey --create --keyfile="$MUNGE_DIR/munge.key" 2>/dev/null \
            || dd if=/dev/urandom of="$MUNGE_DIR/munge.key" bs=128 count=1 status=none
    fi
    chmod 600 "$MUNGE_DIR/munge.key"
    # munged refuses insecure paths: DIR/munge must be owned by the daemon's user, not
    # group/world writable, and every directory above the socket must be searchable by all.
    # Run it as user `munge` when that holds; inside a 0700 directory (such as pytest's
    # tmp_path) run it as root with --force, which turns the last check into a warning:
    # only root (slurm daemons, sbatch/sacct callers, jobs) can reach the socket then.
    local user=root
    local munged_cmd=(munged)
    if id munge >/dev/null 2>&1 && runuser -u munge -- test -x "$MUNGE_DIR" 2>/dev/null; then
        user=munge
    else
        munged_cmd+=(--force)
    fi
    chown "$user:" "$MUNGE_DIR" "$MUNGE_DIR/munge.key"
    chmod 755 "$MUNGE_DIR"   # munged insists on a world-searchable socket directory
    touch "$PIDS/munged.pid" "$LOGS/munged.log"
    chown "$user:" "$PIDS/munged.pid" "$LOGS/munged.log"
    log "starting munged (as $user)"
    munged_cmd+=(--socket="$MUNGE_SOCKET" --key-file="$MUNGE_DIR/munge.key"
                 --pid-file="$PIDS/munged.pid" --log-file="$LOGS/munged.log"
                 --seed-file="$MUNGE_DIR/munged.seed" --num-threads=4)
    if [[ $user == munge ]]; then
        munged_cmd=(runuser -u munge -- "${munged_cmd[@]}")
    fi
    launch "$LOGS/munged.log" "${munged_cmd[@]}"
    wait_for "$WAIT_S" "munged" \
        bash -c "munge -n -S '$MUNGE_SOCKET' | unmunge -S '$MUNGE_SOCKET'" \
        || { show_log "$LOGS/munged.log"; return 1; }
}

start_mariadb() {
    local db_pass=$1
    if [[ ! -d $DB_DIR/data/mysql ]]; then
        log "initialising MariaDB datadir"
        mariadb-install-db --defaults-file="$DB_CNF" --auth-root-authentication-method=socket \
            --skip-test-db >"$LOGS/mariadb-install-db.log" 2>&1 \
            || { show_log "$LOGS/mariadb-install-db.log"; return 1; }
    fi
    log "starting mariadbd"
    # mariadbd does not daemonize: detach it (own session, no inherited stdio).
    setsid mariadbd --defaults-file="$DB_CNF" </dev/null >>"$LOGS/mariadbd.log" 2>&1 &
    wait_for "$WAIT_S" "mariadbd" mariadb-admin --defaults-file="$DB_CNF" ping \
        || { show_log "$LOGS/mariadbd.log"; return 1; }
    mariadb --defaults-file="$DB_CNF" <<EOF
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE OR REPLACE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$db_pass';
CREATE OR REPLACE USER 'slurm'@'localhost' IDENTIFIED BY '$db_pass';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
EOF
}

start_slurm() {
    local host=$1
    log "starting slurmdbd"
    launch "$LOGS/slurmdbd.log" slurmdbd
    wait_for "$WAIT_S" "slurmdbd" sacctmgr -n -P show cluster \
        || { show_log "$LOGS/slurmdbd.log"; return 1; }

    # Register the cluster before slurmctld starts; adding a cluster also creates the
    # `root` account with user root, which is all `-A root` needs.
    if [[ -z $(sacctmgr -n -P show cluster "$CLUSTER_NAME" format=cluster) ]]; then
        sacctmgr -i add cluster "$CLUSTER_NAME" >/dev/null
    fi
    if [[ -z $(sacctmgr -n -P show assoc cluster="$CLUSTER_NAME" account="$ACCOUNT" user=root format=user) ]]; then
        sacctmgr -i add user root account="$ACCOUNT" cluster="$CLUSTER_NAME" >/dev/null
    fi

    log "starting slurmctld"
    launch "$LOGS/slurmctld.log" slurmctld -c   # -c: fresh state, no old jobs
    wait_for "$WAIT_S" "slurmctld" bash -c 'scontrol ping | grep -q UP' \
        || { show_log "$LOGS/slurmctld.log"; return 1; }

    log "starting slurmd"
    launch "$LOGS/slurmd.log" slurmd
    wait_for "$WAIT_S" "node $host idle" \
        bash -c "[[ \$(sinfo -h -n '$host' -o %t) == idle ]]" \
        || { show_log "$LOGS/slurmd.log"; show_log "$LOGS/slurmctld.log"; sinfo -R >&2 || true; return 1; }
    wait_for "$WAIT_S" "sacct" sacct -n -X \
        || { show_log "$LOGS/slurmdbd.log"; return 1; }

    # One warm-up job, end to end (sbatch -> slurmd -> accounting). Besides proving the
    # cluster works, it makes slurmctld read SchedulerParameters: before its first
    # scheduling pass the default batch_sched_delay=3 still applies (first job waits ~3 s).
    local id
    log "running warm-up job"
    id=$(sbatch --parsable -J cluster-warmup -A "$ACCOUNT" -p "$PARTITION" -D "$D" \
                -o /dev/null --wrap true)
    wait_for "$WAIT_S" "warm-up job $id COMPLETED in sacct" \
        bash -c "[[ \$(sacct -n -X -j $id -o State%20) == *COMPLETED* ]]" \
        || { show_log "$LOGS/slurmd.log"; show_log "$LOGS/slurmctld.log"; return 1; }
}

cmd_start() {
    need_root
    local dir
    dir=$(abs_dir "${1:-}")
    set_paths "$dir"
    local prog
    for prog in munged mariadbd slurmdbd slurmctld slurmd; do
        command -v "$prog" >/dev/null || die "$prog not found: run '$0 install' first"
        if pid_alive "$PIDS/$prog.pid" "$prog"; then
            die "$prog already running for $D: run '$0 stop $D' first"
        fi
    done
    [[ $D != *[[:space:]]* ]] || die "DIR must not contain whitespace (slurm.conf values): $D"
    # unix sockets are limited to 107 bytes
    ((${#MUNGE_SOCKET} < 100 && ${#DB_SOCKET} < 100)) || die "DIR path too long for unix sockets: $D"
    check_system_conf

    local t0=$SECONDS host cpus mem_mb db_pass
    host=$(uname -n)
    host=${host%%.*}                                     # short hostname
    cpus=$(nproc)
    # RealMemory a bit below what is available (slurmd drains a node that has less).
    mem_mb=$(awk '/^MemAvailable:/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)
    db_pass=$(tr -dc 'a-zA-Z0-9' </dev/urandom | head -c 20 || true)
    local db_port dbd_port ctld_port slurmd_port
    db_port=$(free_port)
    dbd_port=$(free_port "$db_port")
    ctld_port=$(free_port "$db_port" "$dbd_port")
    slurmd_port=$(free_port "$db_port" "$dbd_port" "$ctld_port")

    mkdir -p "$ETC" "$PIDS" "$LOGS" "$MUNGE_DIR" "$DB_DIR/data" "$D/state" "$D/spool"
    chmod 755 "$D"
    write_configs "$host" "$cpus" "$mem_mb" "$db_port" "$dbd_port" "$ctld_port" "$slurmd_port" "$db_pass"
    export SLURM_CONF=$SLURM_CONF_FILE   # every slurm daemon and tool reads this

    # On any failure: stop what was started, so no daemon outlives a failed start.
    trap 'log "start failed; stopping what was started"; cmd_stop "$D" || true' EXIT
    start_munge
    start_mariadb "$db_pass"
    start_slurm "$host"
    link_system_conf
    trap - EXIT

    printf 'export SLURM_CONF=%q\n' "$SLURM_CONF_FILE" >"$D/env.sh"
    log "cluster '$CLUSTER_NAME' up in $((SECONDS - t0))s: node $host ($cpus CPUs, ${mem_mb} MB), partition $PARTITION, account $ACCOUNT"
    cat "$D/env.sh"
}

# --------------------------------------------------------------------------- stop

# stop_pid PIDFILE NAME: TERM, wait up to 15 s, then KILL.
stop_pid() {
    local pidfile=$1 name=$2 pid i
    if pid_alive "$pidfile" "$name"; then
        pid=$(tr -dc '0-9' <"$pidfile")
        log "stopping $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 75; i++)); do
            running "$pid" || break
            sleep 0.2
        done
        if running "$pid"; then
            log "$name did not stop; SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.2
        fi
    fi
    rm -f "$pidfile"
}

# Jobs still running when slurmd is gone (e.g. slurmctld had died, so scancel could not
# work) live on under their slurmstepd. Ours are the slurmstepd processes that inherited
# SLURM_CONF=<our slurm.conf> from our slurmd: kill them and all their descendants.
kill_leftover_job_processes() {
    local statfile line pid fields victims=() changed
    local -A parent=()
    # parent pid of every process, and the roots: our slurmstepd processes
    for statfile in /proc/[0-9]*/stat; do
        line=$(cat "$statfile" 2>/dev/null) || continue
        pid=${line%% *}
        read -r -a fields <<<"${line##*) }"              # state ppid ...
        parent[$pid]=${fields[1]}
        if [[ $(cat "/proc/$pid/comm" 2>/dev/null) == slurmstepd ]] \
                && { tr '\0' '\n' <"/proc/$pid/environ"; } 2>/dev/null \
                   | grep -qxF "SLURM_CONF=$SLURM_CONF_FILE"; then
            victims+=("$pid")
        fi
    done
    ((${#victims[@]})) || return 0
    # add descendants until nothing changes
    changed=1
    while ((changed)); do
        changed=0
        for pid in "${!parent[@]}"; do
            if [[ " ${victims[*]} " != *" $pid "* && " ${victims[*]} " == *" ${parent[$pid]} "* ]]; then
                victims+=("$pid")
                changed=1
            fi
        done
    done
    log "killing leftover job processes: ${victims[*]}"
    kill -KILL "${victims[@]}" 2>/dev/null || true
}

cmd_stop() {
    [[ -n ${1:-} ]] || die "missing DIR argument"
    [[ -d $1 ]] || { log "nothing to stop: $1 does not exist"; return 0; }
    local dir
    dir=$(cd "$1" && pwd -P)
    set_paths "$dir"
    export SLURM_CONF=$SLURM_CONF_FILE
    # Cancel jobs while the controller is still up, so slurmstepd cleans them up.
    if pid_alive "$PIDS/slurmctld.pid" slurmctld; then
        timeout 10 scancel --full --user=root >/dev/null 2>&1 || true
        # shellcheck disable=SC2016  # expanded by the inner bash
        wait_for 10 "jobs to end" bash -c '[[ -z $(squeue -h -o %i) ]]' || true
    fi
    stop_pid "$PIDS/slurmd.pid" slurmd
    stop_pid "$PIDS/slurmctld.pid" slurmctld
    stop_pid "$PIDS/slurmdbd.pid" slurmdbd
    stop_pid "$PIDS/mariadbd.pid" mariadbd
    stop_pid "$PIDS/munged.pid" munged
    kill_leftover_job_processes
    unlink_system_conf
}

# --------------------------------------------------------------------------- status

cmd_status() {
    [[ -n ${1:-} && -d $1 ]] || die "missing or nonexistent DIR"
    local dir
    dir=$(cd "$1" && pwd -P)
    set_paths "$dir"
    export SLURM_CONF=$SLURM_CONF_FILE
    local prog
    for prog in munged mariadbd slurmdbd slurmctld slurmd; do
        if pid_alive "$PIDS/$prog.pid" "$prog"; then
            echo "$prog: running (pid $(tr -dc '0-9' <"$PIDS/$prog.pid"))"
        else
            echo "$prog: not running"
        fi
    done
    pid_alive "$PIDS/slurmctld.pid" slurmctld || return 0   # clients would wait for it
    echo "== sinfo";  timeout 10 sinfo  || true
    echo "== squeue"; timeout 10 squeue || true
    echo "== sacct";  timeout 10 sacct -a -X --starttime=now-1days \
                          -o JobID,JobName%30,Account,Partition,State,ExitCode,Elapsed || true
}

# --------------------------------------------------------------------------- main

case ${1:-} in
    install) cmd_install ;;
    start)   cmd_start "${2:-}" ;;
    stop)    cmd_stop "${2:-}" ;;
    status)  cmd_status "${2:-}" ;;
    *) sed -n '2,13p' "$0" >&2; exit 2 ;;
esac
