"""The ultra-small AST backbone, its heads, and save/load.

    from crescendai.model import build_model, HeadsConfig, load_backbone, save_model
    model = build_model(params.model, HeadsConfig(corn=True, local=True, n_timbre_classes=7))
    model.backbone.load_state_dict(load_backbone("models/pretrain").state_dict())  # SSL init
    out = model(x)                      # x (B, 128, 128) dB → {"embedding", "scores", ...}
    save_model(model, "models/finetune_ssl/model.pt", extra={"fold": 0})
    model = load_model("models/finetune_ssl")                # eval mode
"""

from crescendai.model.backbone import DB_CENTER, DB_SCALE, Backbone
from crescendai.model.bundle import (
    TEACHER_HEAD_FILE,
    HeadsConfig,
    Model,
    build_backbone,
    build_model,
    load_backbone,
    load_model,
    load_teacher_head,
    save_model,
    save_state_dict,
    save_teacher_head,
)
from crescendai.model.heads import (
    N_DIMS,
    N_LEVELS,
    CornHead,
    LocalHead,
    RegressionHead,
    RowTeacherHead,
    TimbreHead,
    corn_to_score,
)

__all__ = [
    "DB_CENTER", "DB_SCALE", "N_DIMS", "N_LEVELS", "Backbone", "CornHead",
    "HeadsConfig", "LocalHead", "Model", "RegressionHead", "RowTeacherHead", "TEACHER_HEAD_FILE", "TimbreHead",
    "build_backbone", "build_model", "corn_to_score", "load_backbone", "load_model", "load_teacher_head", "save_model",
    "save_state_dict", "save_teacher_head",
]
