"""UI-facing HTTP API: target lookup, migrate, abort, migration status."""
