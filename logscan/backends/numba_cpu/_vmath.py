"""Branch-free ``exp``, ``log1p`` and ``logaddexp`` that LLVM can vectorize.

Summary of algorithm
--------------------
pip's llvmlite ships no vector math library (SVML), so a loop calling
``math.exp`` or ``math.log1p`` stays scalar: one libm call per element. These
versions use only ``+ - * /``, compares turned into selects, float<->int
conversions and bit casts, all of which have AVX2/AVX-512 forms, so the
scan loops that call them vectorize (``<16 x float>`` on AVX-512).

``exp(x)``
    Cody-Waite range reduction ``x = n ln2 + r`` with ``|r| <= ln2/2``
    (``ln2`` split in a short ``hi`` part, exact when multiplied by ``n``,
    and a ``lo`` correction), a polynomial for ``exp(r)`` (in float32 a
    degree-6 minimax fit, 3.6e-9 relative; in float64 Taylor's of degree
    13: both far below half an ulp), then the
    scale ``2**n`` built from exponent bits. ``2**n`` is applied as two
    factors ``2**(n//2) * 2**(n - n//2)`` so that both stay normal numbers:
    results overflow to ``inf`` and underflow through the subnormals to 0
    exactly as the true function does. ``exp(-inf) = 0``, ``exp(inf) = inf``,
    ``exp(nan) = nan``. Reduction and polynomial use explicit fused
    multiply-adds (:func:`fma`), so every copy of a loop (vector body,
    scalar remainder) rounds alike.
``log1p(x)``
    ``u = 1 + x`` is written ``u = 2**k m`` with ``m`` in ``[sqrt(1/2),
    sqrt(2))`` by integer work on its bits; the rounding lost in ``1 + x``
    is added back as ``c = (x - (u - 1)) / u``. ``log m`` uses
    ``f = m - 1`` (exact), ``s = f / (2 + f)`` and
    ``log m = f - (f^2/2 - s (f^2/2 + R(s^2)))`` with the series
    ``R(z) = z (2/3 + 2z/5 + 2z^2/7 + ...)`` (|s| <= 0.172, so few terms).
    ``log1p(-1) = -inf``, ``log1p(x < -1) = nan``, ``log1p(inf) = inf``.
``logaddexp(x, y)``
    ``max(x, y) + softplus(-|x - y|)``, ``softplus(d) = log1p(exp(d))``, with
    one select for the cases where ``x - y`` is not a number, which take
    ``x + y``: equal infinities (``-inf`` stays ``-inf``) and a NaN operand
    (the result is NaN). An ``-inf`` operand gives ``exp(-inf) = 0`` and the
    other operand comes back exactly. In float32, the hot path of the
    scans, the softplus avoids both divisions of ``log1p``: ``e = exp(d)``
    lies in ``[0, 1]`` and ``log1p(e) = e Q(e)`` with a degree-9 polynomial
    ``Q`` (relative error 5e-9); float64 uses ``log1p64(exp64(d))``.
    It also comes in two halves, ``vlogaddexp_ratio(x, y) = exp(-|x - y|)``
    and ``vlogaddexp_from_ratio``, with the same bits as the whole, so that a
    loop can run each half as a loop of its own (``_steps``).

Each function has a float32 and a float64 implementation, each computing in
its own precision; the generic names dispatch on the argument type at
compile time (``numba.extending.overload``), so kernels are written once.
Accuracy (checked densely against longdouble NumPy in the tests): exp,
log1p and the float32 softplus within 2 ulp over their whole ranges (exp
measured at 0.99 ulp in float32, 0.82 in float64; log1p 1.25 and 1.0;
softplus 1.91).

The float32 polynomials are evaluated in second-order Horner form (terms
paired, then Horner's rule in ``r^2``) with a last plain Horner step
``1 + r p``: one operation more per polynomial, but the chain of dependent
operations gets about half as long, and that chain limits how many lanes a
core keeps in flight (AVX2, 16 vector registers: the compensated scan
step 1.50 to 1.39 ns per element in cache). The last step keeps the final
rounding that of one FMA next to 1.

Examples
--------
>>> import numpy as np
>>> from logscan.backends.numba_cpu._vmath import logaddexp_array
>>> x = np.array([0.0, -np.inf, 1.0, -np.inf], np.float32)
>>> y = np.array([0.0, 2.0, -np.inf, -np.inf], np.float32)
>>> out = np.empty_like(x)
>>> logaddexp_array(x, y, out)
>>> out.tolist()  # log 2, then -inf adds exactly nothing, and -inf + -inf stays -inf
[0.6931471824645996, 2.0, 1.0, -inf]
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

# 'contract' lets LLVM fuse a*b + c into FMA (more accurate, faster); every
# flag that assumes "no inf / no nan" is left out on purpose: -inf is data.
FASTMATH = {"contract"}
# The scalar functions must be inlined into the loops that call them (a call
# cannot be vectorized); LLVM's own cost model leaves them out of line.
_INLINE = {"forceinline": True, "fastmath": FASTMATH, "error_model": "numpy"}


# ------------------------------------------------------------ bit casts
@intrinsic
def float32_from_bits(typingctx, bits):
    """The float32 whose bit pattern is the low 32 bits of the integer ``bits``."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        low = builder.trunc(args[0], ir.IntType(32)) if bits.bitwidth > 32 else args[0]
        return builder.bitcast(low, ir.FloatType())

    return types.float32(bits), codegen


