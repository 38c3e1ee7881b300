"""Doctest collection under logscan/: the framework adapters are collected only where their framework is installed."""

import importlib.util

collect_ignore = [name for name in ("torch", "jax") if importlib.util.find_spec(name) is None]
