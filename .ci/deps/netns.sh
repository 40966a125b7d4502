# Sourced by .ci/test. The real-NAT tests of tests/netns_nat.rs build network namespaces
# with ip and iptables, as root; conntrack only for their failure messages.
if ! { command -v ip && command -v iptables && command -v conntrack; } >/dev/null; then
    apt-get update && apt-get install -y iproute2 iptables conntrack
fi