@intrinsic
def float32_bits(typingctx, x):
    """The bit pattern of the float32 ``x``, as a (sign-extended) int64."""
    if x != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.sext(builder.bitcast(args[0], ir.IntType(32)), ir.IntType(64))

    return types.int64(x), codegen


@intrinsic
def float64_from_bits(typingctx, bits):
    """The float64 whose bit pattern is the 64-bit integer ``bits``."""
    if not isinstance(bits, types.Integer) or bits.bitwidth != 64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(bits), codegen


@intrinsic
def float64_bits(typingctx, x):
    """The bit pattern of the float64 ``x``, as an int64."""
    if x != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(x), codegen


@intrinsic
def pow2_32(typingctx, n):
    """``2**n`` for a float32 ``n`` holding an integer in [-126, 127], from exponent bits in 32-bit integers.

    (numba would do the integer part in int64, which takes twice the vector
    registers and a slower float->int conversion.)
    """
    if n != types.float32:
        return None

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        bits = builder.shl(builder.add(builder.fptosi(args[0], i32), ir.Constant(i32, 127)), ir.Constant(i32, 23))
        return builder.bitcast(bits, ir.FloatType())

    return types.float32(n), codegen


@intrinsic
def pow2_64(typingctx, n):
    """``2**n`` for a float64 ``n`` holding an integer in [-1022, 1023], from exponent bits."""
    if n != types.float64:
        return None

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        bits = builder.shl(builder.add(builder.fptosi(args[0], i64), ir.Constant(i64, 1023)), ir.Constant(i64, 52))
        return builder.bitcast(bits, ir.DoubleType())

    return types.float64(n), codegen


@intrinsic
def fma(typingctx, a, b, c):
    """``a * b + c`` with one rounding (``llvm.fma``), for float32 or float64 operands of one type.

    Written out where the rounding matters (``exp``): left to ``fastmath``
    contraction, whether LLVM fuses depends on the code around the loop
    (scalar and vector versions of one loop differed), and so did results.
    """
    if not (a == b == c and a in (types.float32, types.float64)):
        return None

    def codegen(context, builder, signature, args):
        ty, suffix = (ir.FloatType(), "f32") if signature.args[0] == types.float32 else (ir.DoubleType(), "f64")
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ty, [ty, ty, ty]), f"llvm.fma.{suffix}")
        return builder.call(fn, list(args))

    return a(a, b, c), codegen


