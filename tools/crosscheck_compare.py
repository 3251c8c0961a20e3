#!/usr/bin/python3
"""Compares logits with llama.cpp's: a --kl-divergence-base file written by
llama-perplexity (the reference, e.g. the F32 model's first 24 chunks) against
a raw float32 file [n_scored][n_vocab] (what `llama_w4a8 --dump-logits FILE`
writes: the scored positions of each chunk in order, the positions that
llama-perplexity scores). Prints what llama-perplexity --kl-divergence would:
the candidate's PPL beside the base's, mean KL(base || candidate), same top-1,
and the largest log-probability difference. The candidate may cover fewer
chunks than the base; it is compared on its own length.

  crosscheck_compare.py BASE.kld LOGITS.f32          compare
  crosscheck_compare.py --to-logits BASE.kld OUT.f32  the base's log-probs as
        a logits file (to test this script on llama.cpp's own files); the
        entries at the base's floor share the mass the coded ones leave

The base file's format (llama.cpp tools/perplexity/perplexity.cpp) is in
tests/vectors/README.md. Needs numpy (Debian python3-numpy)."""
import os
import sys

import numpy as np

MAGIC = b"_logits_"
KL_FLOOR = -16.0  # llama.cpp sums KL over base log-probs above this


class Base:
    """The header and, per scored position, the uint16-coded log-probs."""

    def __init__(self, path):
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(20)
        if len(head) < 20 or head[:8] != MAGIC:
            raise ValueError(f"{path}: not a llama-perplexity --kl-divergence-base file")
        self.n_ctx, self.n_vocab, self.n_chunk = (int(v) for v in np.frombuffer(head[8:], "<i4"))
        if not (2 <= self.n_ctx <= 1 << 20 and 1 <= self.n_vocab <= 1 << 24 and 1 <= self.n_chunk <= 1 << 20):
            raise ValueError(f"{path}: absurd header n_ctx={self.n_ctx} n_vocab={self.n_vocab} n_chunk={self.n_chunk}")
        self.per_chunk = self.n_ctx - 1 - self.n_ctx // 2  # positions first..n_ctx-2, first = n_ctx/2
        self.nv = 2 * ((self.n_vocab + 1) // 2) + 4  # 2 floats (scale, min) then the codes, padded
        tok_bytes = 4 * self.n_ctx * self.n_chunk
        want = 20 + tok_bytes + 2 * self.nv * self.per_chunk * self.n_chunk
        if size != want:
            raise ValueError(f"{path}: {size} bytes, the header says {want}")
        self.tokens = np.fromfile(path, "<i4", self.n_ctx * self.n_chunk, offset=20).reshape(self.n_chunk, self.n_ctx)
        self.rows = np.memmap(path, "<u2", "r", 20 + tok_bytes, (self.n_chunk * self.per_chunk, self.nv))

    def logprobs(self, lo, hi):
        """Log-probs of positions [lo, hi) as float64, and the mask of coded ones
        (code 0 means 'at or below the floor', max - 16 or the smallest logit)."""
        rows = np.asarray(self.rows[lo:hi])
        head = rows[:, :4].copy().view("<f4")  # scale, min_log_prob
        codes = rows[:, 4:4 + self.n_vocab]
        lp = head[:, 0:1].astype(np.float64) * codes + head[:, 1:2]
        return lp, codes > 0

    def targets(self, lo, hi):
        """The token each position [lo, hi) predicts."""
        pos = np.arange(lo, hi)
        chunk, j = pos // self.per_chunk, pos % self.per_chunk
        return self.tokens[chunk, self.n_ctx // 2 + j + 1]


def log_softmax(x):
    x = x.astype(np.float64)
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


def compare(base_path, logits_path, block=64):
    base = Base(base_path)
    size = os.path.getsize(logits_path)
    row = 4 * base.n_vocab
    if size == 0 or size % row:
        raise ValueError(f"{logits_path}: {size} bytes is not a whole number of rows of {base.n_vocab} floats")
    n = size // row
    total = base.n_chunk * base.per_chunk
    if n > total:
        raise ValueError(f"{logits_path}: {n} positions, the base has {total} ({base.n_chunk} chunks)")
    cand = np.memmap(logits_path, "<f4", "r", 0, (n, base.n_vocab))
    nll = nll_base = kld = 0.0
    same = floored = 0
    max_diff = 0.0
    max_diff_at = (0, 0)
    step = 0.0
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        x = np.asarray(cand[lo:hi])
        if not np.isfinite(x).all():
            bad = lo + int(np.argwhere(~np.isfinite(x))[0][0])
            raise ValueError(f"{logits_path}: a non-finite logit at position {bad}")
        lp = log_softmax(x)
        lpb, coded = base.logprobs(lo, hi)
        tgt = base.targets(lo, hi)
        r = np.arange(hi - lo)
        nll -= lp[r, tgt].sum()
        nll_base -= lpb[r, tgt].sum()
        floored += int((~coded[r, tgt]).sum())
        keep = lpb > KL_FLOOR
        kld += (np.where(keep, np.exp(lpb) * (lpb - lp), 0.0)).sum()
        same += int((x.argmax(axis=1) == lpb.argmax(axis=1)).sum())
        # log-probs compared where the base holds a code (not the floor)
        d = np.where(coded, np.abs(lp - lpb), 0.0)
        i = int(d.argmax())
        if d.flat[i] > max_diff:
            max_diff = float(d.flat[i])
            max_diff_at = (lo + i // base.n_vocab, i % base.n_vocab)
        step = max(step, float(np.asarray(base.rows[lo:hi, :2]).copy().view("<f4").max()))
    chunks = n / base.per_chunk
    print(f"positions        {n} ({chunks:g} of {base.n_chunk} chunks of n_ctx {base.n_ctx}, {base.per_chunk} scored each)")
    print(f"PPL              {np.exp(nll / n):.4f}   (base {np.exp(nll_base / n):.4f} from its coded log-probs,"
          f" where {floored} targets sit at the floor: an upper bound on their probability)")
    print(f"mean KL          {kld / n:.6f}")
    print(f"same top-1       {100.0 * same / n:.3f}%")
    print(f"max |dlogprob|   {max_diff:.6f} at position {max_diff_at[0]} token {max_diff_at[1]}"
          f" (the base's coding step is up to {step:.6f})")
    return kld / n, same / n, max_diff


def to_logits(base_path, out_path, block=256):
    """The base's log-probs as float32 logits. The entries at the floor get
    equal shares of 1 - (the coded entries' mass), capped at the floor; where
    nothing is left (coding noise), 30 below the floor: no mass."""
    base = Base(base_path)
    tmp = out_path + ".tmp"
    with open(tmp, "wb") as f:
        for lo in range(0, base.n_chunk * base.per_chunk, block):
            hi = min(base.n_chunk * base.per_chunk, lo + block)
            lp, coded = base.logprobs(lo, hi)
            left = 1.0 - np.where(coded, np.exp(lp), 0.0).sum(axis=1, keepdims=True)
            n_floor = np.maximum((~coded).sum(axis=1, keepdims=True), 1)
            with np.errstate(divide="ignore", invalid="ignore"):
                share = np.where(left > 0, np.log(np.maximum(left, 1e-300) / n_floor), -np.inf)
            share = np.where(np.isfinite(share), np.minimum(share, lp), lp - 30.0)
            np.where(coded, lp, share).astype("<f4").tofile(f)
    os.replace(tmp, out_path)


def main(argv):
    try:
        if len(argv) == 4 and argv[1] == "--to-logits":
            to_logits(argv[2], argv[3])
        elif len(argv) == 3 and not argv[1].startswith("-"):
            compare(argv[1], argv[2])
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except (OSError, ValueError) as e:
        print(f"crosscheck_compare: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
