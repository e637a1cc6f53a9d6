"""Diagnostic: how much of a dimension's pooled out-of-fold r is the folds' label shift.

The pipeline's CV r pools the out-of-fold predictions of the four performer folds. A head that has no
signal on a dimension predicts near its training folds' mean, which is *low* when the held-out fold's
labels are high (its training folds lack that fold): pooled r then goes negative even without any
anti-correlation inside a fold. This prints, per dimension, the pooled r (the pipeline's figure), the
r inside each fold, and the r after removing each fold's mean from labels and predictions.

    uv run python docs/experiments/fold_shift.py [models/finetune_fusion/predictions.csv]

Not part of the pipeline: a record of the cause measured for issue 12's weak dimensions.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from crescendai.core.dims import DIMENSIONS


def main(path: str = "models/finetune_fusion/predictions.csv") -> None:
    df = pd.read_csv(path)
    s = df[(df["level"] == "segment") & (df["set"] == "oof")]
    print(f"{'dimension':<24} pooled r  fold-demeaned r  r inside each fold       fold label means")
    for d, dim in enumerate(DIMENSIONS):
        y, p = s[f"y_{d}"].to_numpy(), s[f"pred_{d}"].to_numpy()
        by = s.groupby("fold")
        yc = y - by[f"y_{d}"].transform("mean").to_numpy()
        pc = p - by[f"pred_{d}"].transform("mean").to_numpy()
        within = [np.corrcoef(g[f"y_{d}"], g[f"pred_{d}"])[0, 1] for _, g in by]
        print(f"{dim.key:<24} {np.corrcoef(y, p)[0, 1]:+.2f}     {np.corrcoef(yc, pc)[0, 1]:+.2f}            "
              f"{' '.join(f'{r:+.2f}' for r in within)}   {' '.join(f'{m:.2f}' for m in by[f'y_{d}'].mean())}")


if __name__ == "__main__":
    main(*sys.argv[1:])
