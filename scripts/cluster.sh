#!/usr/bin/env bash
# Three linkops nodes on 127.0.0.1, for trying the cluster on one machine.
#
#   scripts/cluster.sh               build, start, print the URLs, run until Ctrl-C / SIGTERM
#   scripts/cluster.sh --background  build, start, wait until every node sees the same leader, exit
#   scripts/cluster.sh stop          stop the nodes a --background run left running
#
# Node N (1..3) listens on http PORT_BASE+10*(N-1), raft +1, gossip +2 (8844/8845/8846,
# 8854/..., 8864/...), keeps its data in CLUSTER_DIR/nodeN and its log in CLUSTER_DIR/nodeN.log.
#
# Environment:
#   LINKOPS_CLUSTER_DIR        where data, logs, pid files and the key live (default ./data/cluster)
#   LINKOPS_CLUSTER_PORT_BASE  http port of node1 (default 8844)
#   LINKOPS_CLUSTER_TIMEOUT    seconds to wait for a leader (default 60)
#   LINKOPS_ADMIN_PASSWORD     admin password of a new cluster (default: generated, printed once)
# The cluster key is generated into CLUSTER_DIR/cluster.key on the first start and reused.
# Secrets reach the nodes through their environment, never their command line.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

dir=${LINKOPS_CLUSTER_DIR:-./data/cluster}
base=${LINKOPS_CLUSTER_PORT_BASE:-8844}
timeout=${LINKOPS_CLUSTER_TIMEOUT:-60}
bin=$root/bin/linkops
nodes=(1 2 3)

pids=()  # pids[N]: node N, when this shell started it
force=0  # 1: a second signal arrived while stopping
die() { echo "cluster.sh: $*" >&2; exit 1; }

case "$base" in '' | *[!0-9]*) die "LINKOPS_CLUSTER_PORT_BASE must be a port number (got '$base')" ;; esac
((base >= 1 && base + 22 <= 65535)) || die "LINKOPS_CLUSTER_PORT_BASE $base leaves no room for 3 nodes"
case "$timeout" in '' | *[!0-9]*) die "LINKOPS_CLUSTER_TIMEOUT must be a number of seconds" ;; esac

http_port() { echo $((base + 10 * ($1 - 1))); }
raft_port() { echo $((base + 10 * ($1 - 1) + 1)); }
gossip_port() { echo $((base + 10 * ($1 - 1) + 2)); }

# running PID: the process exists and has not exited (a zombie has).
running() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[[ ${stat%% *} != Z ]]
}

# alive PID: running, and a linkops agent (a pid file may outlive its process, pids get reused).
alive() {
	local cmd
	running "$1" || return 1
	{ cmd=$(tr '\0' ' ' <"/proc/$1/cmdline"); } 2>/dev/null || return 1
	[[ $cmd == *linkops*agent* ]]
}

pid_of() {
	local f=$dir/node$1.pid pid
	[[ -f $f ]] || return 1
	pid=$(<"$f")
	alive "$pid" || return 1
	echo "$pid"
}

