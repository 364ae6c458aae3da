"""Joint strategies: chains of optimization steps (`gepa`, `lora`, `ace`) such as `gepa->lora->gepa`.

Each step takes what the earlier steps left (program state, adapter, playbook) and adds to it:

- `gepa` evolves the program's instructions on the LM with the current adapter (so `lora->gepa`
  evolves prompts for the adapted model);
- `lora` trains a new adapter (or one per predictor) on the program as it stands, from its
  accepted traces and labels (so `gepa->lora` trains on the GEPA-optimized prompts, as
  BetterTogether does);
- `ace` grows an ACE playbook that the program then reads through its `context` input, from
  the program's answers with the current adapter (`optimize` ends every configuration with it
  unless told not to: see `with_playbook`).

Every prefix of a strategy is a stage with its own folder under `<seed dir>/stages/`, named by
its steps (`gepa`, `gepa-lora`, ...), holding the step's files and a `stage.json` once done.
Strategies that share a prefix share its stages (the `gepa` configuration and `gepa->lora`
run GEPA once), and a rerun skips finished stages and resumes an interrupted one.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dspy
from rich.console import Console

from ax.adapters.dataset import TrainingPair
from ax.client.client import AxLM
from ax.context import ContextAssembler, Playbook, PlaybookLearner, PlaybookStore, WithContext
from ax.errors import AxError
from ax.client.cost import Cost, CostMeter
from ax.optimizers.gepa_run import run_gepa
from ax.optimizers.lora_step import (
    AdapterRef,
    collect_pairs,
    collect_predictor_pairs,
    run_precision,
    train_into_client,
    training_key,
)
from ax.optimizers.manifest import (
    PROGRAM_FILE, Artifacts, PlaybookRef, StepRecord, load_relative, save_relative,
)
from ax.optimizers.presets import Preset
from ax.optimizers.quiet import quiet_console
from ax.optimizers.run_files import own_program, save_program
from ax.programs.domain import Domain

STEPS = ("gepa", "lora", "ace")
SEPARATOR = "->"
STAGE_FILE = "stage.json"
LORA_LOG_FILE = "lora_log.txt"


def parse_strategy(text: str) -> tuple[str, ...]:
    """The steps of a strategy such as 'gepa->lora' ('' or 'baseline': none); unknown steps are an AxError."""
    text = text.strip()
    if text in ("", "baseline"):
        return ()
    steps = tuple(part.strip() for part in text.split(SEPARATOR))
    unknown = [step for step in steps if step not in STEPS]
    if unknown:
        raise AxError(f"Unknown optimization step {', '.join(map(repr, unknown))} in strategy {text!r}: "
                      f"steps are {', '.join(STEPS)}, joined with '{SEPARATOR}' (e.g. 'gepa->lora->gepa')")
    return steps


def strategy_name(steps: tuple[str, ...]) -> str:
    return SEPARATOR.join(steps)


def with_playbook(steps: tuple[str, ...]) -> tuple[str, ...]:
    """`steps` ending in an `ace` step: the playbook is adapted last, with the program and adapter
    the earlier steps made, so it is written from what that configuration actually answers."""
    return steps if steps[-1:] == ("ace",) else (*steps, "ace")


def subset(examples: list[dspy.Example], size: int | None, salt: str) -> list[dspy.Example]:
    """A fixed sample of `size` examples (in split order), the same for every seed and configuration."""
    if size is None or size >= len(examples):
        return list(examples)
    chosen = set(random.Random(salt).sample(range(len(examples)), size))
    return [e for i, e in enumerate(examples) if i in chosen]


@dataclass
class StrategyContext:
    """Everything the steps of one domain and seed share."""

    domain: Domain
    lm: dspy.BaseLM  # an AxLM on an in-process model, or any DSPy LM where no adapter trains
    trainset: list[dspy.Example]
    valset: list[dspy.Example]
    preset: Preset
    seed: int
    seed_dir: Path
    reflection_lm: dspy.BaseLM | None = None  # None: the local model (GEPA: its base weights; ACE: the configuration's LM)
    console: Console | None = None
    show_progress: bool = True

    @property
    def tokenizer(self) -> Any:
        """The local model's tokenizer (to count context tokens); None for other LMs."""
        return self.lm.client.tokenizer if isinstance(self.lm, AxLM) else None

    def build(self, state: Artifacts, stage_dir: Path) -> tuple[dspy.Module, Any]:
        """The state's program and the LM answering with its adapter(s), built as the evaluator builds them."""
        return state.configuration(self.domain.name, stage_dir.name).build(self.domain, self.lm)

    def stage_dir(self, steps: tuple[str, ...]) -> Path:
        return self.seed_dir / "stages" / ("-".join(steps) or "baseline")


