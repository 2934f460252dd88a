"""All-pairs critic matrix of the one-hidden-layer MLP critic, without the b x b x h layer.

The critic is ``T(x, y) = w2 . relu(W [x; y] + b1) + b2`` (thesis section 4.2.2, the CLUB
repository's MINE/InfoNCE networks). The first layer splits, ``W [x; y] + b1 =
(W_x x + b1) + W_y y``, so with ``a = x W_x^T + b1`` (b, h) and ``c = y W_y^T`` (b, h) the
logits of all pairs are

    z[i, j] = T(x_j, y_i) = b2 + sum_k w2[k] relu(a[j, k] + c[i, k])      (row i = context y_i)

Three forms compute the same (b, b) matrix z:

* ``tiled`` -- the thesis's/CLUB's form: a (b, b, dx + dy) tile of [x_j; y_i] through the
  network: O(b^2 (dx + dy + h)) memory.
* ``broadcast`` -- (1, b, h) + (chunk, 1, h) broadcasting in torch, row chunks recomputed in
  the backward pass (torch.utils.checkpoint) when ``chunk < b``: memory O(chunk b h).
* ``fused`` -- :class:`PairLogits` and :class:`InfoNCERows`, torch.autograd.Functions whose
  forward and backward are numba kernels streaming over (i, j, k): memory O(b h + b^2) (the
  b x b logits or softmax and their gradient only). Every reduction is written by one thread
  in a fixed order, so results are bit-identical from run to run whatever the number of
  threads.

Cost of the fused InfoNCE step (issue 15; b = 3334, h = 30 padded to 32, one core of this
2-core machine, float32): the forward pass is one max and one fused multiply-add per
(i, j, k) term (relu(a + c) = max(a, -c) + c), four rows i per pass; the backward pass one
compare, one select and two adds per term, four rows and two k per pass, and no
exponential (the forward pass keeps the softmax); the weight gradient of the last layer is
an O(b h) sum afterwards. Measured: forward 21 ms (15 of them the logits), backward 24 ms,
the step with autograd and Adam 51-54 ms, against 131 ms for the earlier kernels
(forward 60, backward 63). ``benchmarks/neural.py --profile`` prints the split.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch
from numba import njit, prange
from scipy.special import expit

__all__ = [
    "N_BLOCKS",
    "InfoNCERows",
    "PairLogits",
    "broadcast_logits",
    "fused_infonce_rows",
    "fused_logits",
    "tiled_logits",
]

# The backward pass splits the rows i into this many fixed blocks (independent of the thread
# count, so the summation order, hence the result, never depends on it); each block keeps its
# own partial dA, summed in block order at the end. Memory: N_BLOCKS * b * h values.
N_BLOCKS = 16
_LANES = 16  # pad h to a multiple of this so the inner loops are whole SIMD vectors
# Below this many (i, j, k) terms a kernel runs on one thread: starting and joining the
# thread pool costs more than it saves, and on a loaded machine far more (a 250-row batch
# took 10x longer on 2 threads than on 1 with other jobs running). Results do not depend on
# the thread count (fixed blocks, fixed summation order).
_PARALLEL_MIN_WORK = 5e7
# Floating-point licences of the kernels. "contract": a * b + c may become one fused
# multiply-add (one rounding instead of two). "reassoc": a sum may be split into SIMD
# lanes. Both fix the order of every operation at compile time, so the same machine gives
# the same bits from run to run and for any thread count; neither changes NaN or infinity
# handling, so a diverged critic still shows up as a non-finite bound.
_ROW_MATH = {"contract"}
_SUM_MATH = {"reassoc", "contract"}


class _threads:
    """Context: numba runs the kernels on one thread when the work is small."""

    def __init__(self, work: float):
        self.serial = work < _PARALLEL_MIN_WORK

    def __enter__(self):
        if self.serial:
            self.before = numba.get_num_threads()
            numba.set_num_threads(1)

    def __exit__(self, *exc):
        if self.serial:
            numba.set_num_threads(self.before)


# --------------------------------------------------------------------------- forward
# relu(a + c) = max(a, -c) + c exactly in IEEE arithmetic (if a > -c both sides are the one
# rounding of a + c; otherwise both are 0), so with nc = -c
#     z_ij = b2 + sum_k w2[k] relu(a_jk + c_ik) = base_i + sum_k w2[k] max(a_jk, nc_ik),
#     base_i = b2 + sum_k w2[k] c_ik.
# The term is then one max and one fused multiply-add instead of add, max, multiply, add.
@njit(cache=True, fastmath=_ROW_MATH)
def _logit_row(aT, nci, w2, base, row):  # pragma: no cover - compiled
    """row[j] = base + sum_k w2[k] max(aT[k, j], nci[k]) for aT (h, b), h a multiple of 4,
    summed in k order. The inner loop runs over j (contiguous, no reduction): it vectorises
    without reassociating any sum; four k per pass quarter the loads and stores of row."""
    h, b = aT.shape
    for j in range(b):
        row[j] = base
    for k in range(0, h, 4):
        a0, a1, a2, a3 = aT[k], aT[k + 1], aT[k + 2], aT[k + 3]
        n0, n1, n2, n3 = nci[k], nci[k + 1], nci[k + 2], nci[k + 3]
        w0, w1, w2k, w3 = w2[k], w2[k + 1], w2[k + 2], w2[k + 3]
        for j in range(b):
            row[j] = _four_terms(row[j], a0[j], a1[j], a2[j], a3[j], n0, n1, n2, n3, w0, w1, w2k, w3)


@njit(cache=True, inline="always")
def _four_terms(t, v0, v1, v2, v3, n0, n1, n2, n3, w0, w1, w2, w3):  # pragma: no cover
    """t + w0 max(v0, n0) + ... + w3 max(v3, n3), added in that order (inlined: the caller's
    floating-point licence applies)."""
    t = t + w0 * max(v0, n0)
    t = t + w1 * max(v1, n1)
    t = t + w2 * max(v2, n2)
    return t + w3 * max(v3, n3)


@njit(cache=True, fastmath=_ROW_MATH)
def _logit_rows4(aT, nc, i0, w2, base, out):  # pragma: no cover - compiled
    """_logit_row for the four rows i0 .. i0 + 3 of out at once: each aT[k, j] is loaded once
    for four rows, and the four k-order chains of fused multiply-adds overlap (14.6 ms for
    b = 3334, h = 32 on one core here, against 24 ms row by row). Same operations in the
    same order per entry as _logit_row, so the same bits."""
    h, b = aT.shape
    r0, r1, r2, r3 = out[i0], out[i0 + 1], out[i0 + 2], out[i0 + 3]
    m0, m1, m2, m3 = nc[i0], nc[i0 + 1], nc[i0 + 2], nc[i0 + 3]
    for j in range(b):
        r0[j] = base[i0]
        r1[j] = base[i0 + 1]
        r2[j] = base[i0 + 2]
        r3[j] = base[i0 + 3]
    for k in range(0, h, 4):
        a0, a1, a2, a3 = aT[k], aT[k + 1], aT[k + 2], aT[k + 3]
        w0, w1, w2k, w3 = w2[k], w2[k + 1], w2[k + 2], w2[k + 3]
        x00, x01, x02, x03 = m0[k], m0[k + 1], m0[k + 2], m0[k + 3]
        x10, x11, x12, x13 = m1[k], m1[k + 1], m1[k + 2], m1[k + 3]
        x20, x21, x22, x23 = m2[k], m2[k + 1], m2[k + 2], m2[k + 3]
        x30, x31, x32, x33 = m3[k], m3[k + 1], m3[k + 2], m3[k + 3]
        for j in range(b):
            v0, v1, v2, v3 = a0[j], a1[j], a2[j], a3[j]
            r0[j] = _four_terms(r0[j], v0, v1, v2, v3, x00, x01, x02, x03, w0, w1, w2k, w3)
            r1[j] = _four_terms(r1[j], v0, v1, v2, v3, x10, x11, x12, x13, w0, w1, w2k, w3)
            r2[j] = _four_terms(r2[j], v0, v1, v2, v3, x20, x21, x22, x23, w0, w1, w2k, w3)
            r3[j] = _four_terms(r3[j], v0, v1, v2, v3, x30, x31, x32, x33, w0, w1, w2k, w3)


@njit(cache=True)
def _logit_block(aT, nc, lo, hi, w2, base, out):  # pragma: no cover - compiled
    """Rows lo .. hi - 1 (at most four) of the logits, into out[lo:hi]."""
    if hi - lo == 4:
        _logit_rows4(aT, nc, lo, w2, base, out)
    else:
        for i in range(lo, hi):
            _logit_row(aT, nc[i], w2, base[i], out[i])


@njit(cache=True)
def _row_max(row):  # pragma: no cover - compiled
    """max(0, max_j row[j]). Sixteen running maxima, so the compares vectorise (a maximum is
    exact in any order)."""
    n = row.shape[0]
    zero = row[0] - row[0]
    part = np.full(16, zero, dtype=row.dtype)
    body = n - n % 16
    for j0 in range(0, body, 16):
        for lane in range(16):
            v = row[j0 + lane]
            part[lane] = v if v > part[lane] else part[lane]
    top = zero
    for lane in range(16):
        top = part[lane] if part[lane] > top else top
    for j in range(body, n):
        top = row[j] if row[j] > top else top
    return top


@njit(cache=True, fastmath=_SUM_MATH)
def _row_sum(row):  # pragma: no cover - compiled
    """sum_j row[j] in float64, vectorised (lane order fixed at compile time)."""
    s = 0.0
    for j in range(row.shape[0]):
        s += row[j]
    return s


@njit(cache=True, fastmath=_ROW_MATH)
def _exp_shifted(src, shift, out, scratch):  # pragma: no cover - compiled
    """out[j] = exp(src[j] - shift) (float32: for src[j] - shift <= 88); out must not be src.

    float32: a vectorisable exponential (numba has no SVML here, and libm's expf is a scalar
    call). Cody-Waite reduction x = n ln2 + r with |r| <= ln2/2, n rounded to the nearest
    integer by adding and subtracting 1.5 * 2^23, a degree-7 Taylor polynomial (truncation
    error 6e-9) in fused multiply-adds, and 2^n assembled in the exponent bits of
    ``scratch`` (an int32 view). Within 3e-7 relative of libm's expf. Arguments below -87
    give e^-87 (1.6e-38) instead of a denormal or 0, which no sum here can tell apart;
    arguments above 88 give e^88 (1.7e38), which the caller's range check catches.
    float64: math.exp."""
    n = src.shape[0]
    if out.itemsize == 4:
        bits = scratch.view(np.int32)
        sh = np.float32(shift)
        lowest = np.float32(-87.0)
        highest = np.float32(88.0)  # e^88 = 1.7e38 < float32's 3.4e38: 2^n stays a normal number
        log2e = np.float32(1.4426950408889634)
        magic = np.float32(12582912.0)  # 1.5 * 2^23: x + magic - magic rounds x to an integer
        ln2_hi = np.float32(0.693359375)  # exact in 9 bits: n * ln2_hi is exact
        ln2_lo = np.float32(-2.12194440e-4)
        one = np.float32(1.0)
        c2 = np.float32(1.0 / 2)
        c3 = np.float32(1.0 / 6)
        c4 = np.float32(1.0 / 24)
        c5 = np.float32(1.0 / 120)
        c6 = np.float32(1.0 / 720)
        c7 = np.float32(1.0 / 5040)
        for j in range(n):
            x = min(max(lowest, src[j] - sh), highest)
            k = (x * log2e + magic) - magic
            r = (x - k * ln2_hi) - k * ln2_lo
            out[j] = one + r * (one + r * (c2 + r * (c3 + r * (c4 + r * (c5 + r * (c6 + r * c7))))))
            bits[j] = (np.int32(k) + np.int32(127)) << 23
        for j in range(n):
            out[j] *= scratch[j]
    else:
        for j in range(n):
            out[j] = math.exp(src[j] - shift)


@njit(parallel=True, cache=True)
def _logits_kernel(aT, nc, w2, base, out):  # pragma: no cover - compiled
    """out[i, j] = base[i] + sum_k w2[k] max(aT[k, j], nc[i, k]); aT (h, b), nc (bc, h)."""
    rows = nc.shape[0]
    for q in prange((rows + 3) // 4):
        _logit_block(aT, nc, 4 * q, min(rows, 4 * q + 4), w2, base, out)


@njit(parallel=True, cache=True)
def _infonce_rows_kernel(aT, nc, w2, base, terms, scale, zdiag, lse, psum, rows):  # pragma: no cover
    """For each row i (context y_i), with z_ij = T(x_j, y_i) as in _logits_kernel, the scores
    s_ij = softplus(z_ij) and, since exp(softplus(z)) = 1 + exp(z),
        lse[i]      = logsumexp_j s_ij = M_i + log(b e^-M_i + sum_j e^(z_ij - M_i)),
                      M_i = 0, or max(0, max_j z_ij) when sum_j e^z_ij would exceed 1e30
                      (no overflow in float32, whose e^z is finite up to z = 88);
        terms[i, j] = e^(z_ij - M_i) and scale[i] = e^(M_i - lse_i), so that
                      terms[i, j] scale[i] = exp(z_ij - lse_i), the softmax of the scores
                      times the softplus slope: all the backward pass needs of the pair;
        psum[i]     = sum_j exp(z_ij - lse_i);  zdiag[i] = z_ii;  rows[i] = s_ii - lse_i <= 0.
    One exponential per pair, in the forward pass only; the logits live in a (4, b) scratch."""
    b = aT.shape[1]
    n_rows = nc.shape[0]
    for q in prange((n_rows + 3) // 4):
        lo, hi = 4 * q, min(n_rows, 4 * q + 4)
        z4 = np.empty((4, b), dtype=terms.dtype)
        scratch = np.empty(b, dtype=terms.dtype)
        _logit_block(aT, nc[lo:hi], 0, hi - lo, w2, base[lo:hi], z4)
        for i in range(lo, hi):
            row = z4[i - lo]
            zi = row[i]
            zdiag[i] = zi
            # M = 0 unless some e^z_ij could lose range: then the row maximum (the pass over
            # the row that finds it is skipped otherwise, 3 ms of a 53 ms step)
            top = zi - zi
            _exp_shifted(row, top, terms[i], scratch)
            s = _row_sum(terms[i])
            if not s < 1e30:  # a logit above about 69 (or inf / NaN): shift by the maximum
                top = _row_max(row)
                _exp_shifted(row, top, terms[i], scratch)
                s = _row_sum(terms[i])
            total = b * math.exp(-float(top)) + s
            lse[i] = top + math.log(total)
            scale[i] = 1.0 / total
            psum[i] = s / total
            soft = max(zi, 0.0) + math.log1p(math.exp(-abs(zi)))
            rows[i] = min(soft - lse[i], 0.0)


# --------------------------------------------------------------------------- backward
# For the upstream gradient G_ij = dL/dz_ij and the mask M_ijk = 1[a_jk + c_ik > 0] =
# 1[a_jk > nc_ik], the gradients are dA_jk = w2_k sum_i G_ij M_ijk,
# dC_ik = w2_k sum_j G_ij M_ijk and, since relu(u) = M u with u = a_jk + c_ik,
#     dw2_k = sum_ij G_ij M_ijk (a_jk + c_ik) = sum_j a_jk dA_jk / w2_k + sum_i c_ik dC_ik / w2_k,
# an O(b h) sum after the pass over the pairs. Per (i, j, k) term the pass is then one
# compare, one select and two adds.
@njit(cache=True, fastmath=_SUM_MATH)
def _accumulate_rows4(aT, nc, i0, g0, g1, g2, g3, dAT, dC_raw):  # pragma: no cover
    """For the four rows i0 .. i0 + 3 with upstream gradient rows g0 .. g3 (b,):
    dAT[k, j] += sum_r g_r[j] M_(i0+r)jk and dC_raw[i0 + r, k] = sum_j g_r[j] M_(i0+r)jk,
    for two k per pass (h even). The inner loop runs over j: each g_r[j] is loaded once per
    two k, each aT[k, j] and dAT[k, j] once per four rows, and the eight sums over j stay in
    SIMD registers (20 ms for b = 3334, h = 32 on one core here, against 25 ms one k at a
    time and 42 ms for the earlier j-outer loop)."""
    h, b = aT.shape
    zero = aT[0, 0] - aT[0, 0]
    for k in range(0, h, 2):
        ak, al = aT[k], aT[k + 1]
        dk, dl = dAT[k], dAT[k + 1]
        n0, n1, n2, n3 = nc[i0, k], nc[i0 + 1, k], nc[i0 + 2, k], nc[i0 + 3, k]
        q0, q1, q2, q3 = nc[i0, k + 1], nc[i0 + 1, k + 1], nc[i0 + 2, k + 1], nc[i0 + 3, k + 1]
        s0 = s1 = s2 = s3 = zero
        t0 = t1 = t2 = t3 = zero
        for j in range(b):
            v, u = ak[j], al[j]
            x0, x1, x2, x3 = g0[j], g1[j], g2[j], g3[j]
            m0 = x0 if v > n0 else zero
            m1 = x1 if v > n1 else zero
            m2 = x2 if v > n2 else zero
            m3 = x3 if v > n3 else zero
            p0 = x0 if u > q0 else zero
            p1 = x1 if u > q1 else zero
            p2 = x2 if u > q2 else zero
            p3 = x3 if u > q3 else zero
            dk[j] += (m0 + m1) + (m2 + m3)
            dl[j] += (p0 + p1) + (p2 + p3)
            s0 += m0
            s1 += m1
            s2 += m2
            s3 += m3
            t0 += p0
            t1 += p1
            t2 += p2
            t3 += p3
        dC_raw[i0, k], dC_raw[i0 + 1, k], dC_raw[i0 + 2, k], dC_raw[i0 + 3, k] = s0, s1, s2, s3
        dC_raw[i0, k + 1], dC_raw[i0 + 1, k + 1] = t0, t1
        dC_raw[i0 + 2, k + 1], dC_raw[i0 + 3, k + 1] = t2, t3


@njit(cache=True, fastmath=_SUM_MATH)
def _accumulate_row(aT, nc, i, gi, dAT, dC_raw):  # pragma: no cover - compiled
    """_accumulate_rows4 for one row i."""
    h, b = aT.shape
    zero = aT[0, 0] - aT[0, 0]
    for k in range(h):
        ak = aT[k]
        dk = dAT[k]
        nk = nc[i, k]
        s = zero
        for j in range(b):
            m = gi[j] if ak[j] > nk else zero
            dk[j] += m
            s += m
        dC_raw[i, k] = s


@njit(cache=True)
def _accumulate_block(aT, nc, lo, hi, g4, dAT, dC_raw):  # pragma: no cover - compiled
    """Rows lo .. hi - 1 whose upstream gradients are in g4[: hi - lo] (at most 4 rows)."""
    if hi - lo == 4:
        _accumulate_rows4(aT, nc, lo, g4[0], g4[1], g4[2], g4[3], dAT, dC_raw)
    else:
        for r in range(hi - lo):
            _accumulate_row(aT, nc, lo + r, g4[r], dAT, dC_raw)


@njit(parallel=True, cache=True)
def _grad_kernel(aT, nc, g, n_blocks, dAT_part, dC_raw):  # pragma: no cover - compiled
    """For G = dL/dz (bc, b): dAT_part[blk, k, j] = sum_{i in blk} G_ij M_ijk and
    dC_raw[i, k] = sum_j G_ij M_ijk."""
    rows = nc.shape[0]
    size = (rows + n_blocks - 1) // n_blocks
    for blk in prange(n_blocks):
        lo, hi = blk * size, min(rows, (blk + 1) * size)
        for i0 in range(lo, hi, 4):
            i1 = min(hi, i0 + 4)
            _accumulate_block(aT, nc, i0, i1, g[i0:i1], dAT_part[blk], dC_raw)


@njit(parallel=True, cache=True)
def _infonce_grad_kernel(aT, nc, terms, scale, sig, g, n_blocks, dAT_part, dC_raw):  # pragma: no cover
    """Gradients of rows_i = s_ii - lse_i (upstream g (b,)) through the softplus and the
    logits: G_ij = dL/dz_ij = g_i (delta_ij sigmoid(z_ii) - exp(z_ij - lse_i)) with
    exp(z_ij - lse_i) = terms[i, j] scale[i] from the forward pass (the softmax of the scores times
    the softplus slope: exp(s - lse) sigmoid(z) = exp(z - lse)); then the accumulation of
    _grad_kernel, four rows at a time."""
    b = aT.shape[1]
    rows = nc.shape[0]
    size = (rows + n_blocks - 1) // n_blocks
    for blk in prange(n_blocks):
        g4 = np.empty((4, b), dtype=aT.dtype)
        lo, hi = blk * size, min(rows, (blk + 1) * size)
        for i0 in range(lo, hi, 4):
            i1 = min(hi, i0 + 4)
            for i in range(i0, i1):
                grow = g4[i - i0]
                ti = terms[i]
                neg = grow.dtype.type(-g[i] * scale[i])
                for j in range(b):
                    grow[j] = neg * ti[j]
                grow[i] += g[i] * sig[i]
            _accumulate_block(aT, nc, i0, i1, g4, dAT_part[blk], dC_raw)


@njit(cache=True)
def _sum_blocks(dAT_part):  # pragma: no cover - compiled
    """(h, b) sum over blk of dAT_part[blk], blocks added in order."""
    out = dAT_part[0].copy()
    for blk in range(1, dAT_part.shape[0]):
        out += dAT_part[blk]
    return out


def _pad(t: torch.Tensor, h_pad: int) -> np.ndarray:
    """Detached numpy copy of a (b, h) tensor, zero-padded to (b, h_pad), C-contiguous."""
    arr = t.detach().cpu().numpy()
    out = np.zeros((arr.shape[0], h_pad), dtype=arr.dtype)
    out[:, : arr.shape[1]] = arr
    return out


def _prepare(a, c, w2, b2):
    """Padded numpy inputs of the kernels: aT (hp, b) = a^T, nc (bc, hp) = -c, w2 (hp,), the
    row offsets base (bc,) = b2 + c w2 (summed in float64) and a, c padded (b, hp), (bc, hp)."""
    h = a.shape[1]
    h_pad = max(_LANES, -(-h // _LANES) * _LANES)
    a_np = _pad(a, h_pad)
    c_np = _pad(c, h_pad)
    w_np = np.zeros(h_pad, dtype=a_np.dtype)
    w_np[:h] = w2.detach().cpu().numpy()
    b2_val = float(b2.detach().cpu().numpy().reshape(-1)[0])
    base = (b2_val + c_np.astype(np.float64) @ w_np.astype(np.float64)).astype(a_np.dtype)
    return np.ascontiguousarray(a_np.T), -c_np, w_np, base, a_np, c_np


def _finish(dAT_part, dC_raw, w_np, a_np, c_np, h):
    """(dA, dC, dw2) torch tensors from the pass's partial sums: blocks added in order,
    times w2, and dw2_k = sum_j (a_jk - mu_k) dA_raw_jk + sum_i (c_ik + mu_k) dC_raw_ik.
    The split is exact for any mu_k (both sums of the raw gradients equal sum_ij G_ij
    M_ijk); mu_k = (mean_j a_jk - mean_i c_ik) / 2 centres both factors, so a large offset
    shared by a and -c does not cancel in float32."""
    dA_raw = _sum_blocks(dAT_part).T
    a64, c64 = a_np.astype(np.float64), c_np.astype(np.float64)
    mu = (a64.mean(axis=0) - c64.mean(axis=0)) / 2
    dw = ((a64 - mu) * dA_raw).sum(axis=0) + ((c64 + mu) * dC_raw).sum(axis=0)
    dA = dA_raw * w_np
    dC = dC_raw * w_np
    return tuple(
        torch.from_numpy(np.ascontiguousarray(t[..., :h]).astype(a_np.dtype, copy=False))
        for t in (dA, dC, dw)
    )


def _buffers(aT, nc):
    """Partial-sum buffers of the backward pass: dAT_part (blocks, hp, b), dC_raw (bc, hp)."""
    h_pad, b = aT.shape
    n_blocks = min(N_BLOCKS, nc.shape[0])
    dAT_part = np.zeros((n_blocks, h_pad, b), dtype=aT.dtype)
    dC_raw = np.zeros((nc.shape[0], h_pad), dtype=aT.dtype)
    return n_blocks, dAT_part, dC_raw


class PairLogits(torch.autograd.Function):
    """z[i, j] = b2 + w2 . relu(a[j] + c[i]) for all pairs, forward and backward in numba.

    Inputs: a (b, h), c (bc, h), w2 (h,), b2 (1,) -- CPU tensors of one dtype (float32 or
    float64). Output: (bc, b). Zero padding of h to a multiple of 16 adds nothing to any sum
    (max(0, -0) w2 = 0 for padded w2 entries, and the mask of 0 > 0 is 0).
    """

    @staticmethod
    def forward(ctx, a, c, w2, b2):
        aT, nc, w_np, base, _, _ = _prepare(a, c, w2, b2)
        out = np.empty((nc.shape[0], aT.shape[1]), dtype=aT.dtype)
        with _threads(out.size * aT.shape[0]):
            _logits_kernel(aT, nc, w_np, base, out)
        ctx.save_for_backward(a, c, w2, b2)
        ctx.h, ctx.b2_shape = a.shape[1], b2.shape
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx, grad):
        aT, nc, w_np, _, a_np, c_np = _prepare(*ctx.saved_tensors)
        g = np.ascontiguousarray(grad.detach().cpu().numpy(), dtype=aT.dtype)
        n_blocks, dAT_part, dC_raw = _buffers(aT, nc)
        with _threads(nc.shape[0] * aT.size):
            _grad_kernel(aT, nc, g, n_blocks, dAT_part, dC_raw)
            dA, dC, dw = _finish(dAT_part, dC_raw, w_np, a_np, c_np, ctx.h)
        return dA, dC, dw, grad.sum().reshape(ctx.b2_shape).to(grad.dtype)


class InfoNCERows(torch.autograd.Function):
    """Row terms r_i = F(x_i, y_i) - logsumexp_j F(x_j, y_i) of the InfoNCE bound, with
    F = softplus(b2 + w2 . relu(a[j] + c[i])), forward and backward in numba.

    Inputs as :class:`PairLogits` with bc = b. Output: (b,), each <= 0. Keeps the (b, b)
    shifted exponentials e^(z_ij - M_i) with a scale per row (together the softmax
    exp(z_ij - lse_i)), the diagonal logits and the softmax's row sums for the backward
    pass: nothing of size b * b * h, and no exponential in the backward pass.
    """

    @staticmethod
    def forward(ctx, a, c, w2, b2):
        aT, nc, w_np, base, a_np, c_np = _prepare(a, c, w2, b2)
        b = aT.shape[1]
        dtype = aT.dtype
        terms = np.empty((b, b), dtype=dtype)
        zdiag, lse, rows = (np.empty(b, dtype=dtype) for _ in range(3))
        scale, psum = np.empty(b, dtype=np.float64), np.empty(b, dtype=np.float64)
        with _threads(terms.size * aT.shape[0]):
            _infonce_rows_kernel(aT, nc, w_np, base, terms, scale, zdiag, lse, psum, rows)
        ctx.kernel_inputs = (aT, nc, w_np, a_np, c_np)
        ctx.terms, ctx.scale, ctx.zdiag, ctx.psum = terms, scale, zdiag, psum
        ctx.h, ctx.b2_shape = a.shape[1], b2.shape
        return torch.from_numpy(rows)

    @staticmethod
    def backward(ctx, grad):
        aT, nc, w_np, a_np, c_np = ctx.kernel_inputs
        g = np.ascontiguousarray(grad.detach().cpu().numpy(), dtype=aT.dtype)
        sig = expit(ctx.zdiag.astype(np.float64)).astype(aT.dtype)  # sigmoid(z_ii)
        n_blocks, dAT_part, dC_raw = _buffers(aT, nc)
        with _threads(nc.shape[0] * aT.size):
            _infonce_grad_kernel(
                aT, nc, ctx.terms, ctx.scale, sig, g, n_blocks, dAT_part, dC_raw
            )
            dA, dC, dw = _finish(dAT_part, dC_raw, w_np, a_np, c_np, ctx.h)
        # db2 = sum_ij G_ij = sum_i g_i (sigmoid(z_ii) - sum_j exp(z_ij - lse_i))
        db = float(np.sum(g.astype(np.float64) * (sig.astype(np.float64) - ctx.psum)))
        return dA, dC, dw, torch.tensor([db], dtype=grad.dtype).reshape(ctx.b2_shape)


def _split_first_layer(first: torch.nn.Linear, x: torch.Tensor, y: torch.Tensor):
    """a = x W_x^T + b1 (b, h) and c = y W_y^T (b, h) from the critic's first layer."""
    dx = x.shape[1]
    w = first.weight
    a = x @ w[:, :dx].T + first.bias
    c = y @ w[:, dx:].T
    return a, c


