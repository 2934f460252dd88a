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
* ``fused`` -- :class:`PairLogits`, a torch.autograd.Function whose forward and backward are
  numba kernels streaming over (i, j, k): memory O(b h + b^2) (the b x b logits and their
  gradient only). Every reduction is written by one thread in a fixed order, so results are
  bit-identical from run to run whatever the number of threads.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch
from numba import njit, prange

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
_LANES = 16  # pad h to a multiple of this so the inner k loop is whole SIMD vectors
# Below this many (i, j, k) terms a kernel runs on one thread: starting and joining the
# thread pool costs more than it saves, and on a loaded machine far more (a 250-row batch
# took 10x longer on 2 threads than on 1 with other jobs running). Results do not depend on
# the thread count (fixed blocks, fixed summation order).
_PARALLEL_MIN_WORK = 5e7


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


@njit(cache=True, inline="always")
def _logit_row(aT, ci, w2, b2, row):  # pragma: no cover - compiled
    """row[j] = b2 + sum_k w2[k] relu(aT[k, j] + ci[k]), summed in k order. The inner loop
    runs over j (contiguous, no reduction), so it vectorises without reassociating sums."""
    h, b = aT.shape
    zero = b2 - b2
    for j in range(b):
        row[j] = b2
    for k in range(h):
        ck = ci[k]
        wk = w2[k]
        ak = aT[k]
        for j in range(b):
            s = ak[j] + ck
            row[j] += wk * max(zero, s)


@njit(cache=True, inline="always")
def _accumulate_row(a, ci, gi, dAb, dci, dwb):  # pragma: no cover - compiled
    """For one row i with upstream gradients gi[j] = dL/dz_ij:
    dAb[j, k] += gi[j] 1[a_jk + ci_k > 0], dci[k] += the same summed over j, and
    dwb[k] += gi[j] relu(a_jk + ci_k). The inner loop runs over k (contiguous, one
    accumulator per k): it vectorises without reassociating any sum."""
    b, h = a.shape
    zero = a[0, 0] - a[0, 0]
    for j in range(b):
        gij = gi[j]
        aj = a[j]
        daj = dAb[j]
        for k in range(h):
            s = aj[k] + ci[k]
            m = gij if s > zero else zero
            daj[k] += m
            dci[k] += m
            dwb[k] += m * s


@njit(cache=True, inline="always")
def _accumulate_rows4(a, c, i, g4, dAb, dC_raw, dwb):  # pragma: no cover - compiled
    """_accumulate_row for the four rows i .. i + 3 at once (upstream gradients g4 (4, b)):
    each a[j] and dAb[j] is loaded and stored once per four rows instead of once per row,
    which quarters the traffic that bounds the single-row loop. Sums are grouped in a fixed
    order ((r0 + r1) + (r2 + r3)), so results stay deterministic."""
    b, h = a.shape
    zero = a[0, 0] - a[0, 0]
    c0, c1, c2, c3 = c[i], c[i + 1], c[i + 2], c[i + 3]
    d0, d1, d2, d3 = dC_raw[i], dC_raw[i + 1], dC_raw[i + 2], dC_raw[i + 3]
    for j in range(b):
        g0, g1, g2, g3 = g4[0, j], g4[1, j], g4[2, j], g4[3, j]
        aj = a[j]
        daj = dAb[j]
        for k in range(h):
            ak = aj[k]
            s0 = ak + c0[k]
            s1 = ak + c1[k]
            s2 = ak + c2[k]
            s3 = ak + c3[k]
            m0 = g0 if s0 > zero else zero
            m1 = g1 if s1 > zero else zero
            m2 = g2 if s2 > zero else zero
            m3 = g3 if s3 > zero else zero
            daj[k] += (m0 + m1) + (m2 + m3)
            d0[k] += m0
            d1[k] += m1
            d2[k] += m2
            d3[k] += m3
            dwb[k] += (m0 * s0 + m1 * s1) + (m2 * s2 + m3 * s3)


