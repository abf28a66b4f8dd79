"""`python -m consultant` runs the CLI."""
from consultant.cli import main

if __name__ == "__main__":  # not when an extra process (consultant.pool) is spawned from it
    main()
