"""kaipiao: a self-hosted e-invoice (fapiao) issuing gateway."""

__version__ = "0.1.0"
