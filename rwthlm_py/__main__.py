"""`python -m rwthlm_py` runs the `rwthlm-py` command line."""

from rwthlm_py.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
