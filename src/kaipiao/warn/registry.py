"""The detectors by name, each with the one setting used for every series.

`context` is the default and the one tuned on NAB: the benchmark as a whole, one setting, no
per-series choice (the scores and the neighbouring settings tried are in docs/early-warning.md).
The others are kept as baselines and for comparison.
"""

from __future__ import annotations

from collections.abc import Callable

from kaipiao.warn.context import ContextDetector
from kaipiao.warn.detector import Detector
from kaipiao.warn.entropy import RelativeEntropy
from kaipiao.warn.gaussian import WindowedGaussian
from kaipiao.warn.likelihood import Likelihood
from kaipiao.warn.refractory import Refractory

# Warn once, then stay quiet for 100 values (8 h of 5-minute data) unless asked again.
_LEVEL = 0.95
_REST = 100


def _context() -> Detector:
    return Refractory(Likelihood(ContextDetector(bins=7, order=2)), _LEVEL, _REST)


def _gaussian_alert() -> Detector:
    return Refractory(Likelihood(WindowedGaussian(window=3000)), _LEVEL, _REST)


DETECTORS: dict[str, Callable[[], Detector]] = {
    "context": _context,
    "context-raw": lambda: ContextDetector(bins=7, order=2),
    "gaussian": WindowedGaussian,
    "gaussian-alert": _gaussian_alert,
    "entropy": RelativeEntropy,
}
DEFAULT = "context"


def make_detector(name: str = DEFAULT) -> Detector:
    try:
        factory = DETECTORS[name]
    except KeyError:
        known = ", ".join(sorted(DETECTORS))
        raise ValueError(f"unknown detector {name!r}; known: {known}") from None
    return factory()
