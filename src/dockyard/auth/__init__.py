"""Authentication (htpasswd, tokens) and authorization (access policies)."""
