"""Calibrate a domain's items on every respondent the runs produced, then score respondents on them.

The pool is every stored respondent of the domain (GEPA candidates, LoRA checkpoints, seeds,
ablations and the four configurations' runs), each answering the items it was given (NaN
elsewhere). Item parameters are estimated once on the pool and held fixed; every respondent's
ability is then its EAP estimate on that fixed scale, with a standard error.

Which model: 2PL from ``MIN_RESPONDENTS_2PL`` respondents up, 1PL below. On simulated 2PL data
(discrimination ~ lognormal(0, 0.3); the data generator and metrics of ``bench/irt_recovery.py``,
figures in the README's Measured section), the 2PL recovers difficulties worse than the 1PL fitted
to the same matrices at few respondents, and no better until about 100; its discriminations are
recovered poorly below that. Below about 100 respondents the extra parameters cost more than they
explain, so the 1PL is used; it is also what the issue's anchors report (girth 2PL: r = 0.38 at 4 respondents,
0.91 at 100). Under the 1PL ability orders respondents who answered the same items exactly as
accuracy does: the report says so rather than presenting it as new information.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ax.errors import AxError
from ax.evals.irt import AbilityEstimates, Calibration, IrtModel, ItemFit, calibrate, estimate_ability_eap, item_fit
from ax.evals.matrix_store import ResponseMatrix

MIN_RESPONDENTS_2PL = 100
MISFIT_ABOVE = 1.3  # infit or outfit mean square beyond which an item measures something else


def choose_model(n_respondents: int) -> IrtModel:
    """2PL with at least ``MIN_RESPONDENTS_2PL`` respondents, else 1PL (see the module docstring)."""
    return "2pl" if n_respondents >= MIN_RESPONDENTS_2PL else "1pl"


@dataclass(frozen=True)
class PoolCalibration:
    """Items calibrated on a pool of respondents, and those respondents' abilities on the fixed items."""

    domain: str
    respondents: tuple[str, ...]
    item_ids: tuple[str, ...]
    calibration: Calibration
    ability: AbilityEstimates
    fit: ItemFit

    @property
    def model(self) -> IrtModel:
        return self.calibration.model

    def misfitting_items(self) -> list[str]:
        worst = np.fmax(self.fit.infit, self.fit.outfit)
        return [self.item_ids[j] for j in np.flatnonzero(worst > MISFIT_ABOVE)]

    def ability_of(self, name: str) -> tuple[float, float]:
        """(theta, standard error) of one pool respondent."""
        i = self.respondents.index(name)
        return float(self.ability.theta[i]), float(self.ability.standard_error[i])


def calibrate_pool(matrix: ResponseMatrix, rows: np.ndarray | None = None,
                   model: IrtModel | None = None) -> PoolCalibration:
    """Calibrate on the respondents in ``rows`` (default all) and score all of the matrix's respondents.

    Respondents outside ``rows`` are scored on items they did not help calibrate, which is how
    a configuration is evaluated "as new" (the adaptive check relies on it).
    """
    rows = np.arange(len(matrix.respondents)) if rows is None else np.asarray(rows, dtype=int)
    if rows.size < 2:
        raise AxError(f"domain {matrix.domain!r}: calibrating items needs at least 2 respondents, got {rows.size}")
    pool = matrix.correct[rows]
    result = calibrate(pool, model or choose_model(rows.size))
    ability = estimate_ability_eap(matrix.correct, result.items)
    fit = item_fit(pool, result.items, ability.theta[rows])
    return PoolCalibration(domain=matrix.domain, respondents=tuple(c.name for c in matrix.respondents),
                           item_ids=matrix.item_ids, calibration=result, ability=ability, fit=fit)
