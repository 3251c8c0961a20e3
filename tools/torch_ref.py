#!/usr/bin/python3
"""PyTorch (CPU, float32) transcription of the authors' GPTQ and AWQ loops,
timed beside build/w4a8_quant_bench on the same layer shape, and a check
that both produce the same codes on a small layer.

  /usr/bin/python3 tools/torch_ref.py --bench build/w4a8_quant_bench [--runs 3] [--threads 1,2]
  /usr/bin/python3 tools/torch_ref.py --check build/w4a8_quant_bench

Transcribed from (read, not copied):
  GPTQ  IST-DASLab/gptq, gptq.py: GPTQ.add_batch (the Hessian) and
        GPTQ.fasterquant (dead columns, damping, Cholesky -> cholesky_inverse
        -> upper Cholesky, blocks of 128 with the lazy update), quant.py's
        Quantizer.find_params / quantize (per-group parameters fitted when the
        loop reaches a group).
  AWQ   mit-han-lab/llm-awq, awq/quantize/auto_scale.py _search_module_scale
        (20 ratios, s = x_mean^r clamped at 1e-4, divided by sqrt(max min),
        weights W s quantized then / s, loss = mean (org_out - out)^2),
        auto_clip.py auto_clip_layer (512 tokens, 10 shrink steps of 1/20,
        per group partial outputs, strict < keeps the first minimum), and
        quantizer.py pseudo_quantize_tensor (zero point, max_int 15).
  Two changes: auto_clip's output-channel batch is 64 rows (the authors use 256
  when it divides N) to hold memory at 0.5 GiB, which changes no result; and
  GPTQ's symmetric grid is w4a8's (find_params), so that the codes can agree.
"""
import argparse, os, subprocess, sys, tempfile, time
import torch

# --- GPTQ ---------------------------------------------------------------------

def hessian(X):
    """GPTQ.add_batch for one batch of T tokens: H = 2/T X^T X (float32)."""
    inp = X.t().float() * (2.0 / X.shape[0]) ** 0.5
    return inp.matmul(inp.t())

def find_params(x, sym, maxq=15):
    """quant.Quantizer.find_params, per row (perchannel=True). Symmetric: w4a8's
    grid, not the authors' 2 max|x| / 15: the larger extreme a on code 0 with
    the signed step -a/8, unless the other side b needs b/7.5 (see w4a8.h)."""
    xmin = torch.minimum(x.min(1)[0], torch.zeros(x.shape[0]))
    xmax = torch.maximum(x.max(1)[0], torch.zeros(x.shape[0]))
    if sym:
        up = xmax >= -xmin
        a, b = torch.where(up, xmax, -xmin), torch.where(up, -xmin, xmax)
        step = torch.maximum(a / 8, b / 7.5)
        step[step == 0] = 1  # an all-zero row: every code 8
        scale = torch.where(up, -step, step)
        return scale.unsqueeze(1), torch.full_like(scale, (maxq + 1) / 2).unsqueeze(1)
    tmp = (xmin == 0) & (xmax == 0)
    xmin[tmp] = -1
    xmax[tmp] = +1
    scale = (xmax - xmin) / maxq
    zero = torch.round(-xmin / scale)
    return scale.unsqueeze(1), zero.unsqueeze(1)

def quantize(x, scale, zero, maxq=15):
    q = torch.clamp(torch.round(x / scale) + zero, 0, maxq)
    return scale * (q - zero), q

def fasterquant(W, H, blocksize=128, percdamp=0.01, groupsize=128, sym=True):
    W = W.clone().float()
    H = H.clone()
    N, K = W.shape
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    codes = torch.zeros(N, K, dtype=torch.uint8)
    scale = zero = None
    damp = percdamp * torch.mean(torch.diag(H))
    diag = torch.arange(K)
    H[diag, diag] += damp
    H = torch.linalg.cholesky(H)
    H = torch.cholesky_inverse(H)
    H = torch.linalg.cholesky(H, upper=True)
    Hinv = H
    for i1 in range(0, K, blocksize):
        i2 = min(i1 + blocksize, K)
        count = i2 - i1
        W1 = W[:, i1:i2].clone()
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        for i in range(count):
            w = W1[:, i]
            d = Hinv1[i, i]
            if (i1 + i) % groupsize == 0:
                scale, zero = find_params(W[:, (i1 + i):(i1 + i + groupsize)], sym)
            q, c = quantize(w.unsqueeze(1), scale, zero)
            q = q.flatten()
            codes[:, i1 + i] = c.flatten().to(torch.uint8)
            err1 = (w - q) / d
            W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err1
        W[:, i1:i2] = W1  # the authors keep Q here; only the codes matter below
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    return codes

