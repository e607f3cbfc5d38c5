"""The `saga` command, installed as a script or run as `python -m infra.cli`.

A process spawned by a command (a rebuild's workers) imports its parent's main
module first: this one imports nothing of the command line until `main` runs.
"""

from __future__ import annotations


def main() -> None:
    from infra.cli.main import app  # here, not above: see the module docstring

    app()


if __name__ == "__main__":
    main()
