"""Measures, on one GPU with PyTorch, the physics rlsim's analytic cost model prices for a Qwen2.5-7B-shaped model.

Run on a GPU machine (no Rust needed): `python3 scripts/gpu/torch_phases.py OUT_DIR [PART,PART,...]`. Writes
OUT_DIR/torch_phases.json and prints a table. Parts (default: ceilings,train,head,decode; docs/gpu-measurements.md
says what each one checks and what it found):

  ceilings  bf16 8192^3 matrix product (random data) and HBM read / copy bandwidth: the device's achievable rates.
  train     K decoder layers of Qwen2.5-7B's shape (hidden 3584, 28 query / 4 KV heads, SwiGLU FFN 18944, RMSNorm,
            rotary), bf16, FlashAttention through SDPA, one packed causal sequence of L tokens: forward only (no_grad,
            a log-prob pass), forward + backward (an update), and forward + backward with per-layer recomputation.
            FLOPs counted as rlsim counts them: f(L) = 2 N L + 2 layers heads head_dim L^2, x3 for an update, x4 with
            recomputation; achieved TFLOP/s per pass.
  head      the LM head (3584 -> 152,064) and the fp32 log-softmax + gather of the log-prob of each token, forward
            only and forward + backward.
  decode    one decode iteration of all 28 layers (bf16 weights, a KV cache of B sequences x C tokens, grouped-query
            attention with the 7 query heads of a KV head as one 7-row query), captured in a CUDA graph so launch
            cost is out: time against the bytes it must read (weights + K + V) = the HBM floor.
  copies    host <-> device copies, pageable and pinned, 1 and 4 GiB (a colocated trainer's offload).
  attention_curve  causal FlashAttention against one layer's matmuls at 1k-64k tokens, forward and backward.
  attention_packed the same over a 64k-token micro-batch of equal-length sequences (512 to 32k tokens each), as a
            trainer packs them.
"""

import json
import os
import sys
import time

import torch
import torch.nn.functional as F

OUT = sys.argv[1] if len(sys.argv) > 1 else "."
DEV = torch.device("cuda:0")
torch.manual_seed(0)
torch.backends.cuda.matmul.allow_tf32 = False
RESULTS = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "parts": {}}

HIDDEN, HEADS, KV_HEADS, HEAD_DIM, FFN, VOCAB, LAYERS = 3584, 28, 4, 128, 18944, 152064, 28


GQA_NATIVE = [True]


def attention(q, k, v, causal):
    """FlashAttention through SDPA (forced, so a silent fallback to the math kernel cannot distort the timing), with
    grouped-query heads native where this PyTorch supports them, else K and V repeated per query head."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        if k.shape[1] != q.shape[1]:
            if GQA_NATIVE[0]:
                try:
                    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)
                except RuntimeError as e:
                    print(f"flash attention without native GQA ({e!r:.120}); repeating K and V")
                    GQA_NATIVE[0] = False
            r = q.shape[1] // k.shape[1]
            k, v = k.repeat_interleave(r, dim=1), v.repeat_interleave(r, dim=1)
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)


def attention_ms(L, reps, batch=1):
    """Median ms of causal FlashAttention over `batch` sequences of L tokens each at Qwen2.5-7B's heads: forward
    only, and forward + backward."""
    q0 = torch.randn(batch, HEADS, L, HEAD_DIM, device=DEV, dtype=torch.bfloat16)
    k0 = torch.randn(batch, KV_HEADS, L, HEAD_DIM, device=DEV, dtype=torch.bfloat16)
    v0 = torch.randn(batch, KV_HEADS, L, HEAD_DIM, device=DEV, dtype=torch.bfloat16)

    def att_f():
        with torch.no_grad():
            attention(q0, k0, v0, True)

    def att_u():
        q, k, v = (t.detach().requires_grad_(True) for t in (q0, k0, v0))
        attention(q, k, v, True).sum().backward()

    return timed(att_f, reps=reps)[0], timed(att_u, reps=reps)[0]


def timed(fn, warmup=2, reps=5):
    """Median milliseconds of fn() over reps, with device events; warm-up runs first."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return times[len(times) // 2], times


