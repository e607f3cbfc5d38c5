"""Infrastructure: settings, persistence, bootstrap and the command line."""
