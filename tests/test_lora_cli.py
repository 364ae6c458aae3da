"""The adapter commands end to end on the tiny model and a registered toy domain."""

from __future__ import annotations

import dspy
import typer
from typer.testing import CliRunner

from ax.adapter_store import list_adapters, read_manifest
from ax.adapters.cli import adapters_app, merge_cmd, train_cmd

app = typer.Typer()
app.command("train")(train_cmd)
app.command("merge")(merge_cmd)
app.add_typer(adapters_app, name="adapters")
runner = CliRunner()


class Parity(dspy.Signature):
    """Say whether the number is odd."""

    question: str = dspy.InputField()
    answer: str = dspy.OutputField()


def register_toy_domain() -> None:
    from ax.programs.domain import Domain
    from ax.programs.generation import Splits
    from ax.programs.metrics import label_metric
    from ax.programs.modules import PredictProgram
    from ax.programs.registry import register_domain

    class ParityProgram(PredictProgram):
        signature = Parity

    def examples(numbers):
        return [dspy.Example(question=f"Is {i} odd?", answer="yes" if i % 2 else "no").with_inputs("question")
                for i in numbers]

    register_domain(Domain(name="lora-toy", program=ParityProgram, metric=label_metric("answer"),
                           data=Splits(train=examples(range(8)), dev=examples(range(8, 10)), test=examples([10]))),
                    replace=True)


def test_train_list_show_merge_delete(tiny_model_dir, tmp_path):
    register_toy_domain()
    config = tmp_path / "lora.yaml"
    config.write_text("lora:\n  per_device_batch_size: 4\n  save_steps: 100\n  learning_rate: 1.0e-3\n"
                      "domains:\n  lora-toy:\n    r: 4\n")
    store = tmp_path / "store"
    common = ["--domain", "lora-toy", "--config", str(config), "--base-model", str(tiny_model_dir), "--max-steps", "2"]

    result = runner.invoke(app, ["train", *common, "--root", str(store), "--weight-decay", "0"])
    assert result.exit_code == 0, result.output
    assert "steps=2" in result.output and "Saved adapter 'lora-toy'" in result.output
    manifest = read_manifest(store / "lora-toy")
    assert manifest.config["r"] == 4 and manifest.config["weight_decay"] == 0.0  # file's domain override, then flag
    assert manifest.metrics["train_examples"] == 8 and manifest.metrics["dev_examples"] == 2

    assert runner.invoke(app, ["train", *common, "--output", str(store / "second")]).exit_code == 0
    listed = runner.invoke(app, ["adapters", "list", "--root", str(store)], terminal_width=200)
    assert "lora-toy" in listed.output and "second" in listed.output
    shown = runner.invoke(app, ["adapters", "show", "lora-toy", "--root", str(store)])
    assert manifest.adapter_fingerprint in shown.output

    merged = runner.invoke(app, ["merge", "lora-toy", "second", "--root", str(store), "--output", str(store / "both"),
                                 "--base-model", str(tiny_model_dir), "--method", "linear", "--weights", "0.5,0.5"])
    assert merged.exit_code == 0, merged.output
    assert [s.name for s in read_manifest(store / "both").merged_from] == ["lora-toy", "second"]

    assert runner.invoke(app, ["adapters", "delete", "second", "--root", str(store), "--yes"]).exit_code == 0
    assert [a.name for a in list_adapters(store)] == ["both", "lora-toy"]


def test_errors_are_one_line_not_tracebacks(tmp_path):
    bad = tmp_path / "lora.yaml"
    bad.write_text("lora:\n  rank: 4\n")
    result = runner.invoke(app, ["train", "--domain", "legal", "--config", str(bad)])
    assert result.exit_code == 1 and "lora.rank = 4" in result.output and "Traceback" not in result.output
    missing = runner.invoke(app, ["adapters", "show", "nope", "--root", str(tmp_path)])
    assert missing.exit_code == 1 and "No adapter named 'nope'" in missing.output
    weights = runner.invoke(app, ["merge", "a", "--output", str(tmp_path / "m"), "--weights", "x", "--root", str(tmp_path)])
    assert weights.exit_code == 1 and "No adapter named 'a'" in weights.output
