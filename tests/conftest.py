"""Shared fixtures: a tiny random-init model made once per session (no download)."""

from __future__ import annotations

import os

# BLAS threads spin-wait on small matrix products: on 2 cores one thread each is much faster.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pytest  # noqa: E402

# Tests never reach a hub; a missing local file must fail fast instead of trying one.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

# On a CPU the tiny random models run in fp32, as before bf16 became the CPU default: bf16 is slower at
# their width, and tests compare batched answers with single ones token for token. GPUs keep bf16.
if not torch.cuda.is_available():
    os.environ.setdefault("AX_DTYPE", "float32")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from tiny_model import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tiny_adapters(tiny_model_dir, tmp_path_factory):
    """Two random LoRA adapters for the tiny model that answer clearly differently."""
    from tiny_model import make_tiny_adapter

    root = tmp_path_factory.mktemp("tiny-adapters")
    return {name: make_tiny_adapter(tiny_model_dir, root / name, seed=seed) for name, seed in (("alpha", 1), ("beta", 2))}


@pytest.fixture
def tiny_client(tiny_model_dir):
    """A client on the tiny model with the response cache off."""
    from ax.client import Client
    from ax.inference.local import LocalBackend
    from ax.model import load_model

    backend = LocalBackend(load_model(str(tiny_model_dir)))
    yield Client(backend, model_name="tiny", cache=False)
    backend.close()


def crash_training_at_step(monkeypatch, step: int) -> None:
    """Make the adapter trainer raise RuntimeError("power cut") when it starts step `step` (1-based)."""
    from ax.adapters.train import AdapterTrainer

    real = AdapterTrainer.compute_loss

    def crash(self, *args, **kwargs):
        if self.state.global_step == step - 1:
            raise RuntimeError("power cut")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(AdapterTrainer, "compute_loss", crash)


@pytest.fixture(autouse=True)
def _domain_registry():
    """Domains a test registers (or loads by name) are forgotten after it, so tests don't depend on their order."""
    from ax.programs import registry

    saved = dict(registry._registered)
    yield
    registry._registered.clear()
    registry._registered.update(saved)
