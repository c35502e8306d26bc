"""List + watch of one resource into a ClusterState, as raw JSON dicts.

Why not `kubernetes.watch.Watch`: it turns core objects into model classes, and the rule engine
reads plain dicts exactly as the API returns them. We call the official client's list functions
with `_preload_content=False` and parse the JSON (one event per line) ourselves, keeping of
Pods, Nodes and VMIs only what the state keeps (webhook/cluster/decode.py).

Life cycle of an `Informer` (one daemon thread):
1. list (paged), `state.replace_all(kind, items)`, `synced` becomes True;
2. watch from the list's resourceVersion with bookmarks; ADDED/MODIFIED -> `state.apply`,
   DELETED -> `state.remove`, BOOKMARK -> new resourceVersion;
3. a watch that ends normally (server timeout) is reopened from the last resourceVersion;
   410 Gone, an ERROR event, or unreadable data -> relist; connection errors -> exponential
   backoff (reset after a success), then relist.
`last_sync` is the monotonic time of the last proof the cache is current (a list, an event, a
bookmark, or a watch that ended normally); `age_seconds()` is the time since then.

Reuse (the enforcer does): `Informer(state, "VirtualMachineInstanceMigration", list_fn)` where
`list_fn` is any official client list function taking the usual list/watch keyword arguments,
e.g. `CoreV1Api(api).list_node` or `RESOURCES[VM].list_fn(api)` (webhook/cluster/resources.py).
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from kubernetes.client.exceptions import ApiException

from webhook.cluster.decode import decode_event, decode_page
from webhook.cluster.state import ClusterState, freeze_cached, slim
from webhook.errors import InputError

log = logging.getLogger("migration_guard.informer")

ListFn = Callable[..., Any]
EventCallback = Callable[[str, dict], None]


class _Relist(Exception):
    """The watch cannot continue from its resourceVersion; list again."""


def _lines(resp: Any) -> Iterator[bytes]:
    """Lines of a streamed HTTP body (one watch event per line)."""
    buffer = bytearray()
    for chunk in resp.stream(amt=None, decode_content=False):
        buffer += chunk
        while b"\n" in buffer:
            cut = buffer.index(b"\n")
            line = bytes(buffer[:cut])
            del buffer[: cut + 1]
            if line.strip():
                yield line
    if buffer.strip():
        yield bytes(buffer)


class Informer:
    """Keeps one kind of `state` equal to the API server's (see module docstring)."""

    def __init__(
        self,
        state: ClusterState,
        kind: str,
        list_fn: ListFn,
        *,
        api_version: str | None = None,
        field_selector: str | None = None,
        label_selector: str | None = None,
        on_event: EventCallback | None = None,
        watch_timeout_seconds: int = 60,
        page_size: int = 500,
        backoff_initial: float = 0.2,
        backoff_max: float = 30.0,
        optional: bool = False,
        missing_recheck_seconds: float = 30.0,
    ) -> None:
        self.state = state
        self.kind = kind
        self.api_version = api_version
        self.list_fn = list_fn
        self.selectors = {
            k: v
            for k, v in (("field_selector", field_selector), ("label_selector", label_selector))
            if v
        }
        self.on_event = on_event
        self.watch_timeout_seconds = watch_timeout_seconds
        self.page_size = page_size
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        # optional: a 404 on list (the CRD is not installed) means no objects; listed again every
        # missing_recheck_seconds, so the kind is found once its CRD appears.
        self.optional = optional
        self.missing = False
        self.missing_recheck_seconds = missing_recheck_seconds
        self.synced = False
        self.last_sync: float | None = None
        self.resource_version: str | None = None
        self.lists = 0
        self.errors = 0
        self.skipped = 0
        self._stop = threading.Event()
        self._resp: Any = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ public
    def start(self) -> Informer:
        self._thread = threading.Thread(target=self._run, name=f"informer-{self.kind}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """End the thread promptly: interrupt the open watch instead of waiting for its timeout."""
        self._stop.set()
        resp = self._resp
        if resp is not None:
            with contextlib.suppress(Exception):
                resp.shutdown()
            with contextlib.suppress(Exception):
                resp.close()
        if self._thread is not None:
            self._thread.join(timeout)

    def age_seconds(self) -> float:
        """Seconds since the last proof the cache is current; infinity before the first list."""
        if self.last_sync is None:
            return float("inf")
        return max(0.0, time.monotonic() - self.last_sync)

    def wait_synced(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.synced and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.synced

    # ------------------------------------------------------------------ loop
    def _run(self) -> None:
        delay = self.backoff_initial
        need_list = True
        while not self._stop.is_set():
            try:
                if need_list:
                    self._list()
                    need_list = False
                if self.missing:
                    if self._stop.wait(self.missing_recheck_seconds):
                        break
                    need_list = True
                    continue
                self._watch()
                delay = self.backoff_initial
            except _Relist as why:
                log.info("%s: relisting (%s)", self.kind, why)
                need_list = True
            except Exception as e:
                if self._stop.is_set():
                    break
                self.errors += 1
                log.warning("%s: list/watch failed (%s); retrying in %.1fs", self.kind, e, delay)
                need_list = True
                if self._stop.wait(delay * (0.8 + 0.4 * random.random())):
                    break
                delay = min(self.backoff_max, delay * 2)

    def _call(self, **kwargs: Any) -> Any:
        return self.list_fn(**self.selectors, **kwargs, _preload_content=False)

    def _page(self, token: str | None) -> bytes:
        kwargs: dict[str, Any] = {"limit": self.page_size, "_request_timeout": 60}
        if token:
            kwargs["_continue"] = token
        return self._call(**kwargs).data

    def _list(self) -> None:
        with ThreadPoolExecutor(1, thread_name_prefix=f"list-{self.kind}") as fetcher:
            self._list_pages(fetcher)

    def _list_pages(self, fetcher: ThreadPoolExecutor) -> None:
        """The paged list. The next page is asked for as soon as this one's continue token is
        read, so kube-apiserver encodes it while this page is slimmed and indexed."""
        items: list[dict] = []
        token: str | None = None
        ahead: Future | None = None
        while True:
            try:
                data = ahead.result() if ahead is not None else self._page(token)
            except ApiException as e:
                ahead = None
                if e.status == 410 and token:  # the continue token expired: start over
                    items, token = [], None
                    continue
                if e.status == 404 and self.optional and not token:
                    self._listed_missing()
                    return
                raise
            ahead = None
            body = decode_page(self.kind, data)
            del data
            meta = body.get("metadata") or {}
            token = meta.get("continue")
            if token:
                ahead = fetcher.submit(self._page, token)
            api_version = self.api_version or body.get("apiVersion")
            for item in body.get("items") or []:
                # List items carry no kind/apiVersion; the state files objects by kind.
                item.setdefault("kind", self.kind)
                if api_version:
                    item.setdefault("apiVersion", api_version)
                # Slim page by page: a list of 100,000 pods must not be held raw at once. A
                # malformed item stays as is: replace_all rejects it and _slimmed logs it.
                with contextlib.suppress(InputError):
                    item = slim(item)
                items.append(item)
            if not token:
                self.resource_version = meta.get("resourceVersion")
                break
        if self.missing:
            log.info("%s: the resource is served now", self.kind)
            self.missing = False
        # Items slimmed above are stored as they are (slim returns a slimmed object unchanged).
        try:
            self.state.replace_all(self.kind, items)
        except InputError:
            self.state.replace_all(self.kind, [s for s in map(self._slimmed, items) if s])
        self.lists += 1
        if self.lists == 1:  # the initial sync: what is cached now lives long
            freeze_cached()
        self.last_sync = time.monotonic()
        self.synced = True
        log.debug("%s: listed %d objects at %s", self.kind, len(items), self.resource_version)

    def _listed_missing(self) -> None:
        """An optional kind the API server does not serve: there are none (proof of currency)."""
        if not self.missing:
            log.warning("%s: not served by the API server (CRD not installed): none", self.kind)
        self.missing = True
        self.state.replace_all(self.kind, [])
        self.resource_version = None
        self.lists += 1
        self.last_sync = time.monotonic()
        self.synced = True

    def _slimmed(self, obj: dict) -> dict | None:
        """`slim(obj)`, which the state stores as is; None (logged) when `obj` is malformed."""
        try:
            return slim(obj)
        except InputError as e:
            self.skipped += 1
            log.warning("%s: ignoring malformed object: %s", self.kind, e)
            return None

    def _watch(self) -> None:
        try:
            resp = self._call(
                watch=True,
                resource_version=self.resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=self.watch_timeout_seconds,
                _request_timeout=(10, self.watch_timeout_seconds + 30),
            )
        except ApiException as e:
            if e.status == 410:
                raise _Relist("410 Gone when opening the watch") from None
            raise
        self._resp = resp
        try:
            for line in _lines(resp):
                if self._stop.is_set():
                    return
                self._handle(line)
        finally:
            self._resp = None
            with contextlib.suppress(Exception):
                resp.release_conn()
        if not self._stop.is_set():
            self.last_sync = time.monotonic()  # ended by the server's timeout: still current

    def _handle(self, line: bytes) -> None:
        try:
            event = decode_event(self.kind, line)
            etype, obj = event["type"], event["object"]
        except (ValueError, KeyError, TypeError):
            raise _Relist(f"unreadable watch data {line[:80]!r}") from None
        if etype == "ERROR":
            code = obj.get("code") if isinstance(obj, dict) else None
            raise _Relist(f"ERROR event {code}: {obj.get('message') if code else obj}")
        if not isinstance(obj, dict):
            raise _Relist(f"{etype} event without an object")
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if etype in ("ADDED", "MODIFIED"):
            obj.setdefault("kind", self.kind)
            slimmed = self._slimmed(obj)
            if slimmed is not None:
                self.state.apply(slimmed)
            else:  # never decide on an old copy of an object we can no longer read
                meta = obj.get("metadata") or {}
                self.state.remove(self.kind, meta.get("namespace"), str(meta.get("name", "")))
        elif etype == "DELETED":
            meta = obj.get("metadata") or {}
            self.state.remove(self.kind, meta.get("namespace"), meta.get("name", ""))
        elif etype != "BOOKMARK":
            log.debug("%s: ignoring event type %s", self.kind, etype)
        if rv:
            self.resource_version = rv
        self.last_sync = time.monotonic()
        if self.on_event is not None and etype != "BOOKMARK":
            try:
                self.on_event(etype, obj)
            except Exception:
                log.exception("%s: on_event callback failed", self.kind)