# stop_nodes: SIGTERM every node once (a second signal would skip the clean shutdown), wait
# for each to exit, and SIGKILL only one that is still there after 60 seconds. The nodes this
# shell started are in pids[]; otherwise the pid files say.
stop_nodes() {
	local n pid entry e stopping=() i
	for n in "${nodes[@]}"; do
		if [[ -n ${pids[n]:-} ]] && running "${pids[n]}"; then
			pid=${pids[n]}
		elif ! pid=$(pid_of "$n"); then
			continue
		fi
		kill -TERM "$pid" 2>/dev/null || true
		stopping+=("$n:$pid")
	done
	for entry in "${stopping[@]}"; do
		n=${entry%%:*} pid=${entry#*:}
		for ((i = 0; i < 600; i++)); do
			running "$pid" || break
			if ((force == 1)); then
				# A second Ctrl-C: like the agent, a second signal stops it at once.
				for e in "${stopping[@]}"; do kill -TERM "${e#*:}" 2>/dev/null || true; done
				force=2
			fi
			sleep 0.1
		done
		if running "$pid"; then
			echo "node$n (pid $pid) did not stop within 60s; killing it" >&2
			kill -KILL "$pid" 2>/dev/null || true
		else
			echo "node$n stopped"
		fi
	done
	for n in "${nodes[@]}"; do rm -f "$dir/node$n.pid"; done
}

# log_tail N: the end of node N's log since this script last started it.
log_tail() {
	{ tac "$dir/node$1.log" | sed '/^--- scripts\/cluster.sh started/q' | tac | tail -n "${2:-20}"; } 2>/dev/null || true
}

http_get() { curl -fsS --max-time 2 "$1" 2>/dev/null; }

# leader_of N: the leader node N's /api/v1/health reports, or nothing.
leader_of() {
	local body
	body=$(http_get "http://127.0.0.1:$(http_port "$1")/api/v1/health") || return 1
	[[ $body == *'"status":"ok"'* ]] || return 1
	body=${body#*'"leader":"'}
	echo "${body%%\"*}"
}

if [[ ${1:-} == stop ]]; then
	(($# == 1)) || die "usage: scripts/cluster.sh stop"
	any=0
	for n in "${nodes[@]}"; do
		if pid_of "$n" >/dev/null; then any=1; fi
	done
	if ((any == 0)); then
		for n in "${nodes[@]}"; do rm -f "$dir/node$n.pid"; done
		echo "no cluster is running from $dir"
		exit 0
	fi
	stop_nodes
	exit 0
fi

background=0
case "${1:-}" in
'') ;;
--background) background=1 ;;
-h | --help)
	sed -n '2,17s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
	exit 0
	;;
*) die "unknown argument '$1' (want --background, stop or --help)" ;;
esac
(($# <= 1)) || die "too many arguments"
command -v curl >/dev/null || die "curl is needed to check the nodes' health (apt-get install curl)"

for n in "${nodes[@]}"; do
	if pid=$(pid_of "$n"); then
		die "node$n is already running (pid $pid) from $dir; stop it with: scripts/cluster.sh stop"
	fi
done

make --no-print-directory build

umask 077
mkdir -p "$dir"
if [[ ! -s $dir/cluster.key ]]; then
	head -c 32 /dev/urandom | base64 >"$dir/cluster.key"
	echo "generated a cluster key in $dir/cluster.key"
fi
LINKOPS_CLUSTER_KEY=$(tr -d '\n' <"$dir/cluster.key")
export LINKOPS_CLUSTER_KEY

new_cluster=1
for n in "${nodes[@]}"; do
	if [[ -e $dir/node$n/node-id ]]; then new_cluster=0; fi
done
generated_password=
if ((new_cluster)) && [[ -z ${LINKOPS_ADMIN_PASSWORD:-} ]]; then
	generated_password=$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | cut -c1-20)
	LINKOPS_ADMIN_PASSWORD=$generated_password
fi
if ((new_cluster)); then
	export LINKOPS_ADMIN_PASSWORD
else
	# The password only matters when a cluster is created; never pass a stale one along.
	unset LINKOPS_ADMIN_PASSWORD
fi

join=""
for n in "${nodes[@]}"; do join+="${join:+,}127.0.0.1:$(gossip_port "$n")"; done

started=0
main=$BASHPID
cleanup() {
	trap - EXIT
	trap 'force=1' INT TERM
	if ((started)); then
		echo
		echo "stopping the cluster..."
		stop_nodes
	fi
}
# A signal may land in a command substitution's subshell: only the main shell cleans up.
trap '[[ $BASHPID == "$main" ]] || exit 130; cleanup; exit 130' INT
trap '[[ $BASHPID == "$main" ]] || exit 143; cleanup; exit 143' TERM
trap 'status=$?; [[ $BASHPID == "$main" ]] || exit $status; cleanup; exit $status' EXIT

for n in "${nodes[@]}"; do
	echo "--- scripts/cluster.sh started node$n at $(date -u +%Y-%m-%dT%H:%M:%SZ) ---" >>"$dir/node$n.log"
	# Each node gets its own session: a Ctrl-C reaches only this script, which then stops
	# every node exactly once; and a --background node outlives its terminal.
	setsid "$bin" agent \
		--node-id "node$n" \
		--data-dir "$dir/node$n" \
		--http-addr "127.0.0.1:$(http_port "$n")" \
		--raft-addr "127.0.0.1:$(raft_port "$n")" \
		--gossip-addr "127.0.0.1:$(gossip_port "$n")" \
		--bootstrap-expect 3 \
		--join "$join" \
		--rack "rack-$n" \
		</dev/null >>"$dir/node$n.log" 2>&1 &
	pids[n]=$!
	echo $! >"$dir/node$n.pid"
	started=1
done

echo "started 3 nodes; waiting for them to elect a leader (logs: $dir/node{1,2,3}.log)"
deadline=$((SECONDS + timeout))
while :; do
	for n in "${nodes[@]}"; do
		if ! running "${pids[n]}"; then
			echo "node$n exited; the end of $dir/node$n.log:" >&2
			log_tail "$n" >&2
			exit 1
		fi
	done
	leaders=()
	for n in "${nodes[@]}"; do
		if l=$(leader_of "$n") && [[ -n $l ]]; then leaders+=("$l"); fi
	done
	if ((${#leaders[@]} == 3)) && [[ ${leaders[0]} == "${leaders[1]}" && ${leaders[0]} == "${leaders[2]}" ]]; then
		break
	fi
	if ((SECONDS >= deadline)); then
		echo "no common leader after ${timeout}s; the end of each log:" >&2
		for n in "${nodes[@]}"; do
			echo "--- node$n ---" >&2
			log_tail "$n" 10 >&2
		done
		exit 1
	fi
	sleep 0.5
done

echo
echo "linkops cluster is up; the leader is ${leaders[0]}"
for n in "${nodes[@]}"; do
	echo "  node$n (rack-$n): http://127.0.0.1:$(http_port "$n")"
done
echo
echo "web console:  open any node's URL above in a browser and log in as admin"
echo "log in with:  bin/linkops login --addr http://127.0.0.1:$(http_port 1) --username admin"
if [[ -n $generated_password ]]; then
	echo "              generated password of admin (shown only once): $generated_password"
elif ((new_cluster)); then
	echo "              password: the one in LINKOPS_ADMIN_PASSWORD"
else
	echo "              password: the one admin had when this cluster was created ($dir)"
fi
echo "then:         bin/linkops members --addr http://127.0.0.1:$(http_port 1)"

if ((background)); then
	echo "stop it with: scripts/cluster.sh stop"
	trap - INT TERM EXIT
	exit 0
fi

echo "press Ctrl-C to stop all three"
# The nodes are this shell's children: wait returns when one of them exits, or when a signal
# arrives (then the trap stops them all).
wait -n "${pids[@]}" || true
for n in "${nodes[@]}"; do
	if ! running "${pids[n]}"; then
		echo "node$n exited on its own; the end of $dir/node$n.log:" >&2
		log_tail "$n" >&2
	fi
done
exit 1
