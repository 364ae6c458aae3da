"""Train one adapter on the tiny model (run as `python` or under `torchrun`): tests/test_distributed_train.py."""

import sys
from pathlib import Path

from ax.adapters.config import LoraTrainingConfig
from ax.adapters.dataset import TrainingPair
from ax.adapters.train import train_and_save
from ax.client.prompting import completion_text, render_chat
from ax.model import load_model

model_dir, target, per_device_batch = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
base = load_model(model_dir)
pairs = [TrainingPair(prompt=render_chat(base.tokenizer, [{"role": "user", "content": f"Is {i} odd?"}]),
                      completion=completion_text([("answer", "yes" if i % 2 else "no")])) for i in range(16)]
config = LoraTrainingConfig(per_device_batch_size=per_device_batch, learning_rate=1e-2, warmup_ratio=0.0,
                            lora_dropout=0.0, r=8, lora_alpha=16, dev_fraction=0.0, logging_steps=1, max_steps=4,
                            save_steps=100, batching="packing")
result, manifest = train_and_save(base, pairs, config, domain="parity", target=target)
print(f"rank-result main={result.main_process} loss={result.metrics.train_loss:.6f} "
      f"tokens={result.metrics.tokens_seen} saved={manifest is not None}")
