"""Simulated ``netsh trace`` capture files: deterministic bytes, produced lazily.

A simulated ``capture.etl`` is NOT a parseable trace. It is laid out like one at a glance:
the file is a run of 64 KiB buffers and each buffer starts with a header shaped like ETW's
WMI_BUFFER_HEADER (buffer size, saved/current offsets, a FILETIME time stamp, a sequence
number, the logger id), and the first buffer names the trace session and file in UTF-16 as a
logfile header would. Everything after each header is pseudo-random bytes seeded from the
host name and path, so the same host always produces the same file and SHA-256.

Content is generated block by block on demand, so a 100 MB capture is never held in memory;
the hash is computed once, streaming, and cached.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import random
import struct
from collections.abc import Iterator
from dataclasses import dataclass

logger = logging.getLogger(__name__)

BLOCK = 64 * 1024
# 2025-06-14 09:30:00 UTC as a FILETIME (100 ns ticks since 1601-01-01).
_FILETIME_BASE = 133943454000000000
_HEADER = struct.Struct("<IIIiqqIHHIIII")  # 56 bytes, then padding to 72 like the real header


@dataclass(frozen=True)
class CaptureFile:
    """One capture file that exists on a simulated host."""

    path: str
    size: int
    seed: int
    session: str = "FleetEcsTrace"

    def blocks(self) -> Iterator[bytes]:
        rng = random.Random(self.seed)
        remaining = self.size
        index = 0
        while remaining > 0:
            block = self._block(index, rng)
            if remaining < BLOCK:
                block = block[:remaining]
            remaining -= len(block)
            index += 1
            yield block

    def chunks(self, chunk_size: int) -> Iterator[bytes]:
        """The file in pieces of ``chunk_size`` bytes (the last one shorter)."""
        chunk_size = max(1, chunk_size)
        pending = bytearray()
        for block in self.blocks():
            pending += block
            while len(pending) >= chunk_size:
                yield bytes(pending[:chunk_size])
                del pending[:chunk_size]
        if pending:
            yield bytes(pending)

    @property
    def sha256(self) -> str:
        return _sha256(self)

    def _block(self, index: int, rng: random.Random) -> bytes:
        stamp = _FILETIME_BASE + index * 2_500_000 + (self.seed % 10_000_000)
        header = _HEADER.pack(BLOCK, BLOCK, BLOCK, 0, stamp, index + 1, 1, 0, 0x18, 0, 0, 0, 0)
        header += b"\x00" * (72 - len(header))
        if index == 0:
            names = (self.session + "\x00" + self.path + "\x00").encode("utf-16-le")
            header += struct.pack("<I", len(names)) + names
        return header + rng.randbytes(BLOCK - len(header))


@functools.lru_cache(maxsize=256)
def _sha256(capture: CaptureFile) -> str:
    digest = hashlib.sha256()
    for block in capture.blocks():
        digest.update(block)
    return digest.hexdigest().upper()


def new_capture(host_name: str, path: str, size: int, session: str) -> CaptureFile:
    seed_bytes = hashlib.sha256(f"{host_name.lower()}|{path.lower()}".encode()).digest()
    return CaptureFile(path, size, int.from_bytes(seed_bytes[:8], "big"), session)
