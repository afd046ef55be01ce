"""`python -m kaipiao` runs the CLI."""

from kaipiao.cli import main

main()
