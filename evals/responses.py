"""Validation of scored responses, shared by calibration, scoring and adaptive testing.

Convention used everywhere in ``ax.evals``: a response matrix is **respondents x items**
(one row per configuration run, one column per benchmark item), with 1 for correct, 0 for
wrong and NaN for "not administered". girth uses the transpose (items x participants).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ax.errors import AxError


def as_response_matrix(responses, *, name: str = "responses") -> np.ndarray:
    """Return ``responses`` as a float respondents x items matrix, or raise AxError.

    A 1-D vector is read as a single respondent. Booleans are accepted; anything other than
    0, 1 or NaN is refused with its position and value, because a 0.5 or a 2 silently
    averaged into a likelihood would corrupt every estimate downstream.
    """
    try:
        matrix = np.array(responses, dtype=float)
    except (TypeError, ValueError) as exc:
        raise AxError(f"{name} must be numeric 0/1/NaN values: {exc}") from None
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    if matrix.ndim != 2:
        raise AxError(f"{name} must be a 2-D respondents x items matrix, got shape {matrix.shape}")
    if matrix.shape[1] == 0:
        raise AxError(f"{name} has no items (shape {matrix.shape})")
    bad = ~(np.isnan(matrix) | (matrix == 0) | (matrix == 1))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise AxError(
            f"{name}[{row}, {col}] = {matrix[row, col]:g}: responses must be 0, 1 or NaN (not administered)"
        )
    return matrix


@dataclass(frozen=True)
class UninformativeItem:
    """An item that cannot be calibrated: nobody answered it, or everybody answered it alike."""

    index: int
    reason: Literal["all correct", "all wrong", "no responses"]


def find_uninformative_items(matrix: np.ndarray) -> tuple[UninformativeItem, ...]:
    """Items whose observed responses do not vary; their difficulty has no finite estimate.

    An item every respondent passes (or fails) says nothing about who is more able, so
    calibration excludes it and reports it instead of inventing parameters from the prior.
    """
    seen = ~np.isnan(matrix)
    n_seen = seen.sum(axis=0)
    n_correct = np.nansum(matrix, axis=0)
    flagged = []
    for index in range(matrix.shape[1]):
        if n_seen[index] == 0:
            flagged.append(UninformativeItem(index, "no responses"))
        elif n_correct[index] == n_seen[index]:
            flagged.append(UninformativeItem(index, "all correct"))
        elif n_correct[index] == 0:
            flagged.append(UninformativeItem(index, "all wrong"))
    return tuple(flagged)
