"""`migration-guard extension`: the UI backend on its own, with the webhook's server machinery.

Same settings, TLS, watch-fed cache and gunicorn worker as `migration-guard webhook` (one code
path), with defaults of its own: another port, another certificate Secret and Service name, and
no ValidatingWebhookConfiguration to patch. Every flag and MIGRATION_GUARD_* variable of the
webhook applies; a flag or variable set explicitly wins over these defaults.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from webhook.admission.settings import Settings, env_name, parse_settings

# flag -> default when neither the flag nor its environment variable is given
DEFAULTS = {
    "--bind": "0.0.0.0:8444",
    "--service-name": "migration-guard-extension",
    "--cert-secret-name": "migration-guard-extension-tls",
    "--webhook-config-name": "",
}


def extension_settings(argv: Sequence[str], env: Mapping[str, str] | None = None) -> Settings:
    """Settings as the webhook parses them, with the extension's defaults underneath."""
    env = dict(os.environ if env is None else env)
    for flag, value in DEFAULTS.items():
        env.setdefault(env_name(flag), value)
    return parse_settings(argv, env)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `migration-guard extension`; 2 on bad settings, with a one-line message."""
    from webhook.admission.serve import serve_command  # the webhook's gunicorn + TLS runner, shared

    return serve_command("extension", extension_settings, argv)


if __name__ == "__main__":
    sys.exit(main())
