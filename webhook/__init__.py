"""migration-guard: rule engine, admission webhook, timeout enforcer and CLI."""
