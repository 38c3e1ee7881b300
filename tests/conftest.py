"""Fixtures of the contract suite: which backends and methods run, and a seeded generator.

Backends are the CPU backends that :func:`logscan.available_backends` lists;
``LOGSCAN_TEST_BACKENDS=numpy,numba`` chooses others (a name given there that
cannot run here is an error, not a silent skip). It may name the GPU backends
(``numba_cuda``, ``cupy``), which then run the same suite on NumPy arrays,
copied to the device and back (``tools/gpu_check.sh`` does so on a GPU;
``numba_cuda`` also runs under ``NUMBA_ENABLE_CUDASIM=1``). Methods are those each
backend declares in its ``methods`` tuple, so a backend that adds one (the
numba ``"chunked"``) is tested with no change here.

A test that takes the fixtures ``backend`` and ``method`` runs once per
(backend, method) pair, with ids such as ``numpy-blelloch``; ``backend``
alone runs once per backend. Tolerances and comparisons live in
``tests/helpers.py``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import logscan
from logscan import registry

# Hypothesis: small and fast by default (2 shared cores), many more examples on demand
# with --hypothesis-profile=thorough. No deadline: numba compiles on first calls.
settings.register_profile("default", max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("thorough", max_examples=1000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile("default")


# ------------------------------------------------------------ backends, methods
def _backends_under_test():
    cpu = [name for name in registry.names() if registry.spec(name).device == "cpu"]
    wanted = os.environ.get("LOGSCAN_TEST_BACKENDS", "").strip()
    if not wanted:
        return [name for name in logscan.available_backends() if name in cpu]
    names = [w.strip() for w in wanted.split(",") if w.strip()]
    unknown = [n for n in names if n not in registry.names()]
    if unknown:
        raise pytest.UsageError(f"LOGSCAN_TEST_BACKENDS names {unknown}, which are not backends; "
                                f"expected some of {registry.names()}")
    # a GPU backend runs the suite on NumPy arrays (copied to the device and back), where it can run at all
    absent = [n for n in names if n not in cpu and n not in logscan.available_backends()]
    if absent:
        raise pytest.UsageError(f"LOGSCAN_TEST_BACKENDS names {absent}, which cannot run here "
                                f"(no GPU, or its package is missing)")
    return names


def _methods(name):
    try:
        return tuple(registry.load(name, caller="tests").methods)
    except Exception as error:  # noqa: BLE001  (reported as a usage error below)
        raise pytest.UsageError(f"backend {name!r} cannot be tested here: {error}") from error


BACKENDS = _backends_under_test()
BACKEND_METHODS = [(name, method) for name in BACKENDS for method in _methods(name)]


def pytest_report_header(config):
    return f"logscan backends under test: {', '.join(f'{b}:{m}' for b, m in BACKEND_METHODS)}"


def pytest_generate_tests(metafunc):
    names = metafunc.fixturenames
    if "backend" in names and "method" in names:
        metafunc.parametrize(("backend", "method"), BACKEND_METHODS, ids=[f"{b}-{m}" for b, m in BACKEND_METHODS])
    elif "backend" in names:
        metafunc.parametrize("backend", BACKENDS, ids=BACKENDS)


@pytest.fixture
def rng(request):
    """A generator seeded from the test's id: reproducible, and different per test."""
    seed = sum(ord(c) * (k + 1) for k, c in enumerate(request.node.nodeid)) % (2**32)
    return np.random.default_rng(seed)
