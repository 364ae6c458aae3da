"""Per-domain LoRA adapters: train and merge them (imported as `ax.adapters`).

Modules, one job each (import them directly; nothing heavy loads with the package):
  config      LoraTrainingConfig and lora_config.yaml with per-domain overrides
  dataset     DSPy examples / traces -> the client's exact prompt and completion, completion-only labels
  collate     pad-to-longest and packed batches (per batch, or rows of one width)
  kernels     GPU training speed-ups: varlen attention, fused and shared-input LoRA, compiled layers
  completion_loss  the loss from logits at completion positions only
  peft_model  the base for training (4-bit for QLoRA) with fresh LoRA layers
  train       Trainer-based training with eval, early stopping, checkpoints and resume
  merge       fold into the base, or combine adapters (rsLoRA-safe)
  cli         `ax train`, `ax adapters ...`, `ax merge`, `ax ablate`

Their file format and store (PEFT files + ax_manifest.json, atomic saves, base-model checks,
list/delete) is `ax.adapter_store`, below the client that loads them; sweeps are in `ax.experiments`.
"""
