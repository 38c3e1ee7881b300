"""Fit the float32 polynomials of ``logscan.backends.numba_cpu._vmath`` and print their errors.

Usage::

    python tools/fit_vmath_polynomials.py [--nodes 4000] [--rounds 60]

Each polynomial approximates a function ``f`` on an interval with the lowest
coefficients fixed, ``f(x) ~ sum_k c_k x^k``, minimizing the largest relative
error ``|p(x) / f(x) - 1|`` (minimax). The fit is Lawson's algorithm:
weighted least squares on Chebyshev nodes, each round multiplying every
node's weight by the square root of its error relative to the largest, so
the weights gather where the error peaks and the error levels out. The
coefficients are then rounded to float32, as the kernels store them, and
the relative error of that float32-coefficient polynomial is measured in
longdouble on a dense grid.

Fits:

- ``exp``: ``exp(r) ~ 1 + r + c2 r^2 + ... + c6 r^6`` on ``|r| <= ln2/2``
  (with a margin of 5e-4: the reduced argument is rounded), the ``_EXP6_32``
  of ``_vmath``.
- ``log1p``: ``log1p(e) / e ~ q0 + q1 e + ... + q9 e^9`` on ``[0, 1]`` (the
  softplus's ``_Q32``; the values in ``_vmath`` came from an earlier run of
  the same method with other settings).
"""

from __future__ import annotations

import argparse

import numpy as np

LN2_HALF = float(np.log(2.0) / 2)


def _expm1_tail(r):
    """``exp(r) - 1 - r``: what ``c2 r^2 + ...`` must match."""
    return np.expm1(r) - r


def _log1p_over(e):
    return np.where(e > 0, np.log1p(e) / np.where(e > 0, e, 1), 1)


# name: (interval, powers fitted, part of f those powers must match, f itself (relative error), fixed part)
FITS = {
    "exp": ((-LN2_HALF * 1.0005, LN2_HALF * 1.0005), range(2, 7), _expm1_tail, np.exp, lambda r: 1 + r),
    "log1p": ((0.0, 1.0), range(0, 10), _log1p_over, _log1p_over, lambda e: 0 * e),
}


def fit(name, nodes=4000, rounds=60):
    """``(coefficients, float32 coefficients, max relative error with the float32 ones)`` of one fit of FITS."""
    (lo, hi), powers, target_of, f, fixed = FITS[name]
    powers = list(powers)
    x = (lo + hi) / 2 + (hi - lo) / 2 * np.cos(np.pi * (np.arange(nodes) + 0.5) / nodes)
    x = x.astype(np.longdouble)
    target = target_of(x).astype(np.float64)
    scale = f(x).astype(np.float64)  # errors are relative to f, not to the fitted part
    design = np.stack([x ** k for k in powers], 1).astype(np.float64)
    weights = np.ones(nodes)
    for _ in range(rounds):
        w = weights / scale
        coefficients, *_ = np.linalg.lstsq(design * w[:, None], target * w, rcond=None)
        error = np.abs((design @ coefficients - target) / scale)
        weights = weights * np.sqrt(error / error.max()) + 1e-30
        weights /= weights.sum()
    single = coefficients.astype(np.float32)
    grid = np.linspace(lo, hi, 200_001).astype(np.longdouble)
    p = fixed(grid) + sum(np.longdouble(c) * grid ** k for c, k in zip(single, powers, strict=True))
    worst = float(np.max(np.abs(p / f(grid) - 1)))
    return coefficients, single, worst


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()
    for name in FITS:
        _, single, worst = fit(name, args.nodes, args.rounds)
        print(f"{name}: max relative error {worst:.3g} with float32 coefficients")
        print("  (" + ", ".join(repr(float(c)) for c in single) + ")")


if __name__ == "__main__":
    main()
