"""NumPy backend: textbook scans, vectorized over channels, as executable documentation.

Summary of the algorithms
-------------------------
A step of the recurrence is the affine map ``h -> a*h + b``. Composing the
map ``(a1, b1)`` and then ``(a2, b2)`` gives ``(a1*a2, a2*b1 + b2)``; this
operator is associative, so prefix compositions can be computed by any
parallel scan. In log space the same pair reads
``(A1 + A2, logaddexp(A2 + B1, B2))`` with identity ``(0, -inf)``; in linear
space the identity is ``(1, 0)``. The initial state is folded into the first
element: ``B_0 <- op(h0 through step 0)``. After an inclusive scan the ``B``
part of prefix ``t`` is ``h_t``.

- ``sequential``: one step per time index, vectorized over all channels.
- ``hillis_steele``: ``log2 T`` rounds; in round ``d`` every element combines
  with the one ``d`` to its left (double-buffered, O(T log T) work).
- ``blelloch``: pad to a power of two, an up-sweep builds subtree totals in
  place, a down-sweep turns them into exclusive prefixes (O(T) work), and one
  last combine with each element makes the scan inclusive.

The backward passes are composed from the forward ones (DESIGN section 3):
they compute the weights elementwise and run a reverse linear scan with the
chosen method. Arrays are ``(outer, T, inner)`` views; time is axis 1.
"""

from __future__ import annotations

import numpy as np

from logscan.backends._host import as_array  # noqa: F401  (backend interface)

methods = ("sequential", "hillis_steele", "blelloch")


class _LogSpace:
    identity = (0.0, -np.inf)

    @staticmethod
    def combine(A1, B1, A2, B2, outA, outB):
        """(A1, B1) then (A2, B2) -> (A1 + A2, logaddexp(A2 + B1, B2)); out may alias the second."""
        np.logaddexp(A2 + B1, B2, out=outB)
        np.add(A1, A2, out=outA)


class _LinearSpace:
    identity = (1.0, 0.0)

    @staticmethod
    def combine(A1, B1, A2, B2, outA, outB):
        """(a1, b1) then (a2, b2) -> (a1 * a2, a2 * b1 + b2); out may alias the second."""
        np.add(A2 * B1, B2, out=outB)
        np.multiply(A1, A2, out=outA)


def _carve(workspace, count, shape, dtype):
    """``count`` arrays of ``shape`` laid one after another in the workspace."""
    size = int(np.prod(shape))
    flat = workspace.view(dtype)[: count * size] if count else None
    return [flat[k * size:(k + 1) * size].reshape(shape) for k in range(count)]


def _fold_h0(space, A0, B0, h0, outB0):
    """Apply the initial state through step 0: B0 <- combine((-, h0), (A0, B0)).B.

    An absent state is the identity's B (h = 0), folded all the same: a NaN in
    ``A0`` must reach ``B0`` as it does in the sequential loop (NaN * 0 is NaN),
    or the tree scans, which only ever add ``A`` of later elements, drop it.
    """
    if h0 is None:
        h0 = np.full_like(B0, space.identity[1])
    space.combine(np.zeros_like(h0), h0, A0, B0, np.empty_like(h0), outB0)


# ---------------------------------------------------------------- sequential
def _sequential(space, a, b, h0, out):
    h = np.full(b[:, 0].shape, space.identity[1], dtype=out.dtype) if h0 is None else h0.astype(out.dtype)
    # The A part of each step is discarded; starting it from the identity every
    # step keeps it from accumulating garbage (and floating-point warnings).
    identity_A, scratch = np.full_like(h, space.identity[0]), np.empty_like(h)
    for t in range(a.shape[1]):
        space.combine(identity_A, h, a[:, t], b[:, t], scratch, h)
        out[:, t] = h


# ------------------------------------------------------------- Hillis-Steele
def _hillis_steele(space, a, b, h0, out, workspace):
    A, B, A_next, B_next = _carve(workspace, 4, a.shape, out.dtype)
    A[...] = a
    B[...] = b
    _fold_h0(space, A[:, 0], B[:, 0], h0, B[:, 0])
    T, d = a.shape[1], 1
    while d < T:
        # round d: element t takes in element t - d (all t >= d at once)
        A_next[:, :d], B_next[:, :d] = A[:, :d], B[:, :d]
        space.combine(A[:, :-d], B[:, :-d], A[:, d:], B[:, d:], A_next[:, d:], B_next[:, d:])
        A, B, A_next, B_next = A_next, B_next, A, B
        d *= 2
    out[...] = B


# ------------------------------------------------------------------ Blelloch
def _padded_length(T):
    return 1 << max(T - 1, 0).bit_length()


