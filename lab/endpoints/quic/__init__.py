"""The QUIC endpoints on aioquic (client, server, their telemetry and qlog), and the one module that
touches aioquic's internals (aioquic_seam)."""
