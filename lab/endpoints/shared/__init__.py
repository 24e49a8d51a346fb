"""What the endpoints share: the workload's byte stream, the gap meter, the client's control
socket and the network configuration (routes, interfaces)."""
