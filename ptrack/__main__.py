"""``python -m ptrack``."""

from ptrack.cli import main

if __name__ == "__main__":
    main()
