"""Label selectors written as text (`kubectl -l`), parsed into a metav1.LabelSelector dict.

The grammar of k8s.io/apimachinery's `labels.Parse`: comma-separated requirements `key`, `!key`,
`key=value`, `key==value`, `key!=value`, `key in (a,b)`, `key notin (a,b)`. Matching is
`filters.pod_affinity.label_selector_matches`, shared with the pod affinity rules.
"""

from __future__ import annotations

import re

from webhook.errors import InputError

# a qualified name: optional DNS-subdomain prefix and "/", then a name of up to 63 characters
_KEY = (
    r"(?:[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
)
_VALUE = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?"
_SET = re.compile(rf"({_KEY})\s+(in|notin)\s*\(\s*({_VALUE}(?:\s*,\s*{_VALUE})*)\s*\)")
_EQUALITY = re.compile(rf"({_KEY})\s*(==|=|!=)\s*({_VALUE})")
_EXISTS = re.compile(rf"(!?)\s*({_KEY})")


def _requirements(text: str) -> list[str]:
    """Split on the commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return [*parts, current]


def parse_selector(text: str, setting: str) -> dict:
    """{"matchLabels": ..., "matchExpressions": [...]}; InputError naming `setting` and the part."""
    labels: dict[str, str] = {}
    expressions: list[dict] = []
    for raw in _requirements(text):
        part = raw.strip()
        if m := _SET.fullmatch(part):
            values = [v.strip() for v in m[3].split(",")]
            operator = "In" if m[2] == "in" else "NotIn"
            expressions.append({"key": m[1], "operator": operator, "values": values})
        elif m := _EQUALITY.fullmatch(part):
            if m[2] == "!=":
                expressions.append({"key": m[1], "operator": "NotIn", "values": [m[3]]})
            else:
                labels[m[1]] = m[3]
        elif m := _EXISTS.fullmatch(part):
            operator = "DoesNotExist" if m[1] else "Exists"
            expressions.append({"key": m[2], "operator": operator})
        else:
            raise InputError(
                f"{setting}: {part!r} in {text!r} is not a label selector requirement "
                "(key, !key, key=value, key!=value, key in (a,b), key notin (a,b))"
            )
    return {"matchLabels": labels, "matchExpressions": expressions}
