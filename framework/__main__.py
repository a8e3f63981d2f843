"""``python -m segalloc``: the same command line as the ``segalloc`` script."""

from segalloc.bench.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
