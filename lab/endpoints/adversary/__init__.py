"""The adversaries of RFC 9000 §9.3.1-9.3.3 and §21: a silent victim, an off-path sensor and forwarder.

- ``victim``: a host on the internet network that never answers; its capture counts what reaches it.
- ``tap``: runs inside a client network's router, where a radio on the same Wi-Fi would listen, and
  sends the attacker a copy of every datagram the client sends towards the server.
- ``forward``: runs in the attacker and sends those copies on to the server, from its own address
  or with the victim's address as the source (a raw socket), ahead of the real path.
The on-path attacker needs no program: it is a next hop that rewrites sources (iptables SNAT),
which ``lab.control.adversary`` sets up.
"""
