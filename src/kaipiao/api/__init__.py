"""The v1 HTTP API (FastAPI): routes translate HTTP to service calls and back, nothing more."""
