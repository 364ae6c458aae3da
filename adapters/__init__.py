"""Per-domain LoRA adapters: train, store, merge and sweep them (imported as `ax.adapters`).

Modules, one job each (import them directly; nothing heavy loads with the package):
  config      LoraTrainingConfig and lora_config.yaml with per-domain overrides
  dataset     DSPy examples / traces -> the client's exact prompt and completion, completion-only labels
  collate     pad-to-longest and packed batches (per batch, or rows of one width)
  varlen_attention  packed rows attend through flash attention's variable-length kernel (CUDA)
  fused_lora  LoRA linear layers trained in fewer passes
  compiled_layers   each decoder layer compiled for training (`torch_compile: true`)
  peft_model  the base for training (4-bit for QLoRA) with fresh LoRA layers
  train       Trainer-based training with eval, early stopping, checkpoints and resume
  store       PEFT format + ax_manifest.json, atomic saves, base-model checks, list/delete
  merge       fold into the base, or combine adapters (rsLoRA-safe)
  ablate      weight decay / rank / target-module sweeps over seeds with 95% intervals
  domain_ablation  a sweep on a domain: adapters trained on its train split, scored on its dev items
  cli         `ax train`, `ax adapters ...`, `ax merge`, `ax ablate`
"""
