"""The one compiled part: kaipiao.ledger._walk, the ledger verification loop (C, OpenSSL and
libsqlite3). Everything else is declared in pyproject.toml. Where it cannot be built (no
compiler or headers), kaipiao installs without it and verifies in pure Python, more slowly."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "kaipiao.ledger._walk",
            ["src/kaipiao/ledger/_walk.c"],
            libraries=["crypto", "sqlite3"],
            extra_compile_args=["-O2", "-Wall", "-Wno-unused-parameter"],
            optional=True,
        )
    ]
)
