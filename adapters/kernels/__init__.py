"""Training speed-ups for GPUs: each patches a model inside a `with` block and leaves its results unchanged.

Modules (import them directly; nothing loads with the package):
  varlen_attention   packed rows attend through flash attention's variable-length kernel (CUDA)
  fused_lora         LoRA linear layers trained in fewer passes over their activations
  shared_lora_input  LoRA layers reading one input compute their low-rank products in one matmul
  compiled_layers    each decoder layer compiled on its own (`torch_compile: true`)
"""
