"""The annotations migration-guard reads and writes (docs/internals.md), named in one place."""

# Per-VM override of the timeout settings, on the VMI or the VM (the VMI wins).
COMPLETION_TIMEOUT_PER_GIB = "migration-guard.io/completion-timeout-per-gib"
PROGRESS_TIMEOUT_SECONDS = "migration-guard.io/progress-timeout-seconds"
# On the VM: why the enforcer aborted its migration (JSON), shown by the extension's status.
ABORT = "migration-guard.io/abort"
# On a VMIM the extension created: the user who asked for it.
REQUESTED_BY = "migration-guard.io/requested-by"
