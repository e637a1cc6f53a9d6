"""The real pipeline on tiny params: `dvc repro` end to end in a temporary copy of the repository,
then a fine-tuning parameter change must rerun fine-tuning and what follows, nothing upstream."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

TINY: dict[str, dict[str, object]] = {
    "generate": {"n_performers": 5, "n_pieces": 2, "n_ssl_pieces": 3, "ssl_duration_sec": 6.0,
                 "n_phone": 1},
    "render": {"n_pianos": 2},
    "split": {"n_folds": 3, "test_fraction": 0.2},
    "preprocess": {"workers": 1},
    "model": {"patch": 16, "dim": 32, "depth": 1, "heads": 2},  # 16: the teacher targets have 8 rows
    "pretrain": {"epochs": 1, "batch_size": 16, "patience": 1},
    "finetune": {"epochs": 1, "batch_size": 16, "time_budget_sec": 0.0, "max_windows_per_segment": 3},
    "eval": {"n_bootstrap": 20},
}
EXPECT_RERUN = {"finetune_ssl", "finetune_scratch", "finetune_fusion", "eval@ssl", "eval@scratch", "eval@fusion",
                "compare", "calibrate"}


def _tiny_params(src: Path, dst: Path, overrides: dict[str, dict[str, object]]) -> None:
    from ruamel.yaml import YAML

    yaml = YAML()
    params = yaml.load(src.read_text())
    for section, values in overrides.items():
        for key, value in values.items():
            if section in params and key in params[section]:  # only keys the repo has
                params[section][key] = value
    with dst.open("w") as f:
        yaml.dump(params, f)


def _run(args: list[str], cwd: Path) -> str:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc.stdout + proc.stderr


def _ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.mark.slow
def test_dvc_repro_tiny_then_finetune_param_reruns_only_downstream(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, repo / name)
    for d in ("stages", "src"):
        shutil.copytree(ROOT / d, repo / d, ignore=shutil.ignore_patterns("__pycache__"))
    _tiny_params(ROOT / "params.yaml", repo / "params.yaml", TINY)
    dvc = [sys.executable, "-m", "dvc"]
    _run(["git", "init", "-q"], repo)
    _run([*dvc, "init", "-q"], repo)
    _run([*dvc, "config", "core.analytics", "false"], repo)

    first = _run([*dvc, "repro"], repo)
    assert EXPECT_RERUN | {"pretrain", "preprocess"} <= _ran(first)
    for m in ("eval_ssl", "eval_scratch", "eval_fusion", "ssl_vs_scratch", "calibration"):
        assert (repo / "metrics" / f"{m}.json").is_file(), m
    for f in ("model.pt", "config.json", "calibration.json"):
        assert (repo / "models" / "tutor" / f).is_file(), f
    runtime = json.loads((repo / "metrics" / "calibration.json").read_text())["tutor_runtime"]
    assert (runtime == "onnxruntime") == (repo / "models" / "tutor" / "scoring.onnx").is_file(), runtime
    assert "gain" in (repo / "metrics" / "ssl_vs_scratch.json").read_text()
    assert _run([*dvc, "status"], repo).strip().endswith("up to date.")

    _tiny_params(repo / "params.yaml", repo / "params.yaml", {"finetune": {"lr": 0.002}})
    status = _run([*dvc, "status"], repo)
    assert "finetune_ssl" in status and "pretrain" not in status and "preprocess" not in status
    second = _run([*dvc, "repro"], repo)
    assert _ran(second) == EXPECT_RERUN, _ran(second)
    assert _run([*dvc, "status"], repo).strip().endswith("up to date.")
