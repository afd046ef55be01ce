"""Runtime telemetry: Prometheus metrics and structured logs, imported by the API and the engine.

Offline tools (drills, load generation, planning) live in `kaipiao.ops`; nothing here runs them.
"""
