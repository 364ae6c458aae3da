"""Run presets: how much data, GEPA budget and LoRA training one optimization gets.

`quick` is sized for one domain end to end (four configurations, then the evaluator's test
split) on 2 CPU cores with the embedded SmolLM2-135M in under 15 minutes: 24 training and 8
validation examples, a GEPA budget of 40 metric calls (seed evaluation plus about 5 proposals),
LoRA adapters of 12 optimizer steps of 4 examples, and each configuration's ACE playbook adapted
for one epoch on 8 of the training examples (a generator, reflector and curator call each). See
optimizers/README.md for the measured time of each part. `light`, `medium` and `heavy` grow the
data and use dspy.GEPA's auto budgets of the same names; they are meant for a GPU or a patient CPU.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from ax.errors import AxError
from ax.optimizers.gepa_run import GepaSettings
from ax.optimizers.lora_step import LoraSettings
from ax.optimizers.run_files import read_json, write_json


class Preset(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    train_size: int | None = Field(None, gt=0)  # examples drawn from the train split; None: all of it
    val_size: int | None = Field(None, gt=0)  # examples drawn from the dev split for GEPA's validation
    gepa: GepaSettings
    lora: LoraSettings
    ace_epochs: int = Field(1, gt=0)  # epochs of the ACE playbook's offline adaptation
    ace_train_size: int | None = Field(None, gt=0)  # train examples ACE adapts on, drawn from train_size's; None: all
    test_items: int | None = Field(None, gt=0)  # `ax compare` answers the test split's first N items; None: all
    eval_threads: int = Field(16, gt=0)  # DSPy threads when answering test items (the client batches across them)


_SHORT_LORA = {"gradient_accumulation_steps": 1, "warmup_ratio": 0.0, "logging_steps": 5}
PRESETS: dict[str, Preset] = {
    "quick": Preset(
        name="quick", train_size=24, val_size=8, ace_train_size=8,
        gepa=GepaSettings(budget=40, num_threads=4),
        lora=LoraSettings(overrides={**_SHORT_LORA, "max_steps": 12, "per_device_batch_size": 4, "dev_fraction": 0.0,
                                     "save_steps": 1000}),
    ),
    "light": Preset(
        name="light", train_size=64, val_size=24, gepa=GepaSettings(budget="light", num_threads=8),
        lora=LoraSettings(overrides={**_SHORT_LORA, "num_epochs": 1, "per_device_batch_size": 8}),
    ),
    "medium": Preset(
        name="medium", train_size=128, val_size=48, gepa=GepaSettings(budget="medium", num_threads=8),
        lora=LoraSettings(overrides={"num_epochs": 2}),
    ),
    "heavy": Preset(name="heavy", gepa=GepaSettings(budget="heavy", num_threads=16), lora=LoraSettings()),
}


def get_preset(name: str) -> Preset:
    """A named preset, or one read from a JSON file (what `ax compare` writes for a custom Preset)."""
    if name in PRESETS:
        return PRESETS[name]
    if name.endswith(".json"):
        return read_json(Path(name), Preset)
    raise AxError(f"Unknown preset {name!r}; presets are {', '.join(PRESETS)}, or a preset .json file")


def preset_argument(preset: Preset, folder: Path) -> str:
    """What `--preset` must say to rerun with `preset`: its name, or a JSON file of a custom one written to `folder`."""
    if PRESETS.get(preset.name) == preset:
        return preset.name
    path = folder / f"preset-{preset.name}.json"
    write_json(path, preset)
    return str(path)