# ------------------------------------------------------------ float32
_F = np.float32
_LOG2E_32 = _F(1.4426950408889634)
_LN2_HI_32 = _F(0.693359375)            # 9 significant bits: n * hi is exact for |n| < 2**15
_LN2_LO_32 = _F(-2.1219444005469057e-4)  # ln 2 - hi
_ROUND_32 = _F(12582912.0)             # 1.5 * 2**23: (x + R) - R rounds x to an integer
# exp(r) ~ 1 + r + c2 r^2 + ... + c6 r^6 on |r| <= ln2/2: c2..c6, minimax in relative error
# (tools/fit_vmath_polynomials.py), 3.6e-9 with these float32 values
_EXP6_32 = tuple(_F(c) for c in (0.4999999403953552, 0.1666652113199234, 0.04166838899254799,
                                  0.00836874544620514, 0.001381453825160861))
_EXP_LO_32, _EXP_HI_32 = _F(-104.0), _F(89.0)   # beyond these exp is 0 / inf anyway
_SQRT_HALF_BITS_32 = 0x3F3504F3
_ONE_BITS_32 = 0x3F800000
_NAN_32 = _F(np.nan)
_NEG_INF_32 = _F(-np.inf)


@njit(fastmath=FASTMATH, error_model="numpy", forceinline=True)
def _exp_polynomial32(r):
    """``exp(r)`` for ``|r| <= ln2/2``: ``_EXP6_32`` in second-order Horner form, the last step a Horner step."""
    r2 = r * r
    p = fma(r2, fma(r, _EXP6_32[4], _EXP6_32[3]), fma(r, _EXP6_32[2], _EXP6_32[1]))
    p = fma(r2, p, fma(r, _EXP6_32[0], _F(1.0)))
    return fma(r, p, _F(1.0))


@njit(fastmath=FASTMATH, error_model="numpy", forceinline=True)
def exp32(x):
    xc = x if x > _EXP_LO_32 else _EXP_LO_32  # also maps nan to a harmless value
    xc = xc if xc < _EXP_HI_32 else _EXP_HI_32
    n_float = fma(xc, _LOG2E_32, _ROUND_32) - _ROUND_32
    r = fma(-n_float, _LN2_LO_32, fma(-n_float, _LN2_HI_32, xc))
    p = _exp_polynomial32(r)
    n_half = (n_float * _F(0.5) + _ROUND_32) - _ROUND_32
    y = (p * pow2_32(n_half)) * pow2_32(n_float - n_half)
    return y if x == x else x


@njit(fastmath=FASTMATH, error_model="numpy", forceinline=True)
def log1p32(x):
    u = _F(1.0) + x
    c = (x - (u - _F(1.0))) / u  # what 1 + x lost to rounding, relative to u
    bits = float32_bits(u) + (_ONE_BITS_32 - _SQRT_HALF_BITS_32)
    k = (bits >> 23) - 127
    m = float32_from_bits((bits & 0x007FFFFF) + _SQRT_HALF_BITS_32)
    f = m - _F(1.0)
    s = f / (_F(2.0) + f)
    z = s * s
    R = z * (_F(2.0 / 3) + z * (_F(2.0 / 5) + z * (_F(2.0 / 7) + z * _F(2.0 / 9))))
    half_f2 = _F(0.5) * f * f
    k_float = _F(k)
    y = k_float * _LN2_HI_32 + ((f - (half_f2 - s * (half_f2 + R))) + (c + k_float * _LN2_LO_32))
    # edges: u = 0 (x = -1), u < 0, u = inf (c is nan there), x nan
    y = y if u < np.inf else u
    y = y if u > _F(0.0) else (_NEG_INF_32 if u == _F(0.0) else _NAN_32)
    return y if x == x else x


