"""Forward and training-step throughput of our backbone vs. Hugging Face ``transformers`` AST.

Both models get the same configuration: hidden 256, 3 layers, 4 heads, MLP 1024, 16×16 patches,
128 mel × 128 frames, stride 16 (no overlap), dropout 0.3 (hidden and attention), a 19-output head
for the training step (MSE loss, AdamW). Same machine, same process, same batch (64 by default),
interleaved repeats, median time. Prints ``name, value, peer, ratio`` lines (windows/s; ratio =
ours / HF, higher is better).

    uv run python benchmarks/backbone_speed.py            # batch 64, threads = all cores
    uv run python benchmarks/backbone_speed.py --device cuda
    uv run python benchmarks/backbone_speed.py --threads 2 --profile   # + share of each op in a training step
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch
import torch.nn as nn


def build_ours(n_out: int) -> tuple[nn.Module, nn.Module]:
    from crescendai.core.config import ModelParams
    from crescendai.model.backbone import Backbone

    backbone = Backbone(ModelParams(dim=256, depth=3, heads=4, patch=16, dropout=0.3, drop_path=0.0))
    return backbone, nn.Sequential(backbone, nn.Linear(256, n_out))


def build_hf(n_out: int, attn: str) -> tuple[nn.Module, nn.Module]:
    from transformers import ASTConfig, ASTForAudioClassification, ASTModel

    cfg = ASTConfig(
        hidden_size=256, num_hidden_layers=3, num_attention_heads=4, intermediate_size=1024,
        hidden_dropout_prob=0.3, attention_probs_dropout_prob=0.3, patch_size=16,
        frequency_stride=16, time_stride=16, max_length=128, num_mel_bins=128, num_labels=n_out,
    )
    cfg._attn_implementation = attn
    return ASTModel(cfg), ASTForAudioClassification(cfg)


def timeit(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = leave default)")
    ap.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"], help="HF attention implementation")
    ap.add_argument("--compile", action="store_true", help="torch.compile our backbone (not HF)")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast for BOTH models (same precision)")
    ap.add_argument("--profile", action="store_true",
                    help="also print each model's top operators by share of a training step (torch.profiler)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device(args.device)
    x = (torch.rand(args.batch, 128, 128, device=dev) * -80.0)  # contract dB windows
    y = torch.rand(args.batch, 19, device=dev)
    ours_fwd, ours_train = build_ours(19)
    hf_fwd, hf_train = build_hf(19, args.attn)
    ours_fwd, ours_train = ours_fwd.to(dev), ours_train.to(dev)
    if args.compile:
        ours_fwd, ours_train = torch.compile(ours_fwd), torch.compile(ours_train)
    models = {"ours": (ours_fwd, ours_train), "hf": (hf_fwd.to(dev), hf_train.to(dev))}
    amp = (lambda: torch.autocast(dev.type, dtype=torch.bfloat16)) if args.bf16 else contextlib.nullcontext
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def fwd(name):
        m = models[name][0].eval()

        def run():
            with torch.inference_mode(), amp():
                out = m(x) if name == "ours" else m(input_values=x).pooler_output
            sync()
            return out
        return run

    def train(name):
        m = models[name][1].train()
        opt = torch.optim.AdamW(m.parameters(), lr=1e-4)

        def run():
            with amp():
                out = m(x) if name == "ours" else m(input_values=x).logits
            loss = nn.functional.mse_loss(out.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sync()
        return run

    results: dict[str, dict[str, list[float]]] = {"forward": {"ours": [], "hf": []}, "train_step": {"ours": [], "hf": []}}
    for kind, make in (("forward", fwd), ("train_step", train)):
        runs = {n: make(n) for n in ("ours", "hf")}
        for n in runs:  # warm-up
            runs[n]()
            runs[n]()
        for _ in range(args.repeats):  # interleave so load changes hit both equally
            for n in runs:
                results[kind][n].append(timeit(runs[n], 1))
    n_ours = sum(p.numel() for p in ours_fwd.parameters())
    n_hf = sum(p.numel() for p in hf_fwd.parameters())
    print(f"# device={args.device} threads={torch.get_num_threads()} batch={args.batch} "
          f"repeats={args.repeats} hf_attn={args.attn} compile={args.compile} bf16={args.bf16}")
    print("name, value, peer, ratio")
    print(f"backbone_params, {n_ours}, {n_hf}, {n_ours / n_hf:.3f}")
    for kind in ("forward", "train_step"):
        ours = args.batch / statistics.median(results[kind]["ours"])
        hf = args.batch / statistics.median(results[kind]["hf"])
        print(f"{kind}_windows_per_s, {ours:.1f}, {hf:.1f}, {ours / hf:.2f}")
    if args.profile:
        for name in ("ours", "hf"):
            print(f"# {name}: share of self time in 3 training steps (top operators)")
            for op, share in profile_shares(train(name), steps=3):
                print(f"{name}_op, {op}, {share:.1%}")


def profile_shares(step, steps: int, top: int = 6) -> list[tuple[str, float]]:
    """(operator, share of the total self CPU time) of ``steps`` calls of ``step``, largest first."""
    from torch.profiler import ProfilerActivity, profile

    step()  # warm-up outside the profile
    with profile(activities=[ProfilerActivity.CPU], acc_events=True) as prof:
        for _ in range(steps):
            step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    ranked = sorted(events, key=lambda e: -e.self_cpu_time_total)[:top]
    return [(e.key, e.self_cpu_time_total / total) for e in ranked]


if __name__ == "__main__":
    main()