def _gepa(state: Artifacts, ctx: StrategyContext, stage_dir: Path) -> Artifacts:
    program, lm = ctx.build(state, stage_dir)
    settings = ctx.preset.gepa.model_copy(update={"seed": ctx.seed})
    optimized, outcome = run_gepa(program, trainset=ctx.trainset, valset=ctx.valset, metric=ctx.domain.metric,
                                  lm=lm, settings=settings, run_dir=stage_dir,
                                  reflection_lm=ctx.reflection_lm, console=ctx.console,
                                  show_progress=ctx.show_progress)
    summary = {"best_val_score": outcome.best_val_score, "seed_val_score": outcome.seed_val_score,
               "candidates": outcome.candidates, "accepted": outcome.stall.accepted,
               "proposals": outcome.stall.proposals, "stalled": outcome.stall.stalled}
    step = StepRecord(step="gepa", stage_dir=stage_dir, cost=outcome.cost, summary=summary)
    program_file = save_program(own_program(optimized), stage_dir / PROGRAM_FILE)
    return state.model_copy(update={"program_file": program_file, "steps": [*state.steps, step]})


def _lora(state: Artifacts, ctx: StrategyContext, stage_dir: Path) -> Artifacts:
    program, lm = ctx.build(state, stage_dir)
    settings = ctx.preset.lora
    meter = CostMeter(lm)
    name = f"{ctx.domain.name}-{stage_dir.name}-s{ctx.seed}"
    collecting: dict[str, Any] = dict(lm=lm, metric=ctx.domain.metric, settings=settings, name=ctx.domain.name,
                                      domain=ctx.domain)
    with quiet_console(stage_dir / LORA_LOG_FILE):
        if settings.adapters == "shared":
            pairs, rollouts = collect_pairs(program, ctx.trainset, **collecting)
            collect_cost = meter.stop(rollouts=rollouts)
            adapter, train_cost, summary = _train(lm, pairs, ctx, name, stage_dir)
            update: dict[str, Any] = {"adapter": adapter, "predictor_adapters": {}}
        else:
            groups, rollouts = collect_predictor_pairs(program, ctx.trainset, **collecting)
            collect_cost = meter.stop(rollouts=rollouts)
            if not groups:
                raise AxError(f"No training data for the adapters of {name!r}: no run was accepted by the metric "
                              "and no predictor's inputs and outputs are labelled; lower min_score")
            # Adapter names become PEFT module keys, which cannot hold the dots of nested predictor names.
            trained = {predictor: _train(lm, pairs, ctx, f"{name}-{predictor.replace('.', '_')}", stage_dir)
                       for predictor, pairs in groups.items()}
            train_cost = sum((cost for _, cost, _ in trained.values()), Cost())
            summary = {"adapters": settings.adapters, "train_pairs": sum(map(len, groups.values())),
                       "training_data": settings.data, "predictors": {p: part for p, (_, _, part) in trained.items()}}
            update = {"adapter": None, "predictor_adapters": {p: adapter for p, (adapter, _, _) in trained.items()}}
    step = StepRecord(step="lora", stage_dir=stage_dir, cost=collect_cost + train_cost, summary=summary)
    program_file = save_program(own_program(program), stage_dir / PROGRAM_FILE)  # the same prompts, beside the adapter
    return state.model_copy(update={**update, "program_file": program_file, "steps": [*state.steps, step]})


def _train(lm: AxLM, pairs: list[TrainingPair], ctx: StrategyContext, name: str,
           stage_dir: Path) -> tuple[AdapterRef, Cost, dict[str, Any]]:
    """One adapter trained on `pairs` (or copied from an earlier stage's with the same training key), and its summary."""
    settings = ctx.preset.lora
    config = run_precision(settings.training_config(ctx.domain.name, ctx.seed), lm)
    key = training_key(pairs, config, ctx.lm.client.base_fingerprint)
    earlier = _trained_adapter(ctx, key)
    adapter, cost = train_into_client(lm, pairs, config, name=name, target=stage_dir / name, domain=ctx.domain,
                                      training_data=settings.data, same_as=earlier)
    return adapter, cost, {"adapter": name, "train_pairs": len(pairs), "training_data": settings.data,
                           "train_loss": adapter.metrics.get("train_loss"), "training_key": key,
                           "copied_from": str(earlier) if earlier else None}


def _trained_adapter(ctx: StrategyContext, key: str) -> Path | None:
    """An adapter a finished LoRA stage of this domain and seed trained with the same training key."""
    for done in sorted((ctx.seed_dir / "stages").glob(f"*/{STAGE_FILE}")):
        state = load_relative(done, Artifacts)
        if not state.steps:
            continue
        summary = state.steps[-1].summary
        if state.adapter is not None and summary.get("training_key") == key:
            return state.adapter.path
        for predictor, adapter in state.predictor_adapters.items():
            if summary.get("predictors", {}).get(predictor, {}).get("training_key") == key:
                return adapter.path
    return None


