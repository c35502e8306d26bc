"""The benchmark's server: `migration-guard webhook` exactly, plus a no-op AdmissionReview echo.

The echo route lives in the same Flask app, gunicorn worker and TLS stack as /validate, and reads
and answers reviews as /validate does (`review.read_review`, `review_response`), so the admission
figures compare the decision's cost against everything around it. It answers with the request's
uid, allowed, as the cheapest correct webhook would.
Run: `python -m bench.server <migration-guard webhook flags>`. With MG_BENCH_REPLAY_DECISIONS=1,
/validate decides each review once and replays that answer after (`replay_decisions`), and
GET /bench/decisions says what those decisions cost on their thread.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
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


REPLAY = "MG_BENCH_REPLAY_DECISIONS"
DECISIONS_PATH = "/bench/decisions"


def replay_decisions() -> list[int]:
    """/validate as it is, but `decide` runs once per review uid and its answer is replayed
    after: what validate costs beyond the echo when its decision costs nothing (the request
    parsing, metrics and checks around it), so the benchmark can tell the decision's live cost
    from the rest. A benchmark-only server: its answers are not re-decided on a change.

    Returns the CPU nanoseconds each real decision took on its thread (filled as they run):
    under load, between two requests' HTTP work, as validate's decisions run."""
    from webhook.admission import server

    decide = server.decide
    answers: dict[str, dict] = {}
    spent: list[int] = []

    def replayed(cache: Any, settings: Any, req: Any, *args: Any) -> dict:
        answer = answers.get(req.uid)
        if answer is None:
            started = time.thread_time_ns()
            answer = answers[req.uid] = decide(cache, settings, req, *args)
            spent.append(time.thread_time_ns() - started)
        return answer

    server.decide = replayed
    return spent


def decisions_route(spent: list[int]) -> Callable[[Flask, Any, Any], None]:
    """Extension hook: GET DECISIONS_PATH, how many reviews were decided and the median CPU
    microseconds of one on its thread."""

    def register(app: Flask, _cache: Any, _settings: Any) -> None:
        @app.get(DECISIONS_PATH)
        def decisions() -> Any:
            median = statistics.median(spent) / 1e3 if spent else None
            return jsonify({"decided": len(spent), "threadCpuMedianUs": median})

    return register


def main(argv: list[str]) -> int:
    from extension.api import register_extension
    from webhook.admission import serve
    from webhook.admission.settings import parse_settings

    extensions = [register_extension, register_echo]
    if os.environ.get(REPLAY) == "1":
        extensions.append(decisions_route(replay_decisions()))
    settings = parse_settings(argv)
    return serve.run(settings, extensions=extensions)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
