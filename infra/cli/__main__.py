"""`python -m infra.cli`: the `saga` command, without the installed script."""

from infra.cli.main import app

app()