# log1p(e) / e on [0, 1]: degree-9 polynomial, fitted (relative-error least
# squares on Chebyshev nodes, Lawson reweighting; tools/fit_vmath_polynomials.py)
# to 4.7e-9 relative error, 1.2e-8 with the coefficients rounded to float32.
_Q32 = tuple(_F(c) for c in (0.9999999952863413, -0.4999990240336962, 0.3332996187355274,
                             -0.24954127975318907, 0.19675909757662643, -0.15305506840490973,
                             0.10603508804474804, -0.05695808506975508, 0.019850687546801887,
                             -0.0032438526335777495))
_EXP_FLUSH_32 = _F(-87.33)  # below this exp(x) < 2**-126: flushed to 0 in the softplus


@njit(fastmath=FASTMATH, error_model="numpy", forceinline=True)
def exp_nonpositive32(d):
    """exp(d) for d <= 0, results below 2**-126 flushed to 0 (d = -inf gives exactly 0): softplus's first half.

    As :func:`exp32` (the same :func:`_exp_polynomial32`) but with one scale
    factor; what is flushed could change a sum of logs by less than 1e-37.
    """
    dc = d if d > _EXP_FLUSH_32 else _EXP_FLUSH_32
    n_float = (dc * _LOG2E_32 + _ROUND_32) - _ROUND_32
    r = (dc - n_float * _LN2_HI_32) - n_float * _LN2_LO_32
    e = _exp_polynomial32(r) * pow2_32(n_float)
    return e if d > _EXP_FLUSH_32 else _F(0.0)


@njit(fastmath=FASTMATH, error_model="numpy", forceinline=True)
def log1p_unit32(e):
    """log1p(e) for e in [0, 1] without a division: e * Q(e), a degree-9 polynomial (softplus's second half)."""
    e2 = e * e  # Q in second-order Horner form too (see the module docstring)
    q = (_Q32[7] + e * _Q32[8]) + e2 * _Q32[9]
    q = (_Q32[5] + e * _Q32[6]) + e2 * q
    q = (_Q32[3] + e * _Q32[4]) + e2 * q
    q = (_Q32[1] + e * _Q32[2]) + e2 * q
    q = _Q32[0] + e * q
    return e * q


@njit(fastmath=FASTMATH, error_model="numpy", forceinline=True)
def softplus_nonpositive32(d):
    """log1p(exp(d)) for d <= 0 (d = -inf gives exactly 0), without a division."""
    return log1p_unit32(exp_nonpositive32(d))


# ------------------------------------------------------------ float64
_LOG2E_64 = 1.4426950408889634
_LN2_HI_64 = 6.93147180369123816490e-01  # fdlibm split: n * hi is exact
_LN2_LO_64 = 1.90821492927058770002e-10
_ROUND_64 = 6755399441055744.0           # 1.5 * 2**52
_EXP_LO_64, _EXP_HI_64 = -746.0, 710.0
_SQRT_HALF_BITS_64 = 0x3FE6A09E667F3BCD
_ONE_BITS_64 = 0x3FF0000000000000
_MANTISSA_64 = 0x000FFFFFFFFFFFFF
# 1/12!, 1/11!, ..., 1/2!, 1, 1: Horner's coefficients of exp after 1/13!
_EXP_TAYLOR_64 = (1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0, 1.0 / 362880.0, 1.0 / 40320.0,
                  1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0)


@njit(fastmath=FASTMATH, error_model="numpy", forceinline=True)
def exp64(x):
    xc = x if x > _EXP_LO_64 else _EXP_LO_64
    xc = xc if xc < _EXP_HI_64 else _EXP_HI_64
    n_float = fma(xc, _LOG2E_64, _ROUND_64) - _ROUND_64
    r = fma(-n_float, _LN2_LO_64, fma(-n_float, _LN2_HI_64, xc))
    p = 1.0 / 6227020800.0
    for c in _EXP_TAYLOR_64:
        p = fma(r, p, c)
    n_half = (n_float * 0.5 + _ROUND_64) - _ROUND_64
    y = (p * pow2_64(n_half)) * pow2_64(n_float - n_half)
    return y if x == x else x


