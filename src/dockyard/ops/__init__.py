"""Operations: the debug server (``/debug/health``, Prometheus metrics) beside the registry.

Nothing here imports ``prometheus_client`` at import time: with several workers the
parent must choose its multiprocess directory before the library is first imported.
"""