# --- AWQ ----------------------------------------------------------------------

def pseudo_quantize(w, group, max_int=15):
    shape = w.shape
    w = w.reshape(-1, group)
    max_val = w.amax(dim=1, keepdim=True)
    min_val = w.amin(dim=1, keepdim=True)
    scales = (max_val - min_val).clamp(min=1e-5) / max_int
    zeros = (-torch.round(min_val / scales)).clamp_(0, max_int)
    q = torch.clamp(torch.round(w / scales) + zeros, 0, max_int)
    return ((q - zeros) * scales).reshape(shape), q.reshape(shape)

def awq_search(W, X, group, n_grid=20):
    x_max = X.abs().view(-1, X.shape[-1]).mean(0)
    org_out = X @ W.t()
    best_error, best_ratio, best_scales = float("inf"), -1, None
    for ratio in range(n_grid):
        ratio = ratio * 1 / n_grid
        scales = x_max.pow(ratio).clamp(min=1e-4).view(-1)
        scales = scales / (scales.max() * scales.min()).sqrt()
        w = W * scales.view(1, -1)  # fc.weight.mul_ on a restored copy
        w = pseudo_quantize(w, group)[0] / scales.view(1, -1)
        out = X @ w.t()
        loss = (org_out - out).float().pow(2).mean().item()
        if loss < best_error:
            best_error, best_ratio, best_scales = loss, ratio, scales
    return best_scales, best_ratio