@njit(cache=True, inline="always")
def _exp_shifted(src, shift, out, scratch):  # pragma: no cover - compiled
    """out[j] = exp(src[j] - shift) for src[j] - shift <= 0 (both uses: z - max and z - lse).

    float32: a vectorisable exponential (no SVML in numba here, and libm's expf is a scalar
    call that cost half the kernels' time): Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2,
    degree-7 Taylor polynomial (truncation error 6e-9), 2^n assembled in the exponent bits
    of ``scratch`` (an int32 view). Within 3e-7 relative of libm's expf; arguments below -87
    give e^-87 (1.6e-38) instead of a denormal or 0, which no sum here can tell apart.
    float64: math.exp."""
    n = src.shape[0]
    if out.itemsize == 4:
        bits = scratch.view(np.int32)
        lowest = np.float32(-87.0)
        log2e = np.float32(1.4426950408889634)
        half = np.float32(0.5)
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
            x = src[j] - shift
            x = max(lowest, x)
            k = np.floor(x * log2e + half)
            r = (x - k * ln2_hi) - k * ln2_lo
            out[j] = one + r * (one + r * (c2 + r * (c3 + r * (c4 + r * (c5 + r * (c6 + r * c7))))))
            bits[j] = (np.int32(k) + np.int32(127)) << 23
        for j in range(n):
            out[j] *= scratch[j]
    else:
        for j in range(n):
            out[j] = math.exp(src[j] - shift)


@njit(parallel=True, cache=True)
def _logits_kernel(aT, c, w2, b2, out):  # pragma: no cover - compiled
    """out[i, j] = b2 + sum_k w2[k] relu(aT[k, j] + c[i, k]); aT (h, b), c (b, h)."""
    for i in prange(c.shape[0]):
        _logit_row(aT, c[i], w2, b2, out[i])


@njit(parallel=True, cache=True)
def _grad_kernel(a, c, g, n_blocks, dA_part, dC_raw, dw_part):  # pragma: no cover
    """Accumulate, for G = dL/dz (bc, b):
    dA_part[blk, j, k] = sum_{i in blk} G[i, j] 1[a_jk + c_ik > 0]
    dC_raw[i, k]       = sum_j G[i, j] 1[a_jk + c_ik > 0]
    dw_part[blk, k]    = sum_{i in blk} sum_j G[i, j] relu(a_jk + c_ik)
    The inner loop runs over k (contiguous, one accumulator per k): it vectorises without
    reassociating any sum."""
    rows = c.shape[0]
    size = (rows + n_blocks - 1) // n_blocks
    for blk in prange(n_blocks):
        lo, hi = blk * size, min(rows, (blk + 1) * size)
        quads = lo + max(hi - lo, 0) // 4 * 4
        for i in range(lo, quads, 4):
            _accumulate_rows4(a, c, i, g[i : i + 4], dA_part[blk], dC_raw, dw_part[blk])
        for i in range(quads, hi):
            _accumulate_row(a, c[i], g[i], dA_part[blk], dC_raw[i], dw_part[blk])


@njit(parallel=True, cache=True)
def _sum_blocks(dA_part, w2, dA):  # pragma: no cover - compiled
    """dA[j, k] = w2[k] * sum_blk dA_part[blk, j, k], blocks summed in order."""
    n_blocks, b, h = dA_part.shape
    for j in prange(b):
        for k in range(h):
            dA[j, k] = dA_part[0, j, k]
        for blk in range(1, n_blocks):
            for k in range(h):
                dA[j, k] += dA_part[blk, j, k]
        for k in range(h):
            dA[j, k] *= w2[k]


@njit(parallel=True, cache=True)
def _infonce_rows_kernel(aT, c, w2, b2, logits, lse, rows):  # pragma: no cover - compiled
    """logits[i, j] = z_ij = b2 + sum_k w2[k] relu(aT[k, j] + c[i, k]); the scores are
    s_ij = softplus(z_ij) and, since exp(softplus(z)) = 1 + exp(z),
    lse[i] = logsumexp_j s_ij = log(b + sum_j exp(z_ij)) = M + log(b e^-M + sum_j e^(z_ij - M))
    with M = max(0, max_j z_ij) (no overflow); rows[i] = s_ii - lse[i].
    One exponential per pair instead of softplus's exp + log1p and logsumexp's exp."""
    b = aT.shape[1]
    for i in prange(c.shape[0]):
        row = logits[i]
        _logit_row(aT, c[i], w2, b2, row)
        top = row[0] - row[0]  # M = max(0, max_j z_ij), in the dtype
        for j in range(b):
            top = max(top, row[j])
        terms = np.empty(b, dtype=row.dtype)
        scratch = np.empty(b, dtype=row.dtype)
        _exp_shifted(row, top, terms, scratch)
        # four running sums (fixed order: deterministic), so the adds overlap
        s0 = s1 = s2 = s3 = 0.0
        quads = b - b % 4
        for j in range(0, quads, 4):
            s0 += terms[j]
            s1 += terms[j + 1]
            s2 += terms[j + 2]
            s3 += terms[j + 3]
        for j in range(quads, b):
            s0 += terms[j]
        total = b * math.exp(-float(top)) + ((s0 + s1) + (s2 + s3))
        lse[i] = top + math.log(total)
        zi = row[i]
        soft = max(zi, 0.0) + math.log1p(math.exp(-abs(zi)))
        rows[i] = min(soft - lse[i], 0.0)


