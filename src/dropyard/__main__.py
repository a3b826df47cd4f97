"""`python -m dropyard`: the same as the `dropyard` command."""

from dropyard.cli import main

main()
