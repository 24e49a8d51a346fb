"""The server farm's load balancer: kernel-only (iptables DNAT per conntrack flow), two modes."""
