"""Keeping the console to one progress bar and a few lines while DSPy and GEPA work.

GEPA's engine, DSPy's evaluator and the HF trainer each draw a tqdm bar (a new one per
minibatch), and DSPy's GEPA logs every iteration at INFO. During an optimization step their
log lines go to a file in the step's folder instead, and tqdm bars are switched off: tqdm has no
switch except an environment variable read at import, so its constructor gets `disable=True`
for the duration.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

LOGGERS = ("dspy.teleprompt", "dspy.evaluate", "gepa")


@contextmanager
def quiet_console(log_path: Path) -> Iterator[None]:
    """Within the block: no tqdm bars; DSPy and GEPA log lines (INFO and up) appended to `log_path`."""
    import tqdm

    log_path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    loggers = [logging.getLogger(name) for name in LOGGERS]
    saved = [(logger.propagate, logger.level) for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.propagate = False
        logger.setLevel(logging.INFO)
    original_init = tqdm.std.tqdm.__init__

    def quiet_init(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["disable"] = True
        original_init(self, *args, **kwargs)

    tqdm.std.tqdm.__init__ = quiet_init
    try:
        yield
    finally:
        tqdm.std.tqdm.__init__ = original_init
        for logger, (propagate, level) in zip(loggers, saved):
            logger.removeHandler(handler)
            logger.propagate, logger.level = propagate, level
        handler.close()
