# Sourced by benches/wan.sh and benches/resume.sh: the simulated WAN link
# (two private network namespaces joined by a veth pair, MTU 1500, each
# end's egress shaped by `tc tbf`) and the cleanup that stops what a run
# started and removes the namespaces.
#
# The caller sets NC, NS (namespace names), VC, VS (veth names), RATE,
# BURST, an array PIDS of the processes it starts, and a function die.

# netns_link SUBNET: makes the link with SUBNET.1 on the client side and
# SUBNET.2 on the server side (e.g. `netns_link 10.77.0`).
netns_link() {
    ip netns add $NC && ip netns add $NS || die "ip netns add failed (needs CAP_SYS_ADMIN)"
    ip link add $VC netns $NC type veth peer name $VS netns $NS || die "cannot create a veth pair"
    ip -n $NC addr add $1.1/24 dev $VC
    ip -n $NS addr add $1.2/24 dev $VS
    local pair
    for pair in "$NC $VC" "$NS $VS"; do
        set -- $pair
        ip -n $1 link set lo up
        ip -n $1 link set $2 mtu 1500 up
        tc -n $1 qdisc add dev $2 root tbf rate $RATE burst $BURST latency 50ms \
            || die "tc tbf on $2 failed (kernel without sch_tbf?)"
    done
}

# netns_stop: SIGTERM to every PID in PIDS, SIGKILL after 5 s, then kills
# anything left inside the two namespaces (only this run starts processes
# there) and deletes them.
netns_stop() {
    local p n
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2> /dev/null; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2> /dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2> /dev/null
    done
    for n in $NC $NS; do
        for p in $(ip netns pids $n 2> /dev/null); do kill -KILL "$p" 2> /dev/null; done
        ip netns del $n 2> /dev/null
    done
}