@njit(parallel=True, cache=True)
def _infonce_grad_kernel(
    a, c, logits, lse, g, n_blocks, dA_part, dC_raw, dw_part, db_part
):  # pragma: no cover
    """Gradients of rows_i = s_ii - lse_i (upstream g (b,)) through the softplus and the
    logits: dL/dz_ij = g_i (delta_ij sigmoid(z_ii) - exp(z_ij - lse_i)) (softmax of the scores
    times the softplus slope: exp(s - lse) sigmoid(z) = exp(z - lse)); then the accumulation
    of _grad_kernel, and db_part[blk] = sum over the block's rows of dL/dz."""
    b = a.shape[0]
    rows = c.shape[0]
    size = (rows + n_blocks - 1) // n_blocks
    for blk in prange(n_blocks):
        dAb = dA_part[blk]
        dwb = dw_part[blk]
        g4 = np.empty((4, b), dtype=a.dtype)
        scratch = np.empty(b, dtype=a.dtype)
        dbsum = 0.0
        lo, hi = blk * size, min(rows, (blk + 1) * size)
        quads = lo + max(hi - lo, 0) // 4 * 4
        for i0 in range(lo, hi, 4):
            for r in range(min(4, hi - i0)):
                i = i0 + r
                grow = g4[r]
                zi = logits[i]
                gi = g[i]
                _exp_shifted(zi, lse[i], grow, scratch)
                for j in range(b):
                    grow[j] *= -gi
                zii = zi[i]
                if zii >= 0:
                    sig = 1.0 / (1.0 + math.exp(-zii))
                else:
                    e = math.exp(zii)
                    sig = e / (1.0 + e)
                grow[i] += gi * sig
                for j in range(b):
                    dbsum += grow[j]
            if i0 < quads:
                _accumulate_rows4(a, c, i0, g4, dAb, dC_raw, dwb)
            else:
                for r in range(hi - i0):
                    _accumulate_row(a, c[i0 + r], g4[r], dAb, dC_raw[i0 + r], dwb)
        db_part[blk] = dbsum


def _pad(t: torch.Tensor, h_pad: int) -> np.ndarray:
    """Detached numpy copy of a (b, h) tensor, zero-padded to (b, h_pad), C-contiguous."""
    arr = t.detach().cpu().numpy()
    if arr.shape[1] == h_pad:
        return np.ascontiguousarray(arr)
    out = np.zeros((arr.shape[0], h_pad), dtype=arr.dtype)
    out[:, : arr.shape[1]] = arr
    return out


