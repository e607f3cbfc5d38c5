"""Infrastructure: settings, the composition root (`bootstrap`), the roles a process runs (`runtime`),
and one sub-package per concern: `eventstore`, `readstore`, `messaging`, `observability`, `cli`."""
