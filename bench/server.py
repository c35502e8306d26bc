"""The benchmark's server: `migration-guard webhook` exactly, plus a no-op AdmissionReview echo.

The echo route lives in the same Flask app, gunicorn worker and TLS stack as /validate, and reads
and answers reviews as /validate does (`review.read_review`, `review_response`), so the admission
figures compare the decision's cost against everything around it. It answers with the request's
uid, allowed, as the cheapest correct webhook would.
Run: `python -m bench.server <migration-guard webhook flags>`.
"""

from __future__ import annotations

import sys
from typing import Any

from flask import Flask, jsonify, request

from webhook.admission.review import read_review
from webhook.admission.server import review_response

ECHO_PATH = "/bench/echo"


def register_echo(app: Flask, _cache: Any, _settings: Any) -> None:
    """Extension hook (webhook.admission.server.create_app): POST /bench/echo allows every review."""

    @app.post(ECHO_PATH)
    def echo() -> Any:
        req = read_review(request.get_data(cache=False))
        if req is None:
            return jsonify({"error": "BadRequest"}), 400
        answer = {"uid": req.uid, "allowed": True}
        return review_response(
            {"apiVersion": req.api_version, "kind": "AdmissionReview", "response": answer}
        )


def main(argv: list[str]) -> int:
    from extension.api import register_extension
    from webhook.admission import serve
    from webhook.admission.settings import parse_settings

    settings = parse_settings(argv)
    return serve.run(settings, extensions=[register_extension, register_echo])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
