"""The Distribution API: its routes, error codes, name grammar and request handlers."""