def save():
    RESULTS["flash_gqa_native"] = GQA_NATIVE[0]
    with open(os.path.join(OUT, "torch_phases.json"), "w") as f:
        json.dump(RESULTS, f, indent=1)


def ceilings():
    n = 8192
    a = [torch.randn(n, n, device=DEV, dtype=torch.bfloat16) for _ in range(3)]
    b = [torch.randn(n, n, device=DEV, dtype=torch.bfloat16) for _ in range(3)]
    i = [0]

    def mm():
        k = i[0] % 3
        i[0] += 1
        return a[k] @ b[k]

    ms, _ = timed(mm, warmup=3, reps=10)
    gemm_tflops = 2 * n**3 / (ms * 1e-3) / 1e12
    del a, b
    big = torch.randn(1 << 30, device=DEV, dtype=torch.float32)  # 4 GiB
    ms_read, _ = timed(lambda: big.sum(), warmup=2, reps=10)
    read_gbs = big.numel() * 4 / (ms_read * 1e-3) / 1e9
    dst = torch.empty_like(big)
    ms_copy, _ = timed(lambda: dst.copy_(big), warmup=2, reps=10)
    copy_gbs = 2 * big.numel() * 4 / (ms_copy * 1e-3) / 1e9
    del big, dst
    RESULTS["parts"]["ceilings"] = {
        "bf16_gemm_8192_tflops": gemm_tflops,
        "hbm_read_gbs": read_gbs,
        "hbm_copy_read_plus_write_gbs": copy_gbs,
    }
    print(f"ceilings: bf16 GEMM {gemm_tflops:.0f} TFLOP/s, read {read_gbs:.0f} GB/s, copy {copy_gbs:.0f} GB/s (r+w)")
    save()


def rms_norm(x, w):
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6)).to(x.dtype) * w