def _blelloch(space, a, b, h0, out, workspace):
    outer, T, inner = a.shape
    P = _padded_length(T)
    A, B = _carve(workspace, 2, (outer, P, inner), out.dtype)
    A[:, T:], B[:, T:] = space.identity
    A[:, :T] = a
    B[:, :T] = b
    _fold_h0(space, A[:, 0], B[:, 0], h0, B[:, 0])
    first_B = B[:, 0].copy()

    # up-sweep: node k (right child) absorbs its left sibling k - d
    d = 1
    while d < P:
        left, right = slice(d - 1, P, 2 * d), slice(2 * d - 1, P, 2 * d)
        space.combine(A[:, left], B[:, left], A[:, right], B[:, right], A[:, right], B[:, right])
        d *= 2

    # down-sweep: root gets the identity; left child <- parent, right <- parent then left total
    A[:, P - 1], B[:, P - 1] = space.identity
    d = P // 2
    while d >= 1:
        left, right = slice(d - 1, P, 2 * d), slice(2 * d - 1, P, 2 * d)
        left_A, left_B = A[:, left].copy(), B[:, left].copy()
        A[:, left], B[:, left] = A[:, right], B[:, right]
        space.combine(A[:, right], B[:, right], left_A, left_B, A[:, right], B[:, right])
        d //= 2

    # exclusive -> inclusive: h_t = (prefix before t) then element t
    out_A = A[:, :T]  # reused as scratch
    space.combine(A[:, :T], B[:, :T], a, b, out_A, out)
    out[:, 0] = first_B


_ALGORITHMS = {"sequential": _sequential, "hillis_steele": _hillis_steele, "blelloch": _blelloch}


def _scan(space, a, b, h0, out, method, workspace):
    if method == "sequential":
        _sequential(space, a, b, h0, out)
    else:
        _ALGORITHMS[method](space, a, b, h0, out, workspace)


# ------------------------------------------------------------ backend interface
def choose_method(op, dtype, outer, T, inner):
    # One NumPy call per time step costs ~µs; the tree methods pay O(log T)
    # full passes instead, which wins only when there are few channels.
    return "hillis_steele" if outer * inner <= 16 and T >= 512 else "sequential"


def workspace_size(op, dtype, outer, T, inner, method):
    itemsize = np.dtype(dtype).itemsize
    if method == "hillis_steele":
        return 4 * outer * T * inner * itemsize
    if method == "blelloch":
        return 2 * outer * _padded_length(T) * inner * itemsize
    return 0


def log_scan(log_a, log_b, log_h0, out, method, workspace):
    _scan(_LogSpace, log_a, log_b, log_h0, out, method, workspace)


def linear_scan(a, b, h0, out, method, workspace):
    _scan(_LinearSpace, a, b, h0, out, method, workspace)


def _previous(h, h0, fill):
    """h shifted one step later in time: h_prev[t] = h[t-1], h_prev[0] = h0 (or fill)."""
    prev = np.empty_like(h)
    prev[:, 1:] = h[:, :-1]
    prev[:, 0] = fill if h0 is None else h0
    return prev


def _reverse_accumulate(weight, grad, method, workspace):
    """u_t = grad_t + weight_{t+1} u_{t+1}, as a linear scan over reversed views."""
    next_weight = np.zeros_like(weight)
    next_weight[:, :-1] = weight[:, 1:]
    u = np.empty_like(grad)
    linear_scan(next_weight[:, ::-1], grad[:, ::-1], None, u[:, ::-1], method, workspace)
    return u


def _share(log_num, log_h):
    """exp(log_num - log_h), 0 where log_h = -inf (h_t = 0 carries no gradient)."""
    with np.errstate(invalid="ignore"):
        share = np.exp(log_num - log_h)
    share[np.isneginf(log_h)] = 0
    return share


def log_scan_backward(grad_log_h, log_a, log_b, log_h, log_h0, grad_log_a, grad_log_b, grad_log_h0,
                      method, workspace):
    # log h_{t-1} - log h_t first: the two are close where the past dominates, so the
    # difference is exact, and w keeps full precision however large |log h| grows.
    with np.errstate(invalid="ignore"):
        w = np.exp(log_a + (_previous(log_h, log_h0, -np.inf) - log_h))
    w[np.isneginf(log_h)] = 0  # h_t = 0 carries no gradient (and -inf - -inf is NaN)
    v = _share(log_b, log_h)
    u = _reverse_accumulate(w, grad_log_h, method, workspace)
    np.multiply(u, w, out=grad_log_a)
    np.multiply(u, v, out=grad_log_b)
    if grad_log_h0 is not None:
        np.multiply(u[:, 0], w[:, 0], out=grad_log_h0)


def linear_scan_backward(grad_h, a, b, h, h0, grad_a, grad_b, grad_h0, method, workspace):
    d = _reverse_accumulate(a, grad_h, method, workspace)
    np.multiply(d, _previous(h, h0, 0), out=grad_a)
    grad_b[...] = d
    if grad_h0 is not None:
        np.multiply(a[:, 0], d[:, 0], out=grad_h0)
