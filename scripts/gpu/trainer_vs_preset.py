"""The analytic trainer's price of the passes that scripts/gpu/torch_phases.py timed (part "train": four decoder
layers of Qwen2.5-7B's shape, one causal sequence of L tokens), from the H200 and verl-fsdp2 presets, against the
measured times. Runs here, no GPU: `python3 scripts/gpu/trainer_vs_preset.py [torch_phases.json]` (default: the
H200 measurement in docs/gpu/). Needs `target/release/rlsim` (the presets come from `rlsim presets --json`).

Per pass the model charges (docs/cost-model.md, "Training"): FLOPs / (peak x matmul_efficiency x mfu), the
attention term divided by attention_efficiency, plus the activation traffic (activation_bytes_per_token of the
four layers, no LM head) at hbm x hbm_efficiency; x4 for an update with recomputation.
"""

import json
import subprocess
import sys

HIDDEN, HEADS, KV_HEADS, HEAD_DIM, FFN = 3584, 28, 4, 128, 18944

path = sys.argv[1] if len(sys.argv) > 1 else "docs/gpu/h200-2026-11-29-torch-phases.json"
measured = json.load(open(path))["parts"]["train"]
presets = json.loads(subprocess.run(["target/release/rlsim", "presets", "--json"], capture_output=True, check=True).stdout)
gpu = next(g for g in presets["gpus"] if g["name"] == "H200")
fw = next(f for f in presets["frameworks"] if f["name"] == "verl-fsdp2")
achievable = gpu["bf16_tflops"] * 1e12 * gpu["matmul_efficiency"]
hbm = gpu["hbm_gbytes_per_s"] * 1e9 * fw["hbm_efficiency"]
# ModelSpec::activation_bytes_per_token for these layers (q = heads x head_dim, kv = kv_heads x head_dim).
q, kv = HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM
bytes_per_token_layer = 2 * (10 * HIDDEN + 4 * q + 4 * kv + 3 * FFN)

variants = [
    ("presets (mfu %.3f, attention 1)" % fw["mfu"], fw["mfu"], 1.0),
    # fidelity.md's trial (eleventh session): mfu 0.71 on the H20 share of 0.838 then, 0.619 on today's 0.961.
    ("attention 0.45, mfu 0.619 (fidelity.md's trial)", 0.619, 0.45),
]
print(f"{'L':>6}  {'pass':<22} {'measured':>9}  " + "  ".join(f"{name:>44}" for name, _, _ in variants))
for row in measured:
    L, layers = row["tokens"], row["layers"]
    attention = 2 * layers * HEADS * HEAD_DIM * L * L
    linear = row["forward_flops"] - attention
    traffic = layers * bytes_per_token_layer * L * fw["activation_traffic"] / hbm
    for label, passes, key in (("forward", 1, "forward_ms"), ("update, recomputation", 4, "update_recompute_ms")):
        cells = []
        for _, mfu, attn in variants:
            rate = achievable * mfu
            s = passes * (linear / rate + attention / (rate * attn) + traffic)
            err = s * 1e3 / row[key] - 1
            cells.append(f"{s * 1e3:9.1f} ms ({err * 100:+5.1f} %)".rjust(44))
        print(f"{L:>6}  {label:<22} {row[key]:7.1f} ms  " + "  ".join(cells))
