"""The issuing engine: workers, dispatch limits, circuit breakers, retries, compensation."""