@njit(fastmath=FASTMATH, error_model="numpy", forceinline=True)
def log1p64(x):
    u = 1.0 + x
    c = (x - (u - 1.0)) / u
    bits = float64_bits(u) + (_ONE_BITS_64 - _SQRT_HALF_BITS_64)
    k = (bits >> 52) - 1023
    m = float64_from_bits((bits & _MANTISSA_64) + _SQRT_HALF_BITS_64)
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    R = 2.0 / 21
    R = 2.0 / 19 + z * R
    R = 2.0 / 17 + z * R
    R = 2.0 / 15 + z * R
    R = 2.0 / 13 + z * R
    R = 2.0 / 11 + z * R
    R = 2.0 / 9 + z * R
    R = 2.0 / 7 + z * R
    R = 2.0 / 5 + z * R
    R = 2.0 / 3 + z * R
    R = z * R
    half_f2 = 0.5 * f * f
    k_float = np.float64(k)
    y = k_float * _LN2_HI_64 + ((f - (half_f2 - s * (half_f2 + R))) + (c + k_float * _LN2_LO_64))
    y = y if u < np.inf else u
    y = y if u > 0.0 else (-np.inf if u == 0.0 else np.nan)
    return y if x == x else x


exp_nonpositive64 = exp64
log1p_unit64 = log1p64


@njit(fastmath=FASTMATH, error_model="numpy", forceinline=True)
def softplus_nonpositive64(d):
    """log1p(exp(d)) for d <= 0."""
    return log1p_unit64(exp_nonpositive64(d))


# ------------------------------------------------------------ logaddexp, whole and in two halves
def _logaddexp_family(exp_nonpositive, log1p_unit, zero):
    """logaddexp for one precision, whole and in two halves (constants typed by the caller).

    Returns ``(ratio, from_ratio, logaddexp, compensated_from_ratio,
    compensated)``. ``ratio(x, y) = exp(-|x - y|)``, the smaller term over
    the larger, is the first half (the ``exp``); ``from_ratio`` finishes from
    it (the ``log1p``). A loop over lanes that runs the halves as two loops
    keeps two short chains of dependent operations instead of one long one,
    and so more lanes in flight (see ``_steps``); the whole functions are
    the two halves in a row, with the same bits.
    """

    @njit(fastmath=FASTMATH, error_model="numpy", forceinline=True)
    def ratio(x, y):
        return exp_nonpositive(-abs(x - y))

    @njit(fastmath=FASTMATH, error_model="numpy", forceinline=True)
    def from_ratio(x, y, e):
        d = x - y
        larger = x if x > y else y
        r = larger + log1p_unit(e)
        return r if d == d else x + y  # d is nan for a nan operand (x + y: nan) and equal infinities (x + y: x)

    @njit(fastmath=FASTMATH, error_model="numpy", forceinline=True)
    def logaddexp(x, y):
        return from_ratio(x, y, ratio(x, y))

    @njit(fastmath=FASTMATH, error_model="numpy", forceinline=True)
    def compensated_from_ratio(x, y, low, e):
        d = x - y
        larger = x if x > y else y
        correction = log1p_unit(e) + (low if x > y else zero)
        high = larger + correction
        new_low = correction - (high - larger)  # Fast2Sum: what the addition lost (see below)
        # nan operand or equal infinities (d is nan; see from_ratio), or x = +inf with its nan low
        # (high is nan): x + y is then the true result
        high = high if (d == d) & (high == high) else x + y
        return high, new_low

    @njit(fastmath=FASTMATH, error_model="numpy", forceinline=True)
    def compensated(x, y, low):
        return compensated_from_ratio(x, y, low, ratio(x, y))

    return ratio, from_ratio, logaddexp, compensated_from_ratio, compensated


