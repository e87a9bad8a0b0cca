"""The error of an unusable key or certificate: in a module of its own, so that catching it
loads no cryptography (a server without TLS or token auth never does)."""


class CertificateError(Exception):
    """A key or certificate cannot be used; the message names the file and the problem."""
