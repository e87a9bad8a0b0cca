"""TLS: a local certificate authority, server and client certificates, and serving HTTPS."""
