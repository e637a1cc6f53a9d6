"""The tutor's backbone pass: onnxruntime (the bundle's ``scoring.onnx``, what the CLI runs) beside
torch (the same weights, ``model.pt``), and torch with int8 dynamic quantisation of its linear layers
(not shipped: shown because it is the obvious next step for the warm 10-minute goal).

Same process, same windows (the labelled cache's first ``--windows`` windows, or random contract
windows without it), batches of 16 as the tutor, 2 threads, interleaved repeats, median time. Prints
``name, value, peer, ratio`` lines (windows/s; ratio = value / peer, higher is better) and the
relative change of the embedding under int8.

    uv run python benchmarks/runtime_speed.py [--model models/tutor] [--windows 600]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np


def windows(n: int) -> np.ndarray:
    """float32 [n, 128, 128] dB: the labelled cache's first windows, else uniform in [-80, 0]."""
    cache = Path("data/features/labelled/windows.npy")
    if cache.is_file():
        w = np.load(cache, mmap_mode="r")
        if len(w) >= n:
            return np.asarray(w[:n], np.float32)
    return np.random.default_rng(0).uniform(-80, 0, (n, 128, 128)).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/tutor", help="a tutor bundle with scoring.onnx")
    ap.add_argument("--windows", type=int, default=600)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    import onnxruntime as ort
    import torch

    from crescendai.model import load_model

    torch.set_num_threads(2)
    graph = Path(args.model, "scoring.onnx")
    if not graph.is_file():
        raise SystemExit(f"{graph}: missing; run `uv run dvc repro` (the calibrate stage writes it)")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = 2, 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(graph), opts, providers=["CPUExecutionProvider"])
    backbone = load_model(args.model).backbone.eval()
    int8 = torch.ao.quantization.quantize_dynamic(backbone, {torch.nn.Linear}, dtype=torch.qint8)
    x = windows(args.windows)
    full = np.zeros((16, 128), bool)

    def onnx() -> np.ndarray:
        return np.concatenate([session.run(["embedding"], {"db": x[i : i + 16], "pad_mask": full[: len(x[i : i + 16])]})[0]
                               for i in range(0, len(x), 16)])

    def run_torch(net) -> np.ndarray:
        with torch.inference_mode():
            return np.concatenate([net(torch.from_numpy(x[i : i + 16])).numpy() for i in range(0, len(x), 16)])

    runs = {"onnxruntime": onnx, "torch": lambda: run_torch(backbone), "torch_int8": lambda: run_torch(int8)}
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    rate = {k: len(x) / statistics.median(v) for k, v in times.items()}
    ref = run_torch(backbone)
    change = float(np.linalg.norm(run_torch(int8) - ref) / np.linalg.norm(ref))
    diff = float(np.abs(onnx() - ref).max())
    print(f"# {len(x)} windows, batches of 16, 2 threads; max |onnxruntime − torch| embedding {diff:.1e}; "
          f"int8 changes the embedding by {change:.1%} (relative norm)")
    print("name, value, peer, ratio")
    print(f"backbone_onnxruntime_windows_per_sec, {rate['onnxruntime']:.0f}, {rate['torch']:.0f}, "
          f"{rate['onnxruntime'] / rate['torch']:.2f}")
    print(f"backbone_torch_int8_windows_per_sec, {rate['torch_int8']:.0f}, {rate['torch']:.0f}, "
          f"{rate['torch_int8'] / rate['torch']:.2f}")


if __name__ == "__main__":
    main()
