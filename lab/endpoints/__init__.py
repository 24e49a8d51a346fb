"""Programs that run inside the lab's containers (and on the host): server, client, router."""