def rotary(x, cos, sin):
    # x: [1, h, L, d]; rotate-half rotary embedding as Qwen2 / Llama apply it
    x1, x2 = x[..., : HEAD_DIM // 2], x[..., HEAD_DIM // 2 :]
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


class Layer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        s = 0.02
        p = lambda *shape: torch.nn.Parameter(torch.randn(*shape, device=DEV, dtype=torch.bfloat16) * s)
        self.ln1 = torch.nn.Parameter(torch.ones(HIDDEN, device=DEV, dtype=torch.bfloat16))
        self.ln2 = torch.nn.Parameter(torch.ones(HIDDEN, device=DEV, dtype=torch.bfloat16))
        self.wqkv = p((HEADS + 2 * KV_HEADS) * HEAD_DIM, HIDDEN)
        self.bqkv = p((HEADS + 2 * KV_HEADS) * HEAD_DIM)
        self.wo = p(HIDDEN, HEADS * HEAD_DIM)
        self.wgu = p(2 * FFN, HIDDEN)
        self.wd = p(HIDDEN, FFN)

    def forward(self, x, cos, sin):
        L = x.shape[1]
        h = rms_norm(x, self.ln1)
        qkv = F.linear(h, self.wqkv, self.bqkv)
        q, k, v = qkv.split([HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM], dim=-1)
        q = q.view(1, L, HEADS, HEAD_DIM).transpose(1, 2)
        k = k.view(1, L, KV_HEADS, HEAD_DIM).transpose(1, 2)
        v = v.view(1, L, KV_HEADS, HEAD_DIM).transpose(1, 2)
        q, k = rotary(q, cos, sin), rotary(k, cos, sin)
        a = attention(q, k, v, True)
        x = x + F.linear(a.transpose(1, 2).reshape(1, L, HEADS * HEAD_DIM), self.wo)
        h = rms_norm(x, self.ln2)
        g, u = F.linear(h, self.wgu).chunk(2, dim=-1)
        return x + F.linear(F.silu(g) * u, self.wd)


def layer_params():
    return (HEADS + 2 * KV_HEADS) * HEAD_DIM * (HIDDEN + 1) + HIDDEN * HEADS * HEAD_DIM + 3 * HIDDEN * FFN


def rope(L):
    inv = 1.0 / (1e6 ** (torch.arange(0, HEAD_DIM, 2, device=DEV, dtype=torch.float32) / HEAD_DIM))
    f = torch.outer(torch.arange(L, device=DEV, dtype=torch.float32), inv)
    emb = torch.cat((f, f), dim=-1)
    return emb.cos().to(torch.bfloat16)[None, None], emb.sin().to(torch.bfloat16)[None, None]


def train(n_layers=4, lengths=(4096, 16384, 32768)):
    from torch.utils.checkpoint import checkpoint

    layers = torch.nn.ModuleList([Layer() for _ in range(n_layers)])
    rows = []
    for L in lengths:
        cos, sin = rope(L)
        x0 = torch.randn(1, L, HIDDEN, device=DEV, dtype=torch.bfloat16)
        # rlsim's f(L) for these layers: 2 N L + 2 layers heads head_dim L^2 (causal attention)
        f = 2 * n_layers * layer_params() * L + 2 * n_layers * HEADS * HEAD_DIM * L * L

        def fwd():
            with torch.no_grad():
                x = x0
                for lay in layers:
                    x = lay(x, cos, sin)
            return x

        def fwd_bwd(recompute=False):
            x = x0.detach().requires_grad_(True)
            y = x
            for lay in layers:
                y = checkpoint(lay, y, cos, sin, use_reentrant=False) if recompute else lay(y, cos, sin)
            y.float().square().mean().backward()
            for p in layers.parameters():
                p.grad = None

        ms_f, _ = timed(fwd)
        ms_u, _ = timed(fwd_bwd)
        ms_r, _ = timed(lambda: fwd_bwd(True))
        row = {
            "tokens": L,
            "layers": n_layers,
            "forward_flops": f,
            "forward_ms": ms_f,
            "update_ms": ms_u,
            "update_recompute_ms": ms_r,
            "forward_tflops": f / (ms_f * 1e-3) / 1e12,
            "update_tflops": 3 * f / (ms_u * 1e-3) / 1e12,
            "update_recompute_tflops": 4 * f / (ms_r * 1e-3) / 1e12,
            "attention_share_of_flops": 2 * n_layers * HEADS * HEAD_DIM * L * L / f,
        }
        row["forward_over_update_time_per_flop"] = (ms_f / f) / (ms_u / (3 * f))
        row["forward_over_update_recompute_time_per_flop"] = (ms_f / f) / (ms_r / (4 * f))
        rows.append(row)
        print(
            f"train L={L:>6}: fwd {ms_f:8.1f} ms {row['forward_tflops']:5.0f} TF/s | fwd+bwd {ms_u:8.1f} ms "
            f"{row['update_tflops']:5.0f} TF/s | +recompute {ms_r:8.1f} ms {row['update_recompute_tflops']:5.0f} "
            f"TF/s | fwd/update time per FLOP {row['forward_over_update_time_per_flop']:.3f} "
            f"(recompute {row['forward_over_update_recompute_time_per_flop']:.3f}) | attention "
            f"{row['attention_share_of_flops']*100:.0f} % of FLOPs"
        )
        RESULTS["parts"]["train"] = rows
        save()
        del x0, cos, sin
    # Where the time goes: attention alone (SDPA, FlashAttention) at each length, forward and forward + backward,
    # for the same layers; the rest (matmuls, norms, rotary, SwiGLU) is the difference.
    for row in rows:
        L = row["tokens"]
        ms_af, ms_au = attention_ms(L, reps=5)
        att_flops = 2 * HEADS * HEAD_DIM * L * L
        row["attention_forward_ms_per_layer"] = ms_af
        row["attention_update_ms_per_layer"] = ms_au
        row["attention_forward_tflops"] = att_flops / (ms_af * 1e-3) / 1e12
        row["attention_update_tflops"] = 3 * att_flops / (ms_au * 1e-3) / 1e12
        rest_f = row["forward_ms"] - n_layers * ms_af
        rest_u = row["update_ms"] - n_layers * ms_au
        lin = 2 * n_layers * layer_params() * L
        row["rest_forward_tflops"] = lin / (rest_f * 1e-3) / 1e12
        row["rest_update_tflops"] = 3 * lin / (rest_u * 1e-3) / 1e12
        print(
            f"  L={L:>6} attention: fwd {row['attention_forward_tflops']:.0f} TF/s, fwd+bwd "
            f"{row['attention_update_tflops']:.0f} TF/s | rest: fwd {row['rest_forward_tflops']:.0f} TF/s, "
            f"fwd+bwd {row['rest_update_tflops']:.0f} TF/s"
        )
    RESULTS["parts"]["train"] = rows
    save()
    del layers


def head(tokens=16384):
    w = torch.nn.Parameter(torch.randn(VOCAB, HIDDEN, device=DEV, dtype=torch.bfloat16) * 0.02)
    h0 = torch.randn(tokens, HIDDEN, device=DEV, dtype=torch.bfloat16)
    ids = torch.randint(0, VOCAB, (tokens,), device=DEV)

    def logp(h):
        logits = F.linear(h, w).float()
        return torch.log_softmax(logits, dim=-1).gather(-1, ids[:, None]).squeeze(-1)

    def fwd():
        with torch.no_grad():
            return logp(h0)

    def fwd_bwd():
        h = h0.detach().requires_grad_(True)
        logp(h).sum().backward()
        w.grad = None

    ms_f, _ = timed(fwd)
    ms_u, _ = timed(fwd_bwd)
    flops = 2 * VOCAB * HIDDEN * tokens
    row = {
        "tokens": tokens,
        "forward_ms": ms_f,
        "update_ms": ms_u,
        "forward_tflops": flops / (ms_f * 1e-3) / 1e12,
        "update_tflops": 3 * flops / (ms_u * 1e-3) / 1e12,
    }
    RESULTS["parts"]["head"] = row
    print(
        f"head T={tokens}: fwd {ms_f:.1f} ms ({row['forward_tflops']:.0f} TF/s), fwd+bwd {ms_u:.1f} ms "
        f"({row['update_tflops']:.0f} TF/s)"
    )
    save()


def decode(batches=(32, 128, 256), contexts=(1024, 4096)):
    layers = LAYERS
    qkv_out = (HEADS + 2 * KV_HEADS) * HEAD_DIM
    weights = [
        {
            "wqkv": torch.randn(qkv_out, HIDDEN, device=DEV, dtype=torch.bfloat16) * 0.02,
            "wo": torch.randn(HIDDEN, HEADS * HEAD_DIM, device=DEV, dtype=torch.bfloat16) * 0.02,
            "wgu": torch.randn(2 * FFN, HIDDEN, device=DEV, dtype=torch.bfloat16) * 0.02,
            "wd": torch.randn(HIDDEN, FFN, device=DEV, dtype=torch.bfloat16) * 0.02,
            "ln": torch.ones(HIDDEN, device=DEV, dtype=torch.bfloat16),
        }
        for _ in range(layers)
    ]
    lm = torch.randn(VOCAB, HIDDEN, device=DEV, dtype=torch.bfloat16) * 0.02
    weight_bytes = sum(t.numel() * 2 for w in weights for t in w.values()) + lm.numel() * 2
    rows = []
    for C in contexts:
        for B in batches:
            kv_bytes = 2 * layers * B * KV_HEADS * C * HEAD_DIM * 2
            if kv_bytes + weight_bytes > 100e9:
                continue
            kc = [torch.randn(B, KV_HEADS, C, HEAD_DIM, device=DEV, dtype=torch.bfloat16) for _ in range(layers)]
            vc = [torch.randn(B, KV_HEADS, C, HEAD_DIM, device=DEV, dtype=torch.bfloat16) for _ in range(layers)]
            x_in = torch.randn(B, HIDDEN, device=DEV, dtype=torch.bfloat16)

            def step():
                x = x_in
                for i in range(layers):
                    w = weights[i]
                    h = rms_norm(x, w["ln"])
                    qkv = h @ w["wqkv"].t()
                    q = qkv[:, : HEADS * HEAD_DIM].view(B, KV_HEADS, HEADS // KV_HEADS, HEAD_DIM)
                    # the new token's K and V go into the last cache slot (its position is C - 1)
                    kc[i][:, :, C - 1] = qkv[:, HEADS * HEAD_DIM : (HEADS + KV_HEADS) * HEAD_DIM].view(
                        B, KV_HEADS, HEAD_DIM
                    )
                    vc[i][:, :, C - 1] = qkv[:, (HEADS + KV_HEADS) * HEAD_DIM :].view(B, KV_HEADS, HEAD_DIM)
                    a = attention(q, kc[i], vc[i], False)
                    x = x + a.reshape(B, HEADS * HEAD_DIM) @ w["wo"].t()
                    g, u = (rms_norm(x, w["ln"]) @ w["wgu"].t()).chunk(2, dim=-1)
                    x = x + (F.silu(g) * u) @ w["wd"].t()
                return (x @ lm.t()).float().argmax(-1)

            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                for _ in range(2):
                    step()
            torch.cuda.current_stream().wait_stream(s)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                step()
            ms_graph, _ = timed(graph.replay, warmup=3, reps=20)
            ms_eager, _ = timed(step, warmup=1, reps=5)
            floor_bytes = weight_bytes + kv_bytes
            row = {
                "batch": B,
                "context": C,
                "weight_gb": weight_bytes / 1e9,
                "kv_gb": kv_bytes / 1e9,
                "graph_ms": ms_graph,
                "eager_ms": ms_eager,
                "achieved_gbs": floor_bytes / (ms_graph * 1e-3) / 1e9,
            }
            rows.append(row)
            print(
                f"decode B={B:>4} C={C:>5}: weights {row['weight_gb']:.1f} GB + KV {row['kv_gb']:.1f} GB; "
                f"graph {ms_graph:.2f} ms ({row['achieved_gbs']:.0f} GB/s), eager {ms_eager:.2f} ms"
            )
            RESULTS["parts"]["decode"] = rows
            save()
            del kc, vc, graph
            torch.cuda.empty_cache()


def copies():
    """Host <-> device copy bandwidth, pageable and pinned host memory (what a colocated trainer's offload moves
    over), 1 GiB and 4 GiB, median of 5."""
    rows = []
    for gib in (1, 4):
        n = gib << 28  # f32 elements
        dev = torch.empty(n, device=DEV, dtype=torch.float32).uniform_()
        for pinned in (False, True):
            host = torch.empty(n, dtype=torch.float32, pin_memory=pinned)
            ms_d2h, _ = timed(lambda: host.copy_(dev, non_blocking=pinned), warmup=1, reps=5)
            ms_h2d, _ = timed(lambda: dev.copy_(host, non_blocking=pinned), warmup=1, reps=5)
            row = {
                "gib": gib,
                "pinned": pinned,
                "d2h_gbs": n * 4 / (ms_d2h * 1e-3) / 1e9,
                "h2d_gbs": n * 4 / (ms_h2d * 1e-3) / 1e9,
            }
            rows.append(row)
            print(f"copy {gib} GiB {'pinned  ' if pinned else 'pageable'}: device->host {row['d2h_gbs']:.1f} GB/s, "
                  f"host->device {row['h2d_gbs']:.1f} GB/s")
            del host
        del dev
    RESULTS["parts"]["copies"] = rows
    save()


def layer_matmul_ms(weights, tokens, reps):
    """Median ms of one layer's matmuls (QKV, output, SwiGLU) over `tokens` tokens, forward only and forward +
    backward, and their forward FLOPs."""
    wqkv, wo, wgu, wd = weights
    x0 = torch.randn(tokens, HIDDEN, device=DEV, dtype=torch.bfloat16)

    def mm(x):
        a = x @ wqkv.t()
        b = a[:, : HEADS * HEAD_DIM] @ wo.t()
        g, u = (b @ wgu.t()).chunk(2, dim=-1)
        return (g * u) @ wd.t()

    def mm_f():
        with torch.no_grad():
            mm(x0)

    def mm_u():
        mm(x0.detach().requires_grad_(True)).sum().backward()
        for w in weights:
            w.grad = None

    flops = 2 * tokens * ((HEADS + 2 * KV_HEADS) * HEAD_DIM * HIDDEN + HIDDEN * HEADS * HEAD_DIM + 3 * HIDDEN * FFN)
    return timed(mm_f, warmup=2, reps=reps)[0], timed(mm_u, warmup=2, reps=reps)[0], flops


def layer_weights():
    shapes = [((HEADS + 2 * KV_HEADS) * HEAD_DIM, HIDDEN), (HIDDEN, HEADS * HEAD_DIM), (2 * FFN, HIDDEN), (HIDDEN, FFN)]
    return [torch.randn(*sh, device=DEV, dtype=torch.bfloat16, requires_grad=True) for sh in shapes]


def rate_row(att_flops, att_ms, mm_flops, mm_ms, **keys):
    """TFLOP/s of attention and of the matmuls, forward and forward + backward, and attention's share."""
    row = dict(keys)
    row["attention_forward_tflops"] = att_flops / (att_ms[0] * 1e-3) / 1e12
    row["attention_update_tflops"] = 3 * att_flops / (att_ms[1] * 1e-3) / 1e12
    row["matmul_forward_tflops"] = mm_flops / (mm_ms[0] * 1e-3) / 1e12
    row["matmul_update_tflops"] = 3 * mm_flops / (mm_ms[1] * 1e-3) / 1e12
    row["attention_over_matmul_rate_forward"] = row["attention_forward_tflops"] / row["matmul_forward_tflops"]
    row["attention_over_matmul_rate_update"] = row["attention_update_tflops"] / row["matmul_update_tflops"]
    return row


def rate_text(row):
    return (
        f"attention fwd {row['attention_forward_tflops']:4.0f} / fwd+bwd {row['attention_update_tflops']:4.0f} TF/s; "
        f"matmuls fwd {row['matmul_forward_tflops']:4.0f} / fwd+bwd {row['matmul_update_tflops']:4.0f} TF/s; "
        f"attention / matmul rate {row['attention_over_matmul_rate_forward']:.2f} / "
        f"{row['attention_over_matmul_rate_update']:.2f}"
    )


def attention_curve(lengths=(1024, 2048, 4096, 8192, 16384, 32768, 65536)):
    """Causal FlashAttention (Qwen2.5-7B's 28 query / 4 KV heads of 128) against one layer's matmuls (QKV, output,
    SwiGLU) at the same token count, forward and forward + backward: the rate of each, TFLOP/s."""
    rows = []
    weights = layer_weights()
    for L in lengths:
        mf, mu, mm_flops = layer_matmul_ms(weights, L, reps=7)
        row = rate_row(2 * HEADS * HEAD_DIM * L * L, attention_ms(L, reps=7), mm_flops, (mf, mu), tokens=L)
        rows.append(row)
        print(f"L={L:>6}: " + rate_text(row))
        RESULTS["parts"]["attention_curve"] = rows
        save()


def attention_packed(tokens=65536, lengths=(512, 1024, 2048, 4096, 8192, 16384, 32768)):
    """A trainer's micro-batch shape: `tokens` (verl's 7B scripts allow ~61k per GPU in an update) as tokens / L
    sequences of L tokens each, causal FlashAttention over all of them in one kernel (what the variable-length
    kernel does for equal lengths), against one layer's matmuls over the same tokens: the attention_efficiency a
    packed micro-batch of L-token samples would take."""
    mf, mu, mm_flops = layer_matmul_ms(layer_weights(), tokens, reps=7)
    rows = []
    for L in lengths:
        batch = tokens // L
        att = attention_ms(L, reps=7, batch=batch)
        row = rate_row(batch * 2 * HEADS * HEAD_DIM * L * L, att, mm_flops, (mf, mu), tokens=tokens,
                       sequence_tokens=L, sequences=batch)
        rows.append(row)
        print(f"{batch:>4} x {L:>6} tokens: " + rate_text(row))
        RESULTS["parts"]["attention_packed"] = rows
        save()


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    parts = sys.argv[2].split(",") if len(sys.argv) > 2 else ["ceilings", "train", "head", "decode"]
    for part in parts:
        t0 = time.time()
        try:
            globals()[part]()
        except Exception as e:
            print(f"{part} failed: {e!r}")
            RESULTS["parts"][part + "_error"] = repr(e)
            save()
        torch.cuda.empty_cache()
        print(f"[{part} took {time.time() - t0:.1f} s]", flush=True)
