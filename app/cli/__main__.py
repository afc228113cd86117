"""`python -m app.cli …`, as `papershelf …` (how `papershelf up` starts its children)."""

from app.cli import main

main()