def _ace(state: Artifacts, ctx: StrategyContext, stage_dir: Path) -> Artifacts:
    store = PlaybookStore(stage_dir / "playbooks")
    program, lm = ctx.build(state, stage_dir)  # the generator answers with the configuration's adapter
    trainset = subset(ctx.trainset, ctx.preset.ace_train_size, f"{ctx.domain.name}-ace")
    key = _ace_key(state, ctx, trainset)
    resumed = store.path(ctx.domain.name).is_file()  # an interrupted ACE step: continue with the playbook it saved
    earlier = None if resumed else _adapted_playbook(ctx, key)
    if resumed:
        playbook = store.load(ctx.domain.name)
    elif earlier is not None:
        playbook = PlaybookStore(earlier.playbook.path.parent.parent).load(ctx.domain.name, create=False)
    elif state.playbook is not None:
        playbook = program.assembler.playbook
    else:
        playbook = Playbook(domain=ctx.domain.name)
    if state.playbook is None:
        program = WithContext(program, ContextAssembler(playbook, tokenizer=ctx.tokenizer))
    program.assembler.playbook = playbook
    if earlier is None:
        reflection = ctx.reflection_lm or lm.copy()  # a local reflector is the configuration's own LM, adapter included
        meter = CostMeter(lm, reflection)
        learner = PlaybookLearner(program, ctx.domain.metric, store=store, lm=reflection)
        with dspy.context(lm=lm):
            report = learner.offline(trainset, epochs=ctx.preset.ace_epochs, seed=ctx.seed)
        cost, learned = meter.stop(rollouts=report.processed), {"mean_score_per_epoch": report.mean_score_per_epoch}
    else:
        # The same program, playbook and adapters on the same items adapt the same playbook: `gepa->ace`
        # after a GEPA stage that accepted nothing would only adapt again what `ace` adapted.
        done = earlier.steps[-1]
        cost, learned = Cost(), {"mean_score_per_epoch": done.summary.get("mean_score_per_epoch"),
                                 "copied_from": done.stage_dir.name}
    path = store.save(playbook)
    tokens = program.assembler.count_tokens(playbook.render()) if ctx.tokenizer is not None else None
    ref = PlaybookRef(path=path, version=playbook.version, bullets=len(playbook.bullets), tokens=tokens)
    step = StepRecord(step="ace", stage_dir=stage_dir, cost=cost,
                      summary={"bullets": len(playbook.bullets), "train_items": len(trainset),
                               "epochs": ctx.preset.ace_epochs, **learned, "ace_key": key})
    program_file = save_program(own_program(program), stage_dir / PROGRAM_FILE)
    return state.model_copy(update={"program_file": program_file, "playbook": ref, "steps": [*state.steps, step]})


def _ace_key(state: Artifacts, ctx: StrategyContext, trainset: list[dspy.Example]) -> str:
    """What decides an ACE step's playbook: the program and playbook it starts from, the adapters that
    answer, the LMs, the items it adapts on and its settings (seed included)."""
    adapters = ([state.adapter.fingerprint] if state.adapter else []) + sorted(
        f"{predictor}={ref.fingerprint}" for predictor, ref in state.predictor_adapters.items())
    reflection = ctx.reflection_lm
    lms = [ctx.lm.client.base_fingerprint if isinstance(ctx.lm, AxLM) else getattr(ctx.lm, "model", None),
           None if reflection is None else getattr(reflection, "model", type(reflection).__name__)]
    parts = [state.program_file.read_text(), state.playbook.path.read_text() if state.playbook else None, adapters,
             lms, [example.toDict() for example in trainset], ctx.preset.ace_epochs, ctx.seed]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _adapted_playbook(ctx: StrategyContext, key: str) -> Artifacts | None:
    """A finished stage of this domain and seed whose last step, an ACE step, had the same `_ace_key`."""
    for done in sorted((ctx.seed_dir / "stages").glob(f"*/{STAGE_FILE}")):
        state = load_relative(done, Artifacts)
        last = state.steps[-1] if state.steps else None
        if last is not None and last.step == "ace" and state.playbook and last.summary.get("ace_key") == key:
            return state
    return None


_RUNNERS: dict[str, Callable[[Artifacts, StrategyContext, Path], Artifacts]] = {"gepa": _gepa, "lora": _lora, "ace": _ace}


def baseline(ctx: StrategyContext, playbook: PlaybookRef | None = None) -> Artifacts:
    """The unoptimized program (reading `playbook` if one is given), saved as the first stage."""
    stage_dir = ctx.stage_dir(())
    if (stage_dir / STAGE_FILE).is_file():
        return load_relative(stage_dir / STAGE_FILE, Artifacts)
    state = Artifacts(program_file=save_program(ctx.domain.program(), stage_dir / PROGRAM_FILE), playbook=playbook)
    save_relative(state, stage_dir / STAGE_FILE)
    return state


def run_strategy(steps: tuple[str, ...], ctx: StrategyContext, start: Artifacts) -> Artifacts:
    """Run `steps` from `start`, reusing every stage an earlier run (or another strategy) finished."""
    state = start
    for count in range(1, len(steps) + 1):
        stage_dir = ctx.stage_dir(steps[:count])
        done = stage_dir / STAGE_FILE
        if done.is_file():
            state = load_relative(done, Artifacts)
            continue
        if ctx.console is not None:
            ctx.console.rule(f"{ctx.domain.name} seed {ctx.seed}: {strategy_name(steps[:count])}")
        stage_dir.mkdir(parents=True, exist_ok=True)
        state = _RUNNERS[steps[count - 1]](state, ctx, stage_dir)
        save_relative(state, done)
    return state