def fused_infonce_rows(net: torch.nn.Sequential, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(b,) InfoNCE row terms ``F(x_i, y_i) - logsumexp_j F(x_j, y_i)`` of the critic
    ``net`` = Linear, ReLU, Linear(h, 1), Softplus, by the numba kernels (CPU only)."""
    first, last = net[0], net[2]
    a, c = _split_first_layer(first, x, y)
    return InfoNCERows.apply(a, c, last.weight.reshape(-1), last.bias.reshape(1))


def fused_logits(net: torch.nn.Sequential, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(b, b) logits z[i, j] = T(x_j, y_i) of ``net`` = Linear, ReLU, Linear(h, 1), ... by
    the numba kernels (CPU tensors only); differentiable in the network's parameters."""
    first, last = net[0], net[2]
    a, c = _split_first_layer(first, x, y)
    return PairLogits.apply(a, c, last.weight.reshape(-1), last.bias.reshape(1))


def _chunk_logits(a, c_chunk, w2, b2):
    hidden = torch.relu(a.unsqueeze(0) + c_chunk.unsqueeze(1))  # (chunk, b, h)
    return hidden @ w2 + b2


def broadcast_logits(
    net: torch.nn.Sequential, x: torch.Tensor, y: torch.Tensor, chunk: int | None = None
) -> torch.Tensor:
    """(b, b) logits by broadcasting (1, b, h) + (chunk, 1, h) in torch (any device).

    ``chunk`` rows at a time (None: all b rows at once). With ``chunk < b`` each chunk is
    recomputed in the backward pass (activation checkpointing), so at most one
    (chunk, b, h) hidden layer is alive: memory O(chunk b h) instead of O(b^2 h).
    """
    first, last = net[0], net[2]
    a, c = _split_first_layer(first, x, y)
    w2 = last.weight.reshape(-1)
    b2 = last.bias.reshape(())
    b = c.shape[0]
    if chunk is None or chunk >= b:
        return _chunk_logits(a, c, w2, b2)
    from torch.utils.checkpoint import checkpoint

    parts = []
    for start in range(0, b, chunk):
        c_chunk = c[start : start + chunk]
        if torch.is_grad_enabled():
            parts.append(checkpoint(_chunk_logits, a, c_chunk, w2, b2, use_reentrant=False))
        else:
            parts.append(_chunk_logits(a, c_chunk, w2, b2))
    return torch.cat(parts, dim=0)


def tiled_logits(net: torch.nn.Sequential, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(b, b) logits through a (b, b, dx + dy) tile of [x_j; y_i] (the thesis's/CLUB's form;
    reference implementation, O(b^2 (dx + dy + h)) memory)."""
    b = x.shape[0]
    x_tile = x.unsqueeze(0).expand(b, b, x.shape[1])  # [i, j] -> x_j
    y_tile = y.unsqueeze(1).expand(b, b, y.shape[1])  # [i, j] -> y_i
    pairs = torch.cat([x_tile, y_tile], dim=-1)
    return net[2](net[1](net[0](pairs))).squeeze(-1)


def auto_chunk(b: int, h: int, itemsize: int, budget_bytes: float) -> int:
    """Rows per chunk so that the chunk's hidden layers (pre-activation, ReLU output and its
    gradient: 3 x chunk x b x h values) fit ``budget_bytes``; b (no chunking) if all do."""
    per_row = 3 * b * h * itemsize
    if per_row * b <= budget_bytes:
        return b
    return max(1, int(budget_bytes // per_row))


# ----------------------------------------------------------------------------- pair critics
# MINE, NWJ and SMILE score b joint pairs [x_r; y_r] and b product pairs [x_r; y_s(r)] with
# the same MLP. One training step (forward, the bound's gradient, backward and Adam) is one
# numba call on one thread: no autograd graph, no per-operation dispatch, no thread pool
# (torch's per-step overhead was about 0.6 ms of a 1.5 ms step at b = 3334). The forward
# and backward run over blocks of rows and four hidden units at a time, and the joint and
# product rows r share x_r's part of the first layer (benchmarks/neural.py --pair: 0.27 ms
# a step at b = 3334, h = 30, from 0.42-0.57 before the blocking). Sums run in a fixed order,
# so the same seed gives the same bits whatever the thread count.
KIND_DV, KIND_NWJ, KIND_SMILE = 0, 1, 2


# Sums over the rows r (the weight gradients) may be vectorised (reassociated) by LLVM;
# the order is fixed at compile time, so results are still the same from run to run.
_PAIR_MATH = {"reassoc", "contract"}


_PAIR_ROWS = 1024  # rows per block: a block's xt and pre columns stay in L1/L2


@njit(cache=True, inline="always", fastmath=_PAIR_MATH)
def _acc4(p0, p1, p2, p3, xt, m, c0, lo, hi, wt, row0, k):  # pragma: no cover
    """p_i[r] += sum_(j < m) wt[row0 + j, k + i] xt[row0 + j, c0 + lo + r] (i < 4, r < hi - lo),
    two inputs per pass over the rows (half the loads and stores of p)."""
    n = hi - lo
    for j in range(0, m - 1, 2):
        d = row0 + j
        u0, u1, u2, u3 = wt[d, k], wt[d, k + 1], wt[d, k + 2], wt[d, k + 3]
        v0, v1, v2, v3 = wt[d + 1, k], wt[d + 1, k + 1], wt[d + 1, k + 2], wt[d + 1, k + 3]
        cc = xt[d, c0 + lo : c0 + hi]
        ee = xt[d + 1, c0 + lo : c0 + hi]
        for r in range(n):
            c = cc[r]
            e = ee[r]
            p0[r] += u0 * c + v0 * e
            p1[r] += u1 * c + v1 * e
            p2[r] += u2 * c + v2 * e
            p3[r] += u3 * c + v3 * e
    if m % 2 == 1:
        d = row0 + m - 1
        u0, u1, u2, u3 = wt[d, k], wt[d, k + 1], wt[d, k + 2], wt[d, k + 3]
        cc = xt[d, c0 + lo : c0 + hi]
        for r in range(n):
            c = cc[r]
            p0[r] += u0 * c
            p1[r] += u1 * c
            p2[r] += u2 * c
            p3[r] += u3 * c


@njit(cache=True, inline="always", fastmath=_PAIR_MATH)
def _acc1(p, xt, m, c0, lo, hi, wt, row0, k):  # pragma: no cover
    """_acc4 for one hidden unit k."""
    n = hi - lo
    for j in range(m):
        w = wt[row0 + j, k]
        cc = xt[row0 + j, c0 + lo : c0 + hi]
        for r in range(n):
            p[r] += w * cc[r]


@njit(cache=True, inline="always", fastmath=_PAIR_MATH)
def _out4(tb, p0, p1, p2, p3, w0, w1, w2_, w3, n, zero):  # pragma: no cover
    """tb[r] += sum_i w_i relu(p_i[r]): four hidden units' share of the critic values."""
    for r in range(n):
        tb[r] += (w0 * max(zero, p0[r]) + w1 * max(zero, p1[r])) + (
            w2_ * max(zero, p2[r]) + w3 * max(zero, p3[r])
        )


@njit(cache=True, fastmath=_PAIR_MATH)
def _pair_forward(x, y, idx, wt, b1, w2, b2, xt, pre, t):  # pragma: no cover - compiled
    """Critic values of the b joint rows (r < b: [x_r; y_r]) and, if idx is not empty, the b
    product rows (r >= b: [x_(r-b); y_idx(r-b)]). Inputs are stored transposed, so that the
    inner loops run over rows: xt[d, r] = x[r, d] (d < dx, r < b), xt[dx + e, r] = y[r, e]
    and xt[dx + e, b + r] = y[idx[r], e]; xt[:dx, b:] is not used, because row r of both
    halves shares x_r and its part of the first layer, W_x x_r + b1, is computed once
    (a quarter of the work at dx = dy). pre[k, r] = sum_d wt[d, k] [x; y]_(d, r) + b1[k]
    (h, rows) and t[r] = b2 + sum_k w2[k] relu(pre[k, r]), computed over blocks of
    _PAIR_ROWS rows and four hidden units at a time, so that a block's inputs and
    pre-activations stay in cache. wt (dx + dy, h) is the first layer's weight transposed."""
    b, dx = x.shape
    dy = y.shape[1]
    h = b1.shape[0]
    prod = idx.shape[0] > 0
    zero = b2 - b2
    for r in range(b):
        for d in range(dx):
            xt[d, r] = x[r, d]
        for d in range(dy):
            xt[dx + d, r] = y[r, d]
        if prod:
            s = idx[r]
            for d in range(dy):
                xt[dx + d, b + r] = y[s, d]
    kq = h - h % 4
    for lo in range(0, b, _PAIR_ROWS):
        hi = min(b, lo + _PAIR_ROWS)
        n = hi - lo
        tj = t[lo:hi]
        tp = t[b + lo : b + hi]
        for r in range(n):
            tj[r] = b2
            if prod:
                tp[r] = b2
        for k in range(0, kq, 4):
            a0, a1 = pre[k, lo:hi], pre[k + 1, lo:hi]
            a2, a3 = pre[k + 2, lo:hi], pre[k + 3, lo:hi]
            b0, b1_, b2_, b3 = b1[k], b1[k + 1], b1[k + 2], b1[k + 3]
            for r in range(n):
                a0[r] = b0
                a1[r] = b1_
                a2[r] = b2_
                a3[r] = b3
            _acc4(a0, a1, a2, a3, xt, dx, 0, lo, hi, wt, 0, k)
            w0, w1, w2_, w3 = w2[k], w2[k + 1], w2[k + 2], w2[k + 3]
            if prod:
                q0, q1 = pre[k, b + lo : b + hi], pre[k + 1, b + lo : b + hi]
                q2, q3 = pre[k + 2, b + lo : b + hi], pre[k + 3, b + lo : b + hi]
                for r in range(n):
                    q0[r] = a0[r]
                    q1[r] = a1[r]
                    q2[r] = a2[r]
                    q3[r] = a3[r]
                _acc4(q0, q1, q2, q3, xt, dy, b, lo, hi, wt, dx, k)
                _out4(tp, q0, q1, q2, q3, w0, w1, w2_, w3, n, zero)
            _acc4(a0, a1, a2, a3, xt, dy, 0, lo, hi, wt, dx, k)
            _out4(tj, a0, a1, a2, a3, w0, w1, w2_, w3, n, zero)
        for k in range(kq, h):
            a = pre[k, lo:hi]
            bk = b1[k]
            for r in range(n):
                a[r] = bk
            _acc1(a, xt, dx, 0, lo, hi, wt, 0, k)
            wk = w2[k]
            if prod:
                q = pre[k, b + lo : b + hi]
                for r in range(n):
                    q[r] = a[r]
                _acc1(q, xt, dy, b, lo, hi, wt, dx, k)
                for r in range(n):
                    tp[r] += wk * max(zero, q[r])
            _acc1(a, xt, dy, 0, lo, hi, wt, dx, k)
            for r in range(n):
                tj[r] += wk * max(zero, a[r])


@njit(cache=True)
def _log_mean_exp(t, lo, hi, shift, clip):  # pragma: no cover - compiled
    """log mean_{lo <= r < hi} exp(min(max(t[r] - shift, -clip), clip)) in float64, and the
    maximum used to stabilise it."""
    top = -np.inf
    for r in range(lo, hi):
        top = max(top, min(max(float(t[r]) - shift, -clip), clip))
    s = 0.0
    for r in range(lo, hi):
        s += math.exp(min(max(float(t[r]) - shift, -clip), clip) - top)
    return top + math.log(s / (hi - lo)), top


@njit(cache=True)
def _pair_bound(kind, t, b, clip, cap):  # pragma: no cover - compiled
    """(bound, lme, top): the DV / NWJ / SMILE value in nats from t[:b] (joint) and
    t[b:2b] (product); lme = log mean exp of the product values (NWJ: of t - 1; SMILE:
    clipped) and top its stabilising maximum."""
    mean_joint = 0.0
    for r in range(b):
        mean_joint += float(t[r])
    mean_joint /= b
    if kind == 1:
        lme, top = _log_mean_exp(t, b, 2 * b, 1.0, np.inf)
        if lme > cap:
            return mean_joint - math.exp(cap) * (1.0 + math.log1p(lme - cap)), lme, top
        return mean_joint - math.exp(lme), lme, top
    if kind == 2:
        lme, top = _log_mean_exp(t, b, 2 * b, 0.0, clip)
        return mean_joint - lme, lme, top
    lme, top = _log_mean_exp(t, b, 2 * b, 0.0, np.inf)
    return mean_joint - lme, lme, top


@njit(cache=True)
def _pair_step(
    kind, x, y, idx, params, moments, step, lr, clip, cap, ema, log_ma, xt, pre, t, g, grads
):  # pragma: no cover - compiled
    """One training step of the pair critic: bound, loss, gradient and Adam (in place).

    params = (wt (d, h), b1 (h), w2 (h), b2 (1,)); moments = (m, v) per parameter, as
    torch.optim.Adam (beta1 0.9, beta2 0.999, eps 1e-8; ``step`` counts from 1). The loss
    is minus the bound, except for SMILE (minus the JS objective: Song & Ermon 2020) and
    MINE with a moving average (ema in (0, 1]; 0: none): m <- (1 - ema) m + ema mean e^T_prod
    in log space (log_ma; NaN before the first batch, which sets it), and the surrogate
    -(mean T_joint - mean e^T_prod / m) of Belghazi et al. 2018, section 3.2. Returns
    (bound, loss, log_ma) in nats."""
    wt, b1, w2, b2 = params
    b = x.shape[0]
    _pair_forward(x, y, idx, wt, b1, w2, b2[0], xt, pre, t)
    bound, lme, _ = _pair_bound(kind, t, b, clip, cap)
    # g[r] = d loss / d t[r]
    if kind == 2:  # JS objective: -mean softplus(-T_joint) - mean softplus(T_prod)
        for r in range(b):
            tj = float(t[r])
            tm = float(t[b + r])
            g[r] = -1.0 / (1.0 + math.exp(tj)) / b  # -sigmoid(-tj) / b
            g[b + r] = 1.0 / (1.0 + math.exp(-tm)) / b  # sigmoid(tm) / b
        loss = -bound
    else:
        scale = 1.0
        loss = -bound
        shift = 1.0 if kind == 1 else 0.0
        if kind == 1:  # d/dz of the (capped) exponential at z = lme
            scale = math.exp(lme) if lme <= cap else math.exp(cap) / (1.0 + lme - cap)
        elif ema > 0:
            if math.isnan(log_ma) or ema >= 1:
                log_ma = lme
            else:
                u = log_ma + math.log1p(-ema)
                w = lme + math.log(ema)
                top2 = max(u, w)
                log_ma = top2 + math.log(math.exp(u - top2) + math.exp(w - top2))
            scale = math.exp(lme - log_ma)
            mean_joint = bound + lme
            loss = -(mean_joint - scale)
        for r in range(b):
            g[r] = -1.0 / b
            # softmax weight of product row r: exp(t_r - shift - lme) / b
            g[b + r] = scale * math.exp(float(t[b + r]) - shift - lme) / b
    _pair_backward(g, params, xt, pre, grads, b, x.shape[1], True)
    _adam(params, grads, moments, step, lr)
    return bound, loss, log_ma


@njit(cache=True, inline="always", fastmath=_PAIR_MATH)
def _relu_grad(p, gb, wk, n, zero):  # pragma: no cover - compiled
    """p <- g w 1[p > 0] in place; returns (sum g relu(p), sum of the new p)."""
    s = zero
    s1 = zero
    for r in range(n):
        act = max(zero, p[r])
        s += gb[r] * act
        q = gb[r] * wk if p[r] > zero else zero
        p[r] = q
        s1 += q
    return s, s1


@njit(cache=True, inline="always")
def _add4(dwt, d, k, s0, s1, s2, s3):  # pragma: no cover - compiled
    dwt[d, k] += s0
    dwt[d, k + 1] += s1
    dwt[d, k + 2] += s2
    dwt[d, k + 3] += s3


@njit(cache=True, inline="always", fastmath=_PAIR_MATH)
def _dot4(q0, q1, q2, q3, xt, m, c0, lo, hi, dwt, row0, k, zero):  # pragma: no cover
    """dwt[row0 + j, k + i] += sum_r q_i[r] xt[row0 + j, c0 + lo + r] (i < 4, j < m)."""
    n = hi - lo
    for j in range(0, m - 1, 2):
        cc = xt[row0 + j, c0 + lo : c0 + hi]
        ee = xt[row0 + j + 1, c0 + lo : c0 + hi]
        s0 = s1 = s2 = s3 = zero
        t0 = t1 = t2 = t3 = zero
        for r in range(n):
            c = cc[r]
            e = ee[r]
            s0 += q0[r] * c
            s1 += q1[r] * c
            s2 += q2[r] * c
            s3 += q3[r] * c
            t0 += q0[r] * e
            t1 += q1[r] * e
            t2 += q2[r] * e
            t3 += q3[r] * e
        _add4(dwt, row0 + j, k, s0, s1, s2, s3)
        _add4(dwt, row0 + j + 1, k, t0, t1, t2, t3)
    if m % 2 == 1:
        j = m - 1
        cc = xt[row0 + j, c0 + lo : c0 + hi]
        s0 = s1 = s2 = s3 = zero
        for r in range(n):
            c = cc[r]
            s0 += q0[r] * c
            s1 += q1[r] * c
            s2 += q2[r] * c
            s3 += q3[r] * c
        _add4(dwt, row0 + j, k, s0, s1, s2, s3)


@njit(cache=True, inline="always", fastmath=_PAIR_MATH)
def _dot1(a, xt, m, c0, lo, hi, dwt, row0, k, zero):  # pragma: no cover
    """_dot4 for one hidden unit k."""
    n = hi - lo
    for j in range(m):
        cc = xt[row0 + j, c0 + lo : c0 + hi]
        s = zero
        for r in range(n):
            s += a[r] * cc[r]
        dwt[row0 + j, k] += s


@njit(cache=True, fastmath=_PAIR_MATH)
def _pair_backward(g, params, xt, pre, grads, b, dx, prod):  # pragma: no cover - compiled
    """Gradients of the loss from g[r] = d loss / d t[r] (float64; rows r < b joint, b <= r
    < 2b product if ``prod``) through the critic of _pair_forward (same xt and pre):
    dw2[k] = sum_r g_r relu(pre[k, r]), db2 = sum_r g_r, and with q[k, r] = g_r w2[k]
    1[pre[k, r] > 0] (overwriting pre): db1[k] = sum_r q[k, r], dwt[dx + e, k] = sum_r
    q[k, r] y-part[e, r], and for the x part, which row r of both halves shares,
    dwt[d, k] = sum_(r < b) (q[k, r] + q[k, b + r]) x[r, d]. Sums run over blocks in a
    fixed order (the same bits from run to run)."""
    wt, b1, w2, b2 = params
    dwt, db1, dw2, db2 = grads
    h = b1.shape[0]
    dy = wt.shape[0] - dx
    zero = b2[0] - b2[0]
    rows = 2 * b if prod else b
    gb2 = 0.0
    for r in range(rows):
        gb2 += g[r]
    db2[0] = gb2
    gq = np.empty(rows, dtype=pre.dtype)
    for r in range(rows):
        gq[r] = g[r]
    dwt[:] = zero
    db1[:] = zero
    dw2[:] = zero
    kq = h - h % 4
    for lo in range(0, b, _PAIR_ROWS):
        hi = min(b, lo + _PAIR_ROWS)
        n = hi - lo
        gj = gq[lo:hi]
        gp = gq[b + lo : b + hi] if prod else gj
        for k in range(0, kq, 4):
            a0, a1, a2, a3 = pre[k, lo:hi], pre[k + 1, lo:hi], pre[k + 2, lo:hi], pre[k + 3, lo:hi]
            for i, a in enumerate((a0, a1, a2, a3)):
                s, s1 = _relu_grad(a, gj, w2[k + i], n, zero)
                dw2[k + i] += s
                db1[k + i] += s1
            _dot4(a0, a1, a2, a3, xt, dy, 0, lo, hi, dwt, dx, k, zero)
            if prod:
                q0, q1 = pre[k, b + lo : b + hi], pre[k + 1, b + lo : b + hi]
                q2, q3 = pre[k + 2, b + lo : b + hi], pre[k + 3, b + lo : b + hi]
                for i, q in enumerate((q0, q1, q2, q3)):
                    s, s1 = _relu_grad(q, gp, w2[k + i], n, zero)
                    dw2[k + i] += s
                    db1[k + i] += s1
                _dot4(q0, q1, q2, q3, xt, dy, b, lo, hi, dwt, dx, k, zero)
                for r in range(n):  # x_r enters the joint and the product row r alike
                    a0[r] += q0[r]
                    a1[r] += q1[r]
                    a2[r] += q2[r]
                    a3[r] += q3[r]
            _dot4(a0, a1, a2, a3, xt, dx, 0, lo, hi, dwt, 0, k, zero)
        for k in range(kq, h):
            a = pre[k, lo:hi]
            s, s1 = _relu_grad(a, gj, w2[k], n, zero)
            dw2[k] += s
            db1[k] += s1
            _dot1(a, xt, dy, 0, lo, hi, dwt, dx, k, zero)
            if prod:
                q = pre[k, b + lo : b + hi]
                s, s1 = _relu_grad(q, gp, w2[k], n, zero)
                dw2[k] += s
                db1[k] += s1
                _dot1(q, xt, dy, b, lo, hi, dwt, dx, k, zero)
                for r in range(n):
                    a[r] += q[r]
            _dot1(a, xt, dx, 0, lo, hi, dwt, 0, k, zero)


@njit(cache=True, inline="always")
def _adam_one(p, gr, m, v, step_size, bc2_sqrt, eps):  # pragma: no cover - compiled
    flat_p = p.reshape(-1)
    flat_g = gr.reshape(-1)
    flat_m = m.reshape(-1)
    flat_v = v.reshape(-1)
    for q in range(flat_p.shape[0]):
        gq = flat_g[q]
        flat_m[q] = 0.9 * flat_m[q] + 0.1 * gq
        flat_v[q] = 0.999 * flat_v[q] + 0.001 * gq * gq
        denom = math.sqrt(flat_v[q]) / bc2_sqrt + eps
        flat_p[q] -= step_size * flat_m[q] / denom


@njit(cache=True)
def _adam(params, grads, moments, step, lr):  # pragma: no cover - compiled
    """torch.optim.Adam's update (betas 0.9, 0.999, eps 1e-8, no weight decay) in place."""
    bc1 = 1.0 - 0.9**step
    bc2_sqrt = math.sqrt(1.0 - 0.999**step)
    step_size = lr / bc1
    m, v = moments
    _adam_one(params[0], grads[0], m[0], v[0], step_size, bc2_sqrt, 1e-8)
    _adam_one(params[1], grads[1], m[1], v[1], step_size, bc2_sqrt, 1e-8)
    _adam_one(params[2], grads[2], m[2], v[2], step_size, bc2_sqrt, 1e-8)
    _adam_one(params[3], grads[3], m[3], v[3], step_size, bc2_sqrt, 1e-8)


@njit(cache=True)
def _pair_eval(kind, x, y, idx, params, clip, cap, xt, pre, t):  # pragma: no cover - compiled
    """The bound of the current critic on one batch (no update), in nats."""
    wt, b1, w2, b2 = params
    _pair_forward(x, y, idx, wt, b1, w2, b2[0], xt, pre, t)
    return _pair_bound(kind, t, x.shape[0], clip, cap)[0]
