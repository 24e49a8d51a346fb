"""The TCP+TLS baseline: a client that reconnects and resumes, and its server."""
