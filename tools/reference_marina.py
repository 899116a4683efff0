#!/usr/bin/env python3
"""An independent implementation (Python standard library only) of MARINA, Algorithm 1 of the
paper, to check marina-sim's and marina-coordinator's rounds: it reads the same LibSVM file,
draws the same randomness and compares every row of the run's CSV log.

  x^0 = 0, g^0 = grad f(x^0); for k = 0, 1, ...:
    x^{k+1} = x^k - gamma g^k
    c_k ~ Be(p) (round 0: 1)
    g^{k+1} = (1/n) sum_i grad f_i(x^{k+1})                                  if c_k = 1
    g^{k+1} = g^k + (1/n) sum_i Q_i(grad f_i(x^{k+1}) - grad f_i(x^k))      if c_k = 0

with f_i the mean loss over worker i's rows (the first n*floor(N/n) rows of the file in
contiguous shards, as marina-sim splits them; with --shuffle-seed, of the rows in the order of
its Fisher-Yates shuffle) and Q_i RandK, PermK, QSGD, natural compression or TopK.
--method pp-marina (Algorithm 4): in a compressed round only r clients drawn i.i.d. uniformly
with replacement answer, and the mean runs over the r draws. --method vr-marina (Algorithms 2
and 3): a compressed round's difference is that of a minibatch I' of b' rows of the worker's
shard drawn with replacement (--batch-sampling without-replacement: b' distinct rows, by Floyd's
algorithm as RandK's coordinates), (1/b') sum_{j in I'} (grad f_ij(x^{k+1}) - grad f_ij(x^k)), and
with --online-batch b a full-sync round sends the mean gradient of a minibatch of b rows.
The baselines: --method diana (m_i = Q(grad f_i(x^k) - h_i), h_i += alpha m_i,
x^{k+1} = x^k - gamma (h + mean m_i), h += alpha mean m_i, alpha = 1/(1 + omega)) and
--method vr-diana (grad f_i(x^k) replaced by the loopless-SVRG estimate of a minibatch of b'
rows around a reference point w_i, which moves to x^k with probability p after each round).
--dropout q (marina-sim's): worker i misses round k when a draw of its own says so; the means
of the MARINA family then run over the replies that arrived (a full-sync round without any
keeps g), DIANA's over all n with m_i = 0 for the absent, and a VR-DIANA worker coming back
takes x^k as its reference point (it was resynchronised).

The problem is marina-sim's, with its --bias (a constant feature 1 appended as the last
column) and --l2 lambda (f_i gains (lambda/2)||x||^2, and each row's gradient lambda x), but
with its --init-scale S (x^0 = 0, or entries S (2u - 1) for successive uniforms u of the stream
derive(seed, [9])).

What it shares with the runtime is only the definition of its random draws, written out here
from docs/ARCHITECTURE.md: SplitMix64 and xoshiro256**, the stream tags, Lemire's bounded
integers, Floyd's K-subset, the Fisher-Yates shuffle of PermK, the stochastic roundings of
QSGD and natural compression, and the rounding of sent values to float32. Everything else (gradients, the server's means, the update) is computed here in plain
double arithmetic, in another order than the runtime's, so loss and ||grad f||^2 agree to a
relative tolerance, and the full_sync column exactly.

  reference_marina.py --data FILE --workers N --gamma G --p P --seed S
                      --compressor randk:K[:indexed]|permk[:indexed]|qsgd:S|natural
                      [--loss nonconvex|logistic]
                      --log RUN.csv
                      [--method marina|pp-marina|vr-marina|diana|vr-diana]
                      [--clients R] [--batch B']
                      [--online-batch B] [--dropout Q] [--shuffle-seed S]
                      [--bias] [--l2 LAMBDA]
"""

import argparse
import csv
import math
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_gd import check_row, dphi, loss_and_grad, read_libsvm  # noqa: E402

M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15

# Stream tags (util::Stream): the last tag of every derive().
COIN, ROUND_SEED, CLIENTS, COMPRESS, MINIBATCH, REFERENCE, SHUFFLE, DROPOUT, INIT = \
    1, 2, 3, 4, 5, 6, 7, 8, 9


