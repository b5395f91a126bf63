"""Safetensors I/O: the streaming checksum, tensors as raw bytes, and the bounded reader and writer."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn

import torch

from fsm_trainer.checkpoint._errors import CorruptCheckpointError
from fsm_trainer.checkpoint._layout import _HASHERS, MAX_HEADER_BYTES, MAX_INT, _json
from fsm_trainer.errors import ArgumentTypeError

_DTYPES: dict[torch.dtype, str] = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL", torch.uint16: "U16", torch.uint32: "U32", torch.uint64: "U64",
    torch.float8_e4m3fn: "F8_E4M3", torch.float8_e5m2: "F8_E5M2",
}
_CODES = {v: k for k, v in _DTYPES.items()}
MAX_DIMS = 64
"""The most dimensions a stored tensor may have (torch's own limit)."""


class _Digest:
    """The checksum of a stream of buffers (XXH3-128 outruns the disk, so it is computed inline)."""

    def __init__(self, algo: str = "xxh3_128") -> None:
        self.algo = algo
        self.h = _HASHERS[algo]()

    def update(self, buf: memoryview | bytes) -> None:
        self.h.update(buf)

    def hexdigest(self) -> str:
        return str(self.h.hexdigest())


def _raw(t: torch.Tensor) -> memoryview:
    t = t.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    t = t.contiguous()
    if t.numel() == 0:
        return memoryview(b"")
    arr: Any = t.reshape(-1).view(torch.uint8).numpy()
    return memoryview(arr)


def _check_dtypes(tensors: Mapping[str, torch.Tensor]) -> None:
    """Raise :class:`~fsm_trainer.errors.ArgumentTypeError` naming the first tensor safetensors cannot store."""
    for name, t in tensors.items():
        if t.dtype not in _DTYPES:
            msg = f"cannot store tensor {name!r} of dtype {t.dtype} in safetensors"
            raise ArgumentTypeError(msg)


def _write_safetensors(f: Any, tensors: Mapping[str, torch.Tensor], digest: _Digest,
                       fault: Callable[[str], None] | None = None) -> None:
    """Write ``tensors`` to the binary file ``f`` in safetensors layout, feeding ``digest``.

    ``fault`` is called with ``"mid_tensors"`` once half of the tensors are written.
    """
    _check_dtypes(tensors)
    items = list(tensors.items())
    # Largest element size first keeps every tensor aligned to its element size.
    items.sort(key=lambda p: (-p[1].element_size(), p[0]))
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, t in items:
        n = t.numel() * t.element_size()
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + n]}
        offset += n
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    for part in (struct.pack("<Q", len(head)), head):
        f.write(part)
        digest.update(part)
    for i, (_, t) in enumerate(items):
        buf = _raw(t)
        f.write(buf)
        digest.update(buf)
        if i == len(items) // 2 and fault is not None:
            fault("mid_tensors")


def _is_index(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= MAX_INT


def _read_safetensors(buf: Any, path: Path) -> dict[str, torch.Tensor]:
    """Tensors viewing ``buf`` (a private mmap), after safetensors' validity checks.

    Beyond safetensors' rules, a shape must have at most :data:`MAX_DIMS` dimensions, each at
    most 2**63 - 1, whose product (zeros left out) stays below 2**63: torch could not build
    a larger one, even empty.
    """
    size = len(buf)

    def bad(why: str) -> NoReturn:
        msg = f"{path}: invalid safetensors file: {why}"
        raise CorruptCheckpointError(msg)

    if size < 8:
        bad("shorter than its 8-byte header length")
    (n,) = struct.unpack("<Q", buf[:8])
    if n > MAX_HEADER_BYTES or 8 + n > size:
        bad(f"header length {n} exceeds the file ({size} bytes) or the limit")
    header = _json(buf[8 : 8 + n], f"{path} header")
    if not isinstance(header, dict):
        bad("header is not a JSON object")
    header.pop("__metadata__", None)
    spans = []
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            bad(f"entry {name!r} is malformed")
        dtype = _CODES.get(info["dtype"]) if isinstance(info["dtype"], str) else None
        shape, offs = info["shape"], info["data_offsets"]
        if dtype is None:
            bad(f"entry {name!r} has unknown dtype {info['dtype']!r:.40}")
        if not isinstance(shape, list) or len(shape) > MAX_DIMS or not all(_is_index(d) for d in shape):
            bad(f"entry {name!r} has an invalid shape {shape!r:.80}")
        if not isinstance(offs, list) or len(offs) != 2 or not all(_is_index(o) for o in offs) or offs[0] > offs[1]:
            bad(f"entry {name!r} has invalid data_offsets {offs!r:.80}")
        numel = extent = 1
        for d in shape:
            numel *= d
            extent *= max(d, 1)
        if extent * dtype.itemsize > MAX_INT:
            bad(f"entry {name!r}: shape {shape!r:.80} overflows a 64-bit element count")
        if numel * dtype.itemsize != offs[1] - offs[0]:
            bad(f"entry {name!r}: {numel} x {dtype} does not fill bytes {offs}")
        spans.append((offs[0], offs[1], name, dtype, shape))
    spans.sort()
    pos = 0
    for b, e, name, _, _ in spans:
        if b != pos:
            bad(f"entry {name!r} starts at {b}, expected {pos} (gap or overlap)")
        pos = e
    if 8 + n + pos != size:
        bad(f"data is {size - 8 - n} bytes, the header describes {pos}")
    base = 8 + n
    out = {}
    for b, e, name, dtype, shape in spans:
        if e == b:
            out[name] = torch.empty(shape, dtype=dtype)
            continue
        raw = torch.frombuffer(buf, dtype=torch.uint8, count=e - b, offset=base + b)
        if (base + b) % dtype.itemsize:
            raw = raw.clone()
        out[name] = raw.view(dtype).reshape(shape)
    return out
