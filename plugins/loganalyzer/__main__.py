"""`python -m loganalyzer` is the `loganalyzer` console script."""

from loganalyzer.cli import main

main()
