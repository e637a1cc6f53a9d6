"""benchmarks/run_all.py: line parsing and tolerance of missing or failing scripts."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

spec = importlib.util.spec_from_file_location("run_all", Path(__file__).parents[1] / "benchmarks" / "run_all.py")
run_all = importlib.util.module_from_spec(spec)
sys.modules["run_all"] = run_all  # dataclasses look their module up
spec.loader.exec_module(run_all)


def test_parse_lines_takes_the_last_three_fields_and_notes():
    rows, notes = run_all.parse_lines(
        "# device cpu\nname, value, peer, ratio\nx, 1.0, 2.0, 0.5\n"
        "contract windows/s (librosa reference, 10 min), 900, -, -\nnot a row\n")
    assert rows == [("x", "1.0", "2.0", "0.5"), ("contract windows/s (librosa reference, 10 min)", "900", "-", "-")]
    assert notes == ["device cpu"]


def test_missing_and_failing_scripts_give_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(run_all, "HERE", tmp_path)
    (tmp_path / "bad.py").write_text("import sys; print('a, 1, 2, 0.5'); sys.exit('boom')\n")
    rows, _, _ = run_all.run_bench(run_all.Bench("m", "missing.py", "missing thing"), False, 30)
    assert rows[0].value == "not available"
    rows, _, _ = run_all.run_bench(run_all.Bench("b", "bad.py", "bad thing"), False, 30)
    assert rows[0].name == "a" and rows[-1].value == "failed" and "boom" in rows[-1].ratio
    table = run_all.render(rows, markdown=True)
    assert table.startswith("| benchmark | figure |") and "failed" in table
