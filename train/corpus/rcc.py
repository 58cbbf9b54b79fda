"""Listing the files inside a Qt resource bundle (.rcc), enough to cut sounds out of GCompris.

Layout (big-endian): "qres", version, tree offset, data offset, names offset. Tree nodes are
14 bytes (version 1) or 22 bytes (later: + 8-byte mtime): name offset (4), flags (2), then
for a directory (flag 2) child count (4) and first child index (4), for a file country (2),
language (2) and data offset (4). A name is length (2), hash (4), UTF-16BE text; file data is
length (4) then bytes, zlib-compressed when flag 1 is set.
"""
from __future__ import annotations

import struct


def rcc_files(data: bytes) -> list[tuple[str, int, int, int]]:
    """(path, flags, byte offset of the content, content length) for every file in the bundle."""
    if data[:4] != b"qres":
        raise ValueError("not a Qt resource file (missing 'qres' magic)")
    version, tree, content, names = struct.unpack_from(">IIII", data, 4)
    node_size = 14 if version == 1 else 22

    def name(offset: int) -> str:
        (n,) = struct.unpack_from(">H", data, names + offset)
        start = names + offset + 6
        return data[start: start + 2 * n].decode("utf-16-be")

    out, stack = [], [(0, "")]
    while stack:
        index, prefix = stack.pop()
        node = tree + index * node_size
        name_offset, flags = struct.unpack_from(">IH", data, node)
        path = prefix + name(name_offset) if index else ""
        if flags & 2:
            count, first = struct.unpack_from(">II", data, node + 6)
            stack.extend((child, f"{path}/" if path else "") for child in range(first, first + count))
        else:
            (offset,) = struct.unpack_from(">I", data, node + 10)
            (length,) = struct.unpack_from(">I", data, content + offset)
            out.append((path, flags, content + offset + 4, length))
    return sorted(out)
