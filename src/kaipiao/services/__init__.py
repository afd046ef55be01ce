"""Use cases: what the API, the CLI and the workers ask of kaipiao, one function each."""