def _prepare(a, c, w2, b2):
    """Padded numpy copies (a (b, hp), c (bc, hp), w2 (hp,)), b2 as a dtype scalar."""
    h = a.shape[1]
    h_pad = max(_LANES, -(-h // _LANES) * _LANES)
    a_np = _pad(a, h_pad)
    c_np = _pad(c, h_pad)
    w_np = np.zeros(h_pad, dtype=a_np.dtype)
    w_np[:h] = w2.detach().cpu().numpy()
    b2_val = a_np.dtype.type(b2.detach().cpu().numpy().reshape(-1)[0])
    return a_np, c_np, w_np, b2_val


def _buffers(a_np, c_np):
    b, h_pad = a_np.shape
    n_blocks = min(N_BLOCKS, c_np.shape[0])
    dA_part = np.zeros((n_blocks, b, h_pad), dtype=a_np.dtype)
    dC_raw = np.zeros((c_np.shape[0], h_pad), dtype=a_np.dtype)
    dw_part = np.zeros((n_blocks, h_pad), dtype=a_np.dtype)
    return n_blocks, dA_part, dC_raw, dw_part


def _save(ctx, a, c, w2, b2):
    ctx.save_for_backward(a, c, w2, b2)
    ctx.h, ctx.b2_shape = a.shape[1], b2.shape


def _backward_inputs(ctx, grad):
    """Padded inputs, the upstream gradient as a numpy array and the partial-sum buffers."""
    a_np, c_np, w_np, _ = _prepare(*ctx.saved_tensors)
    g = np.ascontiguousarray(grad.detach().cpu().numpy(), dtype=a_np.dtype)
    return a_np, c_np, w_np, g, _buffers(a_np, c_np)


def _finish(dA_part, dC_raw, dw_part, w_np, h):
    """(dA, dC, dw2) torch tensors: partial sums added in block order, times w2, unpadded."""
    dA = np.empty(dA_part.shape[1:], dtype=dA_part.dtype)
    _sum_blocks(dA_part, w_np, dA)
    dC = dC_raw * w_np
    dw = dw_part[0].copy()
    for blk in range(1, dw_part.shape[0]):
        dw += dw_part[blk]
    return tuple(torch.from_numpy(np.ascontiguousarray(t[..., :h])) for t in (dA, dC, dw))


class PairLogits(torch.autograd.Function):
    """z[i, j] = b2 + w2 . relu(a[j] + c[i]) for all pairs, forward and backward in numba.

    Inputs: a (b, h), c (bc, h), w2 (h,), b2 (1,) -- CPU tensors of one dtype (float32 or
    float64). Output: (bc, b). Zero padding of h to a multiple of 16 adds nothing to any sum
    (relu(0) = 0, the indicator of 0 > 0 is 0 and padded w2 entries are 0).
    """

    @staticmethod
    def forward(ctx, a, c, w2, b2):
        a_np, c_np, w_np, b2_val = _prepare(a, c, w2, b2)
        out = np.empty((c_np.shape[0], a_np.shape[0]), dtype=a_np.dtype)
        with _threads(out.size * a_np.shape[1]):
            _logits_kernel(np.ascontiguousarray(a_np.T), c_np, w_np, b2_val, out)
        _save(ctx, a, c, w2, b2)
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx, grad):
        a_np, c_np, w_np, g, parts = _backward_inputs(ctx, grad)
        with _threads(c_np.shape[0] * a_np.size):
            _grad_kernel(a_np, c_np, g, *parts)
            dA, dC, dw = _finish(*parts[1:], w_np, ctx.h)
        return dA, dC, dw, grad.sum().reshape(ctx.b2_shape).to(grad.dtype)


class InfoNCERows(torch.autograd.Function):
    """Row terms r_i = F(x_i, y_i) - logsumexp_j F(x_j, y_i) of the InfoNCE bound, with
    F = softplus(b2 + w2 . relu(a[j] + c[i])), forward and backward in numba.

    Inputs as :class:`PairLogits` with bc = b. Output: (b,), each <= 0. Keeps the (b, b)
    logits and the (b,) log-sum-exps for the backward pass; nothing of size b * b * h.
    """

    @staticmethod
    def forward(ctx, a, c, w2, b2):
        a_np, c_np, w_np, b2_val = _prepare(a, c, w2, b2)
        b = a_np.shape[0]
        logits = np.empty((b, b), dtype=a_np.dtype)
        lse = np.empty(b, dtype=a_np.dtype)
        rows = np.empty(b, dtype=a_np.dtype)
        with _threads(logits.size * a_np.shape[1]):
            _infonce_rows_kernel(
                np.ascontiguousarray(a_np.T), c_np, w_np, b2_val, logits, lse, rows
            )
        _save(ctx, a, c, w2, b2)
        ctx.logits, ctx.lse = logits, lse
        return torch.from_numpy(rows)

    @staticmethod
    def backward(ctx, grad):
        a_np, c_np, w_np, g, parts = _backward_inputs(ctx, grad)
        db_part = np.zeros(parts[0], dtype=np.float64)
        with _threads(c_np.shape[0] * a_np.size):
            _infonce_grad_kernel(a_np, c_np, ctx.logits, ctx.lse, g, *parts, db_part)
            dA, dC, dw = _finish(*parts[1:], w_np, ctx.h)
        db = torch.tensor([float(np.sum(db_part))], dtype=grad.dtype).reshape(ctx.b2_shape)
        return dA, dC, dw, db


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
# (torch's per-step overhead was about 0.6 ms of a 1.5 ms step at b = 3334). Sums run in a
# fixed order, so the same seed gives the same bits whatever the thread count.
KIND_DV, KIND_NWJ, KIND_SMILE = 0, 1, 2


# Sums over the rows r (the weight gradients) may be vectorised (reassociated) by LLVM;
# the order is fixed at compile time, so results are still the same from run to run.
_PAIR_MATH = {"reassoc", "contract"}


@njit(cache=True, fastmath=_PAIR_MATH)
def _pair_forward(x, y, idx, wt, b1, w2, b2, xt, pre, t):  # pragma: no cover - compiled
    """Critic values of the b joint rows (r < b: [x_r; y_r]) and, if idx is not empty, the b
    product rows (r >= b: [x_(r-b); y_idx(r-b)]), transposed so that every inner loop runs
    over the rows: xt[:, r] = the input of row r (d, rows), pre[k, r] = sum_d wt[d, k]
    xt[d, r] + b1[k] (h, rows), t[r] = b2 + sum_k w2[k] relu(pre[k, r]). wt (dx + dy, h) is
    the first layer's weight transposed. Only the first ``rows`` columns are used."""
    b, dx = x.shape
    dy = y.shape[1]
    h = b1.shape[0]
    rows = b if idx.shape[0] == 0 else 2 * b
    zero = b2 - b2
    for d in range(dx):
        col = xt[d]
        for r in range(b):
            col[r] = x[r, d]
        if rows > b:
            for r in range(b):
                col[b + r] = x[r, d]
    for d in range(dy):
        col = xt[dx + d]
        for r in range(b):
            col[r] = y[r, d]
        if rows > b:
            for r in range(b):
                col[b + r] = y[idx[r], d]
    for r in range(rows):
        t[r] = b2
    for k in range(h):
        p = pre[k]
        bk = b1[k]
        for r in range(rows):
            p[r] = bk
        n_in = dx + dy
        quads = n_in - n_in % 4
        for d in range(0, quads, 4):  # four inputs per pass over the row: a quarter of
            w0, w1, w2_, w3 = wt[d, k], wt[d + 1, k], wt[d + 2, k], wt[d + 3, k]
            c0, c1, c2, c3 = xt[d], xt[d + 1], xt[d + 2], xt[d + 3]  # the loads/stores
            for r in range(rows):
                p[r] += (w0 * c0[r] + w1 * c1[r]) + (w2_ * c2[r] + w3 * c3[r])
        for d in range(quads, n_in):
            wdk = wt[d, k]
            col = xt[d]
            for r in range(rows):
                p[r] += wdk * col[r]
        wk = w2[k]
        for r in range(rows):
            t[r] += wk * max(zero, p[r])


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
    _pair_backward(g, params, xt, pre, grads, 2 * b)
    _adam(params, grads, moments, step, lr)
    return bound, loss, log_ma


@njit(cache=True, fastmath=_PAIR_MATH)
def _pair_backward(g, params, xt, pre, grads, rows):  # pragma: no cover - compiled
    """Gradients of the loss from g[r] = d loss / d t[r] (float64) through the critic:
    dw2[k] = sum_r g_r relu(pre[k, r]), db2 = sum_r g_r, and with
    q[k, r] = g_r w2[k] 1[pre[k, r] > 0] (overwriting pre): db1[k] = sum_r q[k, r],
    dwt[d, k] = sum_r q[k, r] xt[d, r]."""
    wt, b1, w2, b2 = params
    dwt, db1, dw2, db2 = grads
    h = b1.shape[0]
    n_in = wt.shape[0]
    zero = b2[0] - b2[0]
    gb2 = 0.0
    for r in range(rows):
        gb2 += g[r]
    db2[0] = gb2
    gq = np.empty(rows, dtype=pre.dtype)
    for r in range(rows):
        gq[r] = g[r]
    for k in range(h):
        p = pre[k]
        wk = w2[k]
        s = zero
        s1 = zero
        for r in range(rows):
            act = max(zero, p[r])
            s += gq[r] * act
            q = gq[r] * wk if p[r] > zero else zero
            p[r] = q
            s1 += q
        dw2[k] = s
        db1[k] = s1
        quads = n_in - n_in % 4
        for d in range(0, quads, 4):  # four dot products per pass over q[k]
            c0, c1, c2, c3 = xt[d], xt[d + 1], xt[d + 2], xt[d + 3]
            a0 = a1 = a2 = a3 = zero
            for r in range(rows):
                q = p[r]
                a0 += q * c0[r]
                a1 += q * c1[r]
                a2 += q * c2[r]
                a3 += q * c3[r]
            dwt[d, k], dwt[d + 1, k], dwt[d + 2, k], dwt[d + 3, k] = a0, a1, a2, a3
        for d in range(quads, n_in):
            col = xt[d]
            acc = zero
            for r in range(rows):
                acc += p[r] * col[r]
            dwt[d, k] = acc


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
