"""The `saga` command line: `main` has one function per command; the modules beside it are what the
commands need (finding the stores, the demo load generator, the audit table, reset, the serve banner)."""
