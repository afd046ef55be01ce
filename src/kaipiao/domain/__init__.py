"""Pure fapiao rules: money and tax math, validation, amounts in words, codes, lifecycle.

Nothing here performs I/O or imports a framework; adapters import the domain, never the reverse.
"""
