"""Where each fitted variant lives (:data:`crescendai.core.config.VARIANTS`).

- ``ssl``: the pretrained backbone, frozen, + the probe head;
- ``scratch``: the same backbone at random init + the same head (with ``ssl``: the clean ablation of
  pretraining);
- ``fusion``: the pretrained embedding ⊕ the hand-crafted audio window features, one ridge head
  (:mod:`crescendai.evaluate.fusion`).

Each folder ``<models>/finetune_<variant>/`` holds ``model.pt`` + ``config.json`` and
``predictions.csv`` (out-of-fold and test rows).
"""

from __future__ import annotations

import os
from pathlib import Path

from crescendai.core.config import VARIANTS


def variant_dir(models_dir: str | os.PathLike[str], variant: str) -> Path:
    """``<models_dir>/finetune_<variant>``.

    Raises:
        ValueError: ``variant`` is not one of :data:`~crescendai.core.config.VARIANTS` (names the choices).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    return Path(models_dir) / f"finetune_{variant}"
