"""LoRA training under torchrun: two CPU processes (gloo) train the adapter one process trains with the same global batch."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

SCRIPT = Path(__file__).parent / "scripts" / "train_once.py"


def run(command: list[str]) -> list[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return re.findall(r"rank-result .*", done.stdout)


def test_two_gloo_processes_train_the_single_process_adapter(tiny_model_dir, tmp_path):
    single = run([sys.executable, str(SCRIPT), str(tiny_model_dir), str(tmp_path / "single"), "4"])
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    ranks = run([torchrun, "--standalone", "--nproc_per_node", "2", str(SCRIPT), str(tiny_model_dir),
                 str(tmp_path / "ddp"), "2"])
    # Both ranks saw the whole global batch's loss and tokens; only rank 0 saved the adapter.
    assert sorted(line.split()[1] for line in ranks) == ["main=False", "main=True"]
    assert {line.split()[2:4] == single[0].split()[2:4] for line in ranks} == {True}
    assert sorted(line.split()[-1] for line in ranks) == ["saved=False", "saved=True"]
    one, two = (load_file(tmp_path / name / "adapter_model.safetensors") for name in ("single", "ddp"))
    assert one.keys() == two.keys()
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-5)
    assert (tmp_path / "ddp" / "ax_manifest.json").is_file() and not (tmp_path / ".runs" / "ddp").exists()
