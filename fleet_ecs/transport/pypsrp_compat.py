"""Make pypsrp safe to construct from many threads at once.

Every ``pypsrp.wsman.WSMan(...)`` re-registers pypsrp's XML namespace prefixes with
``xml.etree.ElementTree.register_namespace``, which deletes and re-inserts entries of
ElementTree's process-wide prefix map. Another thread serialising a message at that moment
iterates the same map and dies with "RuntimeError: dictionary keys changed during iteration";
with hundreds of hosts opening sessions concurrently this happens (seen in our own tests).

We register pypsrp's prefixes once, then give pypsrp an ElementTree whose
``register_namespace`` does nothing for a pair that is already registered, so the shared map is
never changed again. Everything else pypsrp uses from ElementTree is passed through unchanged.
"""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ElementTree
from typing import Any

_lock = threading.Lock()
_done = False


class _RegisterOnce:
    """ElementTree, except that re-registering a prefix that is in place changes nothing."""

    def __getattr__(self, name: str) -> Any:
        return getattr(ElementTree, name)

    def register_namespace(self, prefix: str, uri: str) -> None:
        # Reading the private map is the only way to ask ElementTree what is registered. Only
        # when another library took the prefix or the URI away is the map changed again.
        if ElementTree._namespace_map.get(uri) == prefix:
            return
        with _lock:
            ElementTree.register_namespace(prefix, uri)


def make_pypsrp_thread_safe() -> None:
    """Idempotent; call before the first ``WSMan`` is built in a process."""
    global _done
    if _done:
        return
    from pypsrp import wsman

    with _lock:
        if _done:
            return
        for prefix, uri in wsman.NAMESPACES.items():
            ElementTree.register_namespace(prefix, uri)
        wsman.ET = _RegisterOnce()
        _done = True