def auto_clip(w, input_feat, group, n_grid=20, max_shrink=0.5, n_sample_token=512, oc_batch_size=64):
    input_feat = input_feat.view(-1, input_feat.shape[-1])
    input_feat = input_feat.reshape(1, input_feat.shape[0], -1, group)
    input_feat = input_feat[:, 0::max(1, input_feat.shape[1] // n_sample_token)]
    w = w.reshape(w.shape[0], 1, -1, group)
    best_max_val_all = []
    for i_b in range((w.shape[0] + oc_batch_size - 1) // oc_batch_size):
        wb = w[i_b * oc_batch_size:(i_b + 1) * oc_batch_size]
        org_max_val = wb.abs().amax(dim=-1, keepdim=True)
        best_max_val = org_max_val.clone()
        min_errs = torch.ones_like(org_max_val) * 1e9
        org_out = (input_feat * wb).sum(dim=-1)
        for i_s in range(int(max_shrink * n_grid)):
            max_val = org_max_val * (1 - i_s / n_grid)
            cur_w = torch.clamp(wb, -max_val, max_val)
            q_w = pseudo_quantize(cur_w, group)[0]
            cur_out = (input_feat * q_w).sum(dim=-1)
            err = (cur_out - org_out).pow(2).mean(dim=1).view(min_errs.shape)
            cur_best_idx = err < min_errs
            min_errs[cur_best_idx] = err[cur_best_idx]
            best_max_val[cur_best_idx] = max_val[cur_best_idx]
        best_max_val_all.append(best_max_val)
    best = torch.cat(best_max_val_all, dim=0).squeeze(1)  # [N, groups, 1]
    return torch.clamp(w.squeeze(1), -best, best).reshape(w.shape[0], -1)

def awq(W, X, group):
    s, _ = awq_search(W, X, group)
    Wc = auto_clip(W * s.view(1, -1), X / s.view(1, -1), group)
    return s, pseudo_quantize(Wc, group)

# --- data, timing, check ------------------------------------------------------

def layer(N, K, T, seed=777):
    g = torch.Generator().manual_seed(seed)
    W = 0.05 * torch.randn(N, K, generator=g)
    c = torch.randn(T, 1, generator=g)
    pattern = torch.tensor([float((k * 2654435761 >> 7) % 3 - 1) for k in range(K)]) if K <= 65536 else None
    X = 0.8 * torch.randn(T, K, generator=g) + 0.6 * c * pattern
    X[:, :4] *= 60.0
    return W.contiguous(), X.contiguous()

STEPS = ("calib", "gptq", "awq_search", "awq_clip", "awq", "awq_gptq")

def torch_step(name, W, X, H, s, group):
    if name == "calib":
        hessian(X)
    elif name == "gptq":
        fasterquant(W, H, groupsize=group)
    elif name == "awq_search":
        awq_search(W, X, group)
    elif name == "awq_clip":
        auto_clip(W * s.view(1, -1), X / s.view(1, -1), group)
    elif name == "awq":
        awq(W, X, group)
    elif name == "awq_gptq":
        s2, _ = awq_search(W, X, group)
        Wc = auto_clip(W * s2.view(1, -1), X / s2.view(1, -1), group)
        Xs = X / s2.view(1, -1)
        fasterquant(Wc, hessian(Xs), groupsize=group, sym=False)

def bench(args):
    threads = [int(t) for t in args.threads.split(",")]
    N, K, T, G = args.n, args.k, args.tokens, args.group
    W, X = layer(N, K, T)
    H = hessian(X)
    s, _ = awq_search(W, X, G)
    rows = {}
    for nt in threads:
        cmd = [args.bench, "--n", str(N), "--k", str(K), "--tokens", str(T), "--group", str(G),
               "--runs", str(args.runs), "--threads", str(nt),
               "--steps", args.steps]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=dict(os.environ)).stdout
        for line in out.splitlines():
            if line.startswith("#"):
                continue
            f = line.split()
            rows[(f[0], nt, "w4a8")] = [float(v) for v in f[2:5]]
        torch.set_num_threads(nt)
        for name in [x for x in STEPS if x in args.steps.split(",")]:
            tm = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                torch_step(name, W, X, H, s, G)
                tm.append(time.perf_counter() - t0)
            tm.sort()
            rows[(name, nt, "torch")] = [tm[0], tm[len(tm) // 2], tm[-1]]
            print(f"# torch {name} {nt} thread(s): {tm[len(tm)//2]:.3f} s", file=sys.stderr, flush=True)
    print(f"{N}x{K} layer, {T} tokens, group {G}, {args.runs} runs each; seconds min / median / max")
    print(f"load average before: {os.getloadavg()[0]:.2f} (at start {args.load0:.2f})")
    print(f"{'step':<11} {'thr':>3} {'w4a8':>24} {'PyTorch':>24} {'ratio':>6}")
    for name in args.steps.split(","):
        for nt in threads:
            a = rows.get((name, nt, "w4a8"))
            b = rows.get((name, nt, "torch"))
            fa = f"{a[0]:.2f}/{a[1]:.2f}/{a[2]:.2f}" if a else "-"
            fb = f"{b[0]:.2f}/{b[1]:.2f}/{b[2]:.2f}" if b else "-"
            ratio = f"{b[1] / a[1]:.2f}x" if a and b else "-"
            print(f"{name:<11} {nt:>3} {fa:>24} {fb:>24} {ratio:>6}")

def check(args):
    """Same codes on a small layer. GPTQ symmetric; AWQ's scales, clip and codes."""
    # group = GPTQ's block: with shorter groups the authors fit a group that starts
    # inside a block from the block's un-updated weights, w4a8 from the current ones
    N, K, T, G = 64, 256, 128, 128
    W, X = layer(N, K, T, seed=5)
    with tempfile.TemporaryDirectory() as d:
        W.numpy().tofile(os.path.join(d, "W.f32"))
        X.numpy().tofile(os.path.join(d, "X.f32"))
        with open(os.path.join(d, "shape.txt"), "w") as f:
            f.write(f"{N} {K} {T} {G}\n")
        subprocess.run([args.bench, "--codes", d], check=True)
        rd = lambda name, dt: torch.from_numpy(__import__("numpy").fromfile(os.path.join(d, name), dtype=dt))
        g_codes = rd("gptq_codes.u8", "uint8").reshape(N, K)
        a_s, a_codes = rd("awq_s.f32", "float32"), rd("awq_codes.u8", "uint8").reshape(N, K)
    torch.set_num_threads(1)
    tg = fasterquant(W, hessian(X).double().float(), groupsize=G)
    ts, (_, tq) = awq(W, X, G)
    gd = (tg != g_codes).sum().item()
    sd = (ts - a_s).abs().max().item()
    ad = (tq.to(torch.uint8) != a_codes).sum().item()
    print(f"GPTQ codes differing: {gd} of {N * K} ({100.0 * gd / (N * K):.3f}%)")
    print(f"AWQ scales max |diff|: {sd:.3g}; AWQ codes differing: {ad} of {N * K}")
    return 0 if gd == 0 and ad == 0 and sd <= 1e-5 * ts.abs().max().item() else 1

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bench", help="path of build/w4a8_quant_bench: time both")
    p.add_argument("--check", help="path of build/w4a8_quant_bench: compare codes on a small layer")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--steps", default=",".join(STEPS + ("auto",)))
    p.add_argument("--n", type=int, default=4096)
    p.add_argument("--k", type=int, default=4096)
    p.add_argument("--tokens", type=int, default=512)
    p.add_argument("--group", type=int, default=128)
    args = p.parse_args()
    args.load0 = os.getloadavg()[0]
    if args.check:
        args.bench = args.check
        return check(args)
    if args.bench:
        bench(args)
        return 0
    p.print_help()
    return 2

if __name__ == "__main__":
    sys.exit(main())
