"""What runs in the NAT routers: conntrack mapping events and the userspace delay line."""
