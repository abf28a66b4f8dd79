"""`python -m consultant` runs the CLI."""
from consultant.cli import main

main()