# The compensated logaddexp, ``(high, low)`` with ``high + low ~ logaddexp(x + low_in, y)``:
# a sequential scan adds small increments to a slowly growing state
# (log_a = 0 is logcumsumexp); rounding every sum loses up to half an ulp a
# step, 1.1e-5 relative after 65 536 float32 steps. Keeping the rounding
# error of the last addition in `low` and adding it into the next
# increment keeps the error at a few ulp. When y dominates, the old state
# (and its low part) is mostly forgotten and `low` is dropped.
#
# The error is taken by Fast2Sum, `correction - (high - larger)`, exact when
# |larger| >= |correction| (2 operations against TwoSum's 5: 0.86 -> 0.77 ns
# per element in cache with the Fast2Sum of `_steps._decayed_state`).
# Otherwise `larger` is below ~0.7 in magnitude (|correction| <= log 2 plus
# a few ulp) and the term is off by at most ~ulp(correction): in a long
# steady run the correction averages the decay |log_a| that it makes up
# for, and that error fades within ~1/|log_a| steps, so it stays at ulps.
#
# `low` is only meaningful next to a finite `high`: where `high` is +-inf or
# nan the returned `low` is nan (no select to clean it: this runs once per
# element of every scan). That nan never reaches a result: the next step's
# `x = log_a + high` is then -inf (so x > y is false and `low` is not used),
# nan (the result is nan anyway) or +inf (then `high` is nan and the result
# falls back to x + y = +inf). A finite `x` always comes with a finite `low`.
(logaddexp_ratio32, logaddexp_from_ratio32, logaddexp32, logaddexp_compensated_from_ratio32,
 logaddexp_compensated32) = _logaddexp_family(exp_nonpositive32, log1p_unit32, _F(0.0))
(logaddexp_ratio64, logaddexp_from_ratio64, logaddexp64, logaddexp_compensated_from_ratio64,
 logaddexp_compensated64) = _logaddexp_family(exp_nonpositive64, log1p_unit64, 0.0)


# ------------------------------------------------------------ generic names
def vexp(x):
    """``exp(x)`` in the precision of ``x`` (float32 or float64), vectorizable."""
    raise NotImplementedError("vexp is only callable from numba-compiled code")


def vlog1p(x):
    """``log1p(x)`` in the precision of ``x`` (float32 or float64), vectorizable."""
    raise NotImplementedError("vlog1p is only callable from numba-compiled code")


def vsoftplus_nonpositive(x):
    """``log1p(exp(x))`` for ``x <= 0`` (``-inf`` gives 0) in the precision of ``x``, vectorizable."""
    raise NotImplementedError("vsoftplus_nonpositive is only callable from numba-compiled code")


def vlogaddexp(x, y):
    """``log(exp(x) + exp(y))`` in the precision of ``x`` and ``y``, vectorizable, -inf exact."""
    raise NotImplementedError("vlogaddexp is only callable from numba-compiled code")


def vlogaddexp_ratio(x, y):
    """``exp(-|x - y|)`` (flushed to 0 below the smallest normal in float32): the first half of ``vlogaddexp``."""
    raise NotImplementedError("vlogaddexp_ratio is only callable from numba-compiled code")


def vlogaddexp_from_ratio(x, y, ratio):
    """``vlogaddexp(x, y)`` finished from ``ratio = vlogaddexp_ratio(x, y)``: the same bits."""
    raise NotImplementedError("vlogaddexp_from_ratio is only callable from numba-compiled code")


def vlogaddexp_compensated(x, y, low):
    """``(high, low)`` with ``high + low ~ logaddexp(x + low_in, y)``; see the comment on ``logaddexp_compensated32``.

    ``low`` (in and out) may be nan where ``x`` (in) or ``high`` (out) is not finite.
    """
    raise NotImplementedError("vlogaddexp_compensated is only callable from numba-compiled code")


def vlogaddexp_compensated_from_ratio(x, y, low, ratio):
    """``vlogaddexp_compensated(x, y, low)`` finished from ``ratio = vlogaddexp_ratio(x, y)``: the same bits."""
    raise NotImplementedError("vlogaddexp_compensated_from_ratio is only callable from numba-compiled code")


