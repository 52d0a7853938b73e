"""`python -m trainhub.cli`."""

from trainhub.cli import main

main()
