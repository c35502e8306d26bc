"""Recent decisions, reused while the cluster they were made on has not changed.

Why: KubeVirt retries what the webhook denies. Its workload updater asks again almost at once for
as long as a VMI is outdated, and every retry is the same question (same VMI, same VMIM spec) on
the same cluster. A Report depends only on the VMIM's spec and the ClusterState, whose
`generation` grows whenever anything the rules read changes, so a Report computed at the current
generation is the answer again: a repeat costs a dict lookup instead of a walk over every node.
Not the VMIM's name: kube-apiserver names each retry anew (generateName) before admission, and a
VMIM being created is never in the cache, so its name changes nothing (a create reusing the name
of a cached VMIM fails with AlreadyExists whatever the webhook says). At most `size` Reports are
kept (least recently used dropped), so its memory is bounded.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable

from webhook.rules.model import Report

MemoKey = tuple[str, str, str]


def memo_key(namespace: str, vmi_name: str, vmim: dict | None) -> MemoKey:
    """What a Report depends on besides the state: the VMI, and the VMIM's spec."""
    spec = (vmim or {}).get("spec")
    return namespace, vmi_name, json.dumps(spec, sort_keys=True, default=str)


class ReportMemo:
    """Reports by MemoKey, each valid at the state generation it was computed at."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._reports: OrderedDict[MemoKey, tuple[int, Report]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def report(
        self, key: MemoKey, generation: int, compute: Callable[[], Report]
    ) -> tuple[Report, bool]:
        """(the Report for `key` at `generation`, whether it was reused); `compute` on a miss.

        Read `generation` before the state it describes: a change during `compute` then makes
        the stored Report stale at once instead of hiding the change.
        """
        with self._lock:
            found = self._reports.get(key)
            if found is not None and found[0] == generation:
                self._reports.move_to_end(key)
                self.hits += 1
                return found[1], True
            self.misses += 1
        report = compute()
        with self._lock:
            self._reports[key] = (generation, report)
            self._reports.move_to_end(key)
            while len(self._reports) > self.size:
                self._reports.popitem(last=False)
        return report, False
