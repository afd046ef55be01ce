"""Early warning (issue 18): streaming anomaly detectors and the NAB score they are judged by.

Each detector sees one value at a time and scores it in [0, 1] from the past only (`detector`).
Modules: `gaussian` (windowed Gaussian baseline), `context` (CAD-family context detector),
`entropy` (relative entropy), `likelihood` and `refractory` (post-processing that turns a raw
score into one warning per departure), `registry` (the detectors by name, one setting each),
`corpus` (NAB's files and windows), `scoring` (NAB's scoring rules), `evaluate` (a detector over a
corpus), `stream` (a CSV scored online).

This package imports no web, CLI or storage code: it sits beside `services` and is driven by the
CLI (`kaipiao warn …`) today and, later, by the workers' own telemetry.
"""
