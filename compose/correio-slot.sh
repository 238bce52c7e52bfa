#!/bin/sh
# correio-slot STAGE [-v] - run correio-STAGE with a data_directory of its
# own inside a volume that every replica of the service shares.
#
# Compose gives all replicas of a service the same named volume and no
# stable replica number, and an LMDB environment must be owned by one
# process (DESIGN.md "State"; LMDB's reader table also keys on PIDs, which
# collide between containers).  So each replica claims the first free slot
# directory BASE/slot-N by holding flock(1) on BASE/slot-N/.lock for its
# whole life (the lock fd survives the exec), and runs with
# data_directory = BASE/slot-N.  After `docker compose down` and `up` the
# replicas take the same slots again, so a delivery queue is never left
# behind; a slot above the current scale keeps its state until the
# service is scaled up again (empty it first with `correio drain`).
#
# The stage reads a private configuration directory (run_directory/conf):
# symbolic links to every file of CORREIO_CONFIG (maps, users, rules stay
# live) and a copy of correio.conf with the data_directory line added, so
# a change of correio.conf itself needs a restart of the service.
# Environment: CORREIO_CONFIG (/etc/correio), CORREIO_SLOT_BASE
# (/var/lib/correio), CORREIO_SLOT_MAX (64), CORREIO_RUN (/run/correio).
set -eu
[ $# -ge 1 ] || { echo "usage: correio-slot STAGE [-v]" >&2; exit 2; }
stage=$1
shift
case "$stage" in
ingress|classifier|router|delivery|fetcher) ;;
*) echo "correio-slot: unknown stage '$stage'" >&2; exit 2 ;;
esac
conf=${CORREIO_CONFIG:-/etc/correio}
base=${CORREIO_SLOT_BASE:-/var/lib/correio}
max=${CORREIO_SLOT_MAX:-64}
run=${CORREIO_RUN:-/run/correio}/conf
[ -r "$conf/correio.conf" ] || { echo "correio-slot: no $conf/correio.conf" >&2; exit 1; }

n=0
while :; do
    if [ "$n" -ge "$max" ]; then
        echo "correio-slot: every slot below $max in $base is taken" >&2
        exit 1
    fi
    mkdir -p "$base/slot-$n"
    exec 9>>"$base/slot-$n/.lock"
    if flock -n 9; then
        break
    fi
    exec 9>&-
    n=$((n + 1))
done

rm -rf "$run"
mkdir -p "$run"
for f in "$conf"/* "$conf"/.[!.]*; do
    [ -e "$f" ] || continue
    [ "${f##*/}" = correio.conf ] && continue
    ln -s "$f" "$run/${f##*/}"
done
{
    cat "$conf/correio.conf"
    printf '\n# added by correio-slot: this replica'"'"'s own LMDB state\n'
    printf 'data_directory = %s/slot-%d\n' "$base" "$n"
} >"$run/correio.conf"
echo "correio-slot: $stage uses $base/slot-$n" >&2
exec "correio-$stage" -c "$run" "$@"