def _precision(*args):
    """32 or 64 when every argument is a float32 or every one a float64; else None."""
    for bits, ty in ((32, types.float32), (64, types.float64)):
        if all(arg == ty for arg in args):
            return bits
    return None


def _overload_unary(generic, single, double):
    """Give the one-argument ``generic`` its float32 (``single``) and float64 (``double``) bodies, inlined."""

    @overload(generic, jit_options=_INLINE)
    def typed(x):
        impl = {32: single, 64: double}.get(_precision(x))
        return None if impl is None else (lambda x: impl(x))

    return typed


_overload_unary(vexp, exp32, exp64)
_overload_unary(vlog1p, log1p32, log1p64)
_overload_unary(vsoftplus_nonpositive, softplus_nonpositive32, softplus_nonpositive64)


@overload(vlogaddexp, jit_options=_INLINE)
def _vlogaddexp_typed(x, y):
    impl = {32: logaddexp32, 64: logaddexp64}.get(_precision(x, y))
    return None if impl is None else (lambda x, y: impl(x, y))


@overload(vlogaddexp_ratio, jit_options=_INLINE)
def _vlogaddexp_ratio_typed(x, y):
    impl = {32: logaddexp_ratio32, 64: logaddexp_ratio64}.get(_precision(x, y))
    return None if impl is None else (lambda x, y: impl(x, y))


@overload(vlogaddexp_from_ratio, jit_options=_INLINE)
def _vlogaddexp_from_ratio_typed(x, y, ratio):
    impl = {32: logaddexp_from_ratio32, 64: logaddexp_from_ratio64}.get(_precision(x, y, ratio))
    return None if impl is None else (lambda x, y, ratio: impl(x, y, ratio))


@overload(vlogaddexp_compensated, jit_options=_INLINE)
def _vlogaddexp_compensated_typed(x, y, low):
    impl = {32: logaddexp_compensated32, 64: logaddexp_compensated64}.get(_precision(x, y, low))
    return None if impl is None else (lambda x, y, low: impl(x, y, low))


@overload(vlogaddexp_compensated_from_ratio, jit_options=_INLINE)
def _vlogaddexp_compensated_from_ratio_typed(x, y, low, ratio):
    impl = {32: logaddexp_compensated_from_ratio32, 64: logaddexp_compensated_from_ratio64}.get(
        _precision(x, y, low, ratio))
    return None if impl is None else (lambda x, y, low, ratio: impl(x, y, low, ratio))


# ------------------------------------------------------------ array entry points (tests, tools)
@njit(fastmath=FASTMATH, error_model="numpy", cache=True)
def exp_array(x, out):
    """``out[i] = exp(x[i])`` with the vectorized polynomial (1-D arrays of one dtype)."""
    for i in range(x.shape[0]):
        out[i] = vexp(x[i])


@njit(fastmath=FASTMATH, error_model="numpy", cache=True)
def log1p_array(x, out):
    """``out[i] = log1p(x[i])`` with the vectorized polynomial (1-D arrays of one dtype)."""
    for i in range(x.shape[0]):
        out[i] = vlog1p(x[i])


@njit(fastmath=FASTMATH, error_model="numpy", cache=True)
def logaddexp_array(x, y, out):
    """``out[i] = logaddexp(x[i], y[i])`` with the vectorized polynomials (1-D arrays of one dtype)."""
    for i in range(x.shape[0]):
        out[i] = vlogaddexp(x[i], y[i])


@njit(fastmath=FASTMATH, error_model="numpy", cache=True)
def softplus_nonpositive32_array(x, out):
    """``out[i] = log1p(exp(x[i]))`` for float32 ``x[i] <= 0`` (the float32 logaddexp core)."""
    for i in range(x.shape[0]):
        out[i] = softplus_nonpositive32(x[i])
