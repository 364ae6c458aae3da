"""A script on ax exits with status 0: the model's worker stops before the interpreter finalizes.

Left running into finalization inside a torch call, the worker thread aborts the process
("terminate called without an active exception", status 134) after the script's work is done.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
import weakref

import pytest

from ax.client import Client
from ax.client.generation import GenerationParams, GenerationRequest
from ax.errors import AxError
from ax.inference.local import LocalBackend
from ax.model import load_model

# The same run three ways: closed by the atexit hook, closed by `with`, and exiting while calls
# that their callers abandoned are still decoding (the case that aborted).
_SCRIPT = """
import sys, threading, time
import dspy, ax
from ax.client import Client
from ax.inference.local import LocalBackend
from ax.model import load_model

mode, model = sys.argv[1], sys.argv[2]

def evaluate(lm):
    dspy.configure(lm=lm)
    devset = [dspy.Example(question=f"question {i} about the tenant", answer="x").with_inputs("question")
              for i in range(40)]
    evaluation = dspy.Evaluate(devset=devset, metric=lambda example, prediction, trace=None: 1.0,
                               num_threads=8, display_progress=False)
    print("score", evaluation(dspy.Predict("question -> answer")).score, flush=True)

if mode == "with":
    with ax.LM(model, cache=False, max_tokens=40) as lm:
        evaluate(lm)
    try:
        lm(messages=[{"role": "user", "content": "after the block"}])
    except Exception as exc:
        print("refused:", "closed" in str(exc), flush=True)
elif mode == "abandoned":
    # Built as ax.LM builds it, keeping the backend, whose decoding steps the script watches.
    backend = LocalBackend(load_model(model))
    lm = Client(backend, model_name="tiny", cache=False, max_field_tokens=2000).lm(max_tokens=40)
    evaluate(lm)
    steps = backend.batch_sizes
    dspy.configure(lm=lm.copy(max_tokens=2000))
    predict, started = dspy.Predict("question -> answer"), len(steps)
    for i in range(4):
        threading.Thread(target=predict, kwargs={"question": f"long {i}"}, daemon=True).start()
    while len(steps) < started + 5:
        time.sleep(0.01)
    before = len(steps)
    time.sleep(0.2)
    print("decoding at exit:", len(steps) > before, flush=True)
else:
    lm = ax.LM(model, cache=False, max_tokens=40, max_field_tokens=2000)
    evaluate(lm)
print("done", flush=True)
"""


def _run_script(mode: str, model_dir, tmp_path) -> subprocess.CompletedProcess:
    script = tmp_path / "script.py"
    script.write_text(_SCRIPT)
    return subprocess.run([sys.executable, str(script), mode, str(model_dir)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "AX_CACHE_DIR": str(tmp_path / "cache")})


@pytest.mark.parametrize("mode", ["never_closed", "with", "abandoned"])
def test_a_threaded_evaluation_script_exits_cleanly(mode, tiny_model_dir, tmp_path):
    result = _run_script(mode, tiny_model_dir, tmp_path)
    assert result.returncode == 0, f"exit status {result.returncode}:\n{result.stderr[-2000:]}"
    assert "score 100.0" in result.stdout
    assert result.stdout.rstrip().endswith("done")
    if mode == "with":
        assert "refused: True" in result.stdout
    if mode == "abandoned":
        assert "decoding at exit: True" in result.stdout


def _long_request() -> GenerationRequest:
    prompt = "<|im_start|>user\nthe tenant pays<|im_end|>\n<|im_start|>assistant\n"
    return GenerationRequest(prompt, None, GenerationParams(max_new_tokens=1500))


def test_close_fails_calls_in_flight_refuses_new_ones_and_is_idempotent(tiny_model_dir):
    backend = LocalBackend(load_model(str(tiny_model_dir)))
    client = Client(backend, model_name="tiny", cache=False)
    lm = client.lm()
    running = backend.batcher.submit(_long_request())
    while not backend.batch_sizes:  # the call is decoding
        threading.Event().wait(0.01)
    lm.close()
    with pytest.raises(AxError, match="closed"):
        running.result(timeout=0)
    assert not backend.batcher._worker.is_alive()
    with pytest.raises(AxError, match="closed"):
        backend.generate(_long_request())
    lm.close()
    client.close()  # closing again, through any view, changes nothing
    assert not backend.batcher._worker.is_alive()


def test_the_exit_registry_does_not_keep_closed_clients_alive(tiny_model_dir):
    from ax.inference import batcher as batcher_module

    backend = LocalBackend(load_model(str(tiny_model_dir)))
    with Client(backend, model_name="tiny", cache=False).lm() as lm:
        batcher = weakref.ref(backend.batcher)
        assert batcher() in batcher_module._live
    del lm, backend
    gc.collect()
    assert batcher() is None