def mix64(z):
    z = (z + GOLDEN) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def derive(seed, tags):
    h = mix64(seed & M64)
    for t in tags:
        h = mix64(h ^ mix64((t + 0x632BE59BD9B4E019) & M64))
    return h


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M64


class Rng:
    """xoshiro256**, its four state words from SplitMix64 of seed, seed + G, seed + 2G, ..."""

    def __init__(self, seed):
        self.s = [mix64((seed + i * GOLDEN) & M64) for i in range(4)]

    def next(self):
        s = self.s
        result = (rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def uniform(self):
        return (self.next() >> 11) * 2.0 ** -53

    def below(self, n):
        """Uniform in [0, n) without bias (Lemire): the high word of next() * n, redrawn while
        the low word is below 2^64 mod n."""
        m = self.next() * n
        lo = m & M64
        if lo < n:
            threshold = ((1 << 64) - n) % n
            while lo < threshold:
                m = self.next() * n
                lo = m & M64
        return m >> 64


def to_float32(v):
    return struct.unpack("<f", struct.pack("<f", v))[0]


def floyd(rng, d, k):
    """Floyd's algorithm: k distinct indices of [0, d), ascending."""
    chosen = set()
    for j in range(d - k, d):
        t = rng.below(j + 1)
        chosen.add(j if t in chosen else t)
    return sorted(chosen)


def randk_indices(round_seed, worker, d, k):
    return floyd(Rng(derive(round_seed, [worker, COMPRESS])), d, k)


def permk_blocks(round_seed, n, d):
    """The round's shared permutation of [0, n*ceil(d/n)); worker i keeps block i (padding
    entries >= d dropped), ascending."""
    block = (d + n - 1) // n
    padded = block * n
    perm = list(range(padded))
    rng = Rng(derive(round_seed, [COMPRESS]))
    for p in range(padded - 1):
        q = p + rng.below(padded - p)
        perm[p], perm[q] = perm[q], perm[p]
    return [sorted(v for v in perm[i * block:(i + 1) * block] if v < d) for i in range(n)]


def qsgd(s, x, rng):
    """Random dithering with s levels: {j: norm * level / s}, the level l or l + 1 around
    r = |x_j| / norm * s (at most s), drawn up with probability r - l; the norm is computed
    scaled by max |x_j|."""
    amax = max(abs(v) for v in x)
    if amax == 0.0:
        return {}
    total = 0.0
    for v in x:
        t = v / amax
        total += t * t
    norm = amax * math.sqrt(total)
    out = {}
    for j, v in enumerate(x):
        if v == 0.0:
            continue
        r = min(abs(v) / norm * s, float(s))
        level = math.floor(r)
        up = r - level
        if up > 0.0 and rng.uniform() < up:
            level += 1
        if level:
            out[j] = norm * (-level if v < 0.0 else level) / s
    return out


def natural(x, rng):
    """Each value rounded to one of the two powers of two around it, unbiased, as float32."""
    out = {}
    for j, v in enumerate(x):
        if v == 0.0:
            out[j] = 0.0
            continue
        mant, _ = math.frexp(abs(v))  # |v| = mant * 2^e, mant in [1/2, 1)
        lower = abs(v) / (2.0 * mant)
        up = 2.0 * mant - 1.0
        r = 2.0 * lower if up > 0.0 and rng.uniform() < up else lower
        out[j] = to_float32(math.copysign(r, v))
    return out


def omega(spec, d, n):
    if spec == "permk":
        return float(n) - 1.0
    if spec == "natural":
        return 0.125
    name, k = spec.split(":")
    if name == "qsgd":
        return min(d / (int(k) * int(k)), math.sqrt(d) / int(k))
    return d / int(k) - 1.0


def compress(spec, delta, round_seed, worker, n):
    """Q_i(delta) as {index: value}, the values as the server decodes them: RandK's and PermK's
    scaled (d/K or n) and rounded to float32, QSGD's norm * level / s, natural's powers of two
    as float32, TopK's unscaled values as float32."""
    d = len(delta)
    if spec.startswith("topk:"):  # the K largest |delta_j|, the lower index first on a tie
        k = int(spec[5:])
        return {j: to_float32(delta[j]) for j in sorted(range(d), key=lambda j: (-abs(delta[j]), j))[:k]}
    if spec == "natural" or spec.startswith("qsgd:"):
        rng = Rng(derive(round_seed, [worker, COMPRESS]))
        return natural(delta, rng) if spec == "natural" else qsgd(int(spec[5:]), delta, rng)
    if spec == "permk":
        idx, scale = permk_blocks(round_seed, n, d)[worker], float(n)
    else:
        k = int(spec.split(":", 1)[1])
        idx, scale = randk_indices(round_seed, worker, d, k), d / k
    return {j: to_float32(delta[j] * scale) for j in idx}


def row_grad(feats, y, x, loss, out, scale, l2=0.0):
    """out += scale * grad of phi(y a^T x) + (l2/2)||x||^2 for one row."""
    c = dphi(loss, y * sum(v * x[i] for i, v in feats)) * y * scale
    for i, v in feats:
        out[i] += c * v
    if l2 > 0.0:
        for i, xi in enumerate(x):
            out[i] += scale * l2 * xi


def draw(seed, k, worker, rows, size, distinct=False):
    """A minibatch of `size` rows of [0, rows) for worker `worker` in round k: with
    replacement, or (distinct) `size` distinct rows, ascending."""
    rng = Rng(derive(seed, [k, worker, MINIBATCH]))
    if distinct:
        return floyd(rng, rows, size)
    return [rng.below(rows) for _ in range(size)]


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--workers", type=int, required=True)
    ap.add_argument("--gamma", type=float, required=True)
    ap.add_argument("--p", type=float, help="full-sync probability (vr-diana: reference "
                    "point's); not for diana")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--compressor", required=True, help="randk:K, permk, qsgd:S, natural or topk:K")
    ap.add_argument("--loss", default="nonconvex", choices=["nonconvex", "logistic"])
    ap.add_argument("--log", required=True, help="CSV log of the MARINA run to check")
    ap.add_argument("--rtol", type=float, default=1e-9)
    ap.add_argument("--method", default="marina",
                    choices=["marina", "pp-marina", "vr-marina", "diana", "vr-diana"])
    ap.add_argument("--clients", type=int, help="pp-marina: r (default ceil(n/2))")
    ap.add_argument("--batch", type=int, default=1, help="vr-marina: b'")
    ap.add_argument("--online-batch", type=int, default=0, help="vr-marina: b (0: full)")
    ap.add_argument("--batch-sampling", default="with-replacement",
                    choices=["with-replacement", "without-replacement"],
                    help="marina-sim --batch-sampling: how minibatch rows are drawn")
    ap.add_argument("--shuffle-seed", type=int, help="marina-sim --shuffle-seed: rows "
                    "shuffled before sharding")
    ap.add_argument("--dropout", type=float, default=0.0,
                    help="marina-sim --dropout: each worker misses each round with this chance")
    ap.add_argument("--bias", action="store_true",
                    help="marina-sim --bias: a constant feature appended as the last column")
    ap.add_argument("--l2", type=float, default=0.0,
                    help="marina-sim --l2: lambda of the (lambda/2)||x||^2 term of every f_i")
    ap.add_argument("--init-scale", type=float, default=0.0,
                    help="marina-sim --init-scale S: x^0 uniform in [-S, S] from --seed")
    args = ap.parse_args()
    if not (args.l2 >= 0.0 and math.isfinite(args.l2)):
        ap.error("--l2 must be a finite number >= 0")
    if not (args.init_scale >= 0.0 and math.isfinite(args.init_scale)):
        ap.error("--init-scale must be a finite number >= 0")
    # ":indexed" (randk:K:indexed, permk:indexed) only puts the indices on the wire: the same
    # compressor, the same run.
    spec, n = args.compressor.removesuffix(":indexed"), args.workers
    if n < 1:
        ap.error("--workers must be at least 1")
    r = args.clients if args.clients is not None else (n + 1) // 2
    if r < 1 or args.batch < 1 or args.online_batch < 0:
        ap.error("--clients and --batch must be at least 1, --online-batch at least 0")
    distinct = args.batch_sampling == "without-replacement"
    if not 0.0 <= args.dropout < 1.0:
        ap.error("--dropout must be in [0, 1)")

    def present(k, i):
        return args.dropout == 0.0 or \
            not Rng(derive(args.seed, [k, i, DROPOUT])).uniform() < args.dropout
    if not (spec in ("permk", "natural") or
            any(spec.startswith(f) and spec[len(f):].isdigit() and int(spec[len(f):]) > 0
                for f in ("randk:", "qsgd:", "topk:"))):
        ap.error(f"--compressor {spec!r}: expected randk:K, permk, qsgd:S, natural or topk:K")
    if spec.startswith("topk:") and args.method in ("diana", "vr-diana"):
        ap.error("topk is biased: diana and vr-diana need an unbiased compressor")
    diana = args.method in ("diana", "vr-diana")
    if (args.p is None) != (args.method == "diana"):
        ap.error("--p is needed for every method but diana, and does not apply to diana")

    try:
        rows, labels, dim = read_libsvm(args.data)
    except (OSError, ValueError) as e:
        sys.exit(f"reference_marina: cannot read {args.data}: {e}")
    if args.bias:
        rows = [feats + [(dim, 1.0)] for feats in rows]
        dim += 1
    if spec.startswith(("randk:", "topk:")) and int(spec.split(":")[1]) > dim:
        sys.exit(f"reference_marina: {spec} needs K <= d = {dim} ({args.data})")
    m = len(rows) // n
    if distinct and max(args.batch, args.online_batch) > m:
        ap.error(f"--batch-sampling without-replacement needs --batch and --online-batch <= "
                 f"m = {m} rows per worker")
    if m == 0:
        sys.exit(f"reference_marina: {args.data}: {len(rows)} rows cannot make {n} shards")
    order = list(range(len(rows)))
    if args.shuffle_seed is not None:
        rng = Rng(derive(args.shuffle_seed, [SHUFFLE]))
        for i in range(len(order) - 1, 0, -1):
            j = rng.below(i + 1)
            order[i], order[j] = order[j], order[i]
    shards = [([rows[t] for t in order[i * m:(i + 1) * m]],
               [labels[t] for t in order[i * m:(i + 1) * m]]) for i in range(n)]
    try:
        with open(args.log, newline="") as fh:
            log = list(csv.DictReader(fh))
    except OSError as e:
        sys.exit(f"reference_marina: cannot read {args.log}: {e}")
    need = {"loss", "grad_norm_sq", "full_sync"}
    if not log or not need <= set(log[0]):
        sys.exit(f"reference_marina: {args.log}: not a run log with rows and the columns "
                 f"{', '.join(sorted(need))} (run with --data so that loss and ||grad f||^2 "
                 "are logged)")

    def local(x):
        out = [loss_and_grad(r, y, dim, x, args.loss) for r, y in shards]
        if args.l2 > 0.0:
            reg = 0.5 * args.l2 * sum(v * v for v in x)
            out = [(f + reg, [gj + args.l2 * xj for gj, xj in zip(g, x)]) for f, g in out]
        return out

    def report(grads):
        f = sum(fi for fi, _ in grads) / n
        full = [sum(gi[j] for _, gi in grads) / n for j in range(dim)]
        return f, sum(v * v for v in full)

    x = [0.0] * dim
    if args.init_scale > 0.0:
        init = Rng(derive(args.seed, [INIT]))
        x = [args.init_scale * (2.0 * init.uniform() - 1.0) for _ in range(dim)]
    grads = local(x)
    worst = 0.0
    g = None
    if diana:
        alpha = 1.0 / (1.0 + omega(spec, dim, n))
        h = [0.0] * dim
        shifts = [[0.0] * dim for _ in range(n)]
        ref_x = [x] * n  # VR-DIANA's reference points w_i and their full gradients
        ref_grad = [gi for _, gi in grads]
    for k, row in enumerate(log):
        f, gn = report(grads)
        rel = check_row("reference_marina", args.log, k, row, {"loss": f, "grad_norm_sq": gn},
                        args.rtol)
        if rel is None:
            return 1
        worst = max(worst, rel)
        if k + 1 == len(log):
            break
        # Round k: the workers stand at x^k (their gradients `grads`); the server forms g^k.
        if diana:
            full_sync = False
        else:
            full_sync = k == 0 or Rng(derive(args.seed, [k, COIN])).uniform() < args.p
        want = log[k + 1]["full_sync"]
        if str(int(full_sync)) != want:
            print(f"reference_marina: round {k}: full_sync {want} in the log, "
                  f"{int(full_sync)} here", file=sys.stderr)
            return 1
        if diana:
            round_seed = derive(args.seed, [k, ROUND_SEED])
            mean = [0.0] * dim
            for i in range(n):
                if not present(k, i):
                    continue
                if args.method == "vr-diana" and (k == 0 or not present(k - 1, i)):
                    ref_x[i], ref_grad[i] = x, grads[i][1]  # first round, or back from absence
                if args.method == "vr-diana":
                    rows_i, y_i = shards[i]
                    est = list(ref_grad[i])
                    for j in draw(args.seed, k, i, m, args.batch, distinct):
                        row_grad(rows_i[j], y_i[j], x, args.loss, est, 1.0 / args.batch, args.l2)
                        row_grad(rows_i[j], y_i[j], ref_x[i], args.loss, est, -1.0 / args.batch,
                                 args.l2)
                else:
                    est = grads[i][1]
                sent = compress(spec, [a - b for a, b in zip(est, shifts[i])], round_seed, i, n)
                for j, v in sent.items():
                    shifts[i][j] += alpha * v
                    mean[j] += v / n
                if args.method == "vr-diana" and \
                        Rng(derive(args.seed, [k, i, REFERENCE])).uniform() < args.p:
                    ref_x[i], ref_grad[i] = x, grads[i][1]
            g = [a + b for a, b in zip(h, mean)]
            h = [a + alpha * b for a, b in zip(h, mean)]
        elif full_sync:
            here = [i for i in range(n) if present(k, i)]
            if here and args.method == "vr-marina" and args.online_batch > 0:
                g = [0.0] * dim
                for i in here:
                    rows_i, y_i = shards[i]
                    for j in draw(args.seed, k, i, m, args.online_batch, distinct):
                        row_grad(rows_i[j], y_i[j], x, args.loss, g,
                                 1.0 / (args.online_batch * len(here)), args.l2)
            elif here:
                g = [sum(grads[i][1][j] for i in here) / len(here) for j in range(dim)]
        else:
            round_seed = derive(args.seed, [k, ROUND_SEED])
            if args.method == "pp-marina":
                rng = Rng(derive(args.seed, [k, CLIENTS]))
                drawn = [rng.below(n) for _ in range(r)]
                times = {i: drawn.count(i) for i in set(drawn) if present(k, i)}
            else:
                times = {i: 1 for i in range(n) if present(k, i)}
            weight = {i: t / sum(times.values()) for i, t in times.items()}
            step = [0.0] * dim
            for i, w in sorted(weight.items()):
                if args.method == "vr-marina":
                    rows_i, y_i = shards[i]
                    delta = [0.0] * dim
                    b = args.batch
                    for j in draw(args.seed, k, i, m, b, distinct):
                        row_grad(rows_i[j], y_i[j], x, args.loss, delta, 1.0 / b, args.l2)
                        row_grad(rows_i[j], y_i[j], x_before, args.loss, delta, -1.0 / b, args.l2)
                else:
                    delta = [a - b for a, b in zip(grads[i][1], before[i][1])]
                for j, v in compress(spec, delta, round_seed, i, n).items():
                    step[j] += w * v
            g = [a + b for a, b in zip(g, step)]
        x_before = x
        x = [xi - args.gamma * gi for xi, gi in zip(x, g)]
        before = grads
        grads = local(x)
    print(f"reference_marina: {len(log)} rows agree, worst relative difference {worst:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
