"""The in-process inference engine: the `LocalBackend` that `ax.LM` runs a local model on.

It completes the client's `GenerationRequest`s (`ax.client` takes it behind its `Backend` protocol,
next to the remote backend) and never imports the client. Modules (import them directly; nothing
heavy loads with the package):
  generation     what one generation asks for and returns (GenerationRequest, GenerationParams, Generation)
  chat           a chat rendered with the model's chat template (shared with the remote backend and training)
  local          LocalBackend: one base model, LoRA adapters loaded by name, batched generation
  batcher        one worker thread serving the calls of many threads (continuous batching)
  rows           the rows decoded together: adapter, constraint, stops and generator per row
  kv_cache       KV "rooms": each row's keys and values reserved for its whole answer
  row_attention  each row attends to its own room only (a joining row prefilled beside decoding ones)
  lora_rows      each adapter's LoRA on its own run of a step's rows (slices, not PEFT's per-row index)
  prefix_cache   the states of shared prompt prefixes, reused across calls
  speculation    prompt-lookup drafts: a greedy row's repeated tokens checked several a step
  constraints    token-level constraints that make a field parse (choices, numbers, lists of numbers)
  cpu_kernels    fp32 linear layers on oneDNN-packed weights on a CPU
"""
