"""Training: self-supervised pretraining and supervised fine-tuning (stages pretrain, finetune_*).

==================  ==========================================================================
``ssl``             the name → SSL objective table and the SSL wrapper around the backbone
``objectives``      the loss functions: InfoNCE, BYOL, masked patches, Pearson, CORN, smoothness…
``augment``         piano-aware augmentations of contract windows (SSL views)
``batches``         the window dataset, recording-grouped batches, validation split, pad masks
``loop``            the resumable training loop (warm-up + cosine schedule, AMP, early stopping)
``checkpoints``     RNG state, checkpoints and run folders keyed by a hash of params and inputs
``distributed``     devices, AMP dtype, torch.distributed set-up and cross-rank gathers
``pretrain``        the pretraining recipe and its frozen-embedding probe metric
``probe``           embedding of windows and the ridge / kNN probe on frozen embeddings
``finetune``        the supervised recipe: CV plan, losses, batches, fold-parallel CV, final model
==================  ==========================================================================
"""
