"""`python -m plume` runs the `plume` command."""
from .cli import main

main(prog_name="plume")
