"""The checkpoint sniff that keeps unloadable custom-model files from being offered."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from horde_worker_regen.models.checkpoint_format import checkpoint_problem, header_problem

TENSOR_NAME = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=40).filter(
    lambda name: name != "__metadata__"
)
CHECKPOINT_NAMES = st.lists(TENSOR_NAME, min_size=1, max_size=6, unique=True).filter(
    lambda names: not all("lora" in name.lower() for name in names)
)


def safetensors_bytes(sizes: dict[str, int]) -> bytes:
    """A well-formed safetensors file: each tensor `size` bytes, laid out one after another."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, size in sizes.items():
        header[name] = {"dtype": "U8", "shape": [size], "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header).encode()
    return len(encoded).to_bytes(8, "little") + encoded + bytes(offset)


def problem_of(content: bytes, suffix: str) -> str | None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"model{suffix}"
        path.write_bytes(content)
        return checkpoint_problem(path)


@given(st.binary(max_size=256), st.sampled_from([".safetensors", ".sft", ".ckpt", ".pt", ".bin", ""]))
def test_any_bytes_give_a_verdict_never_an_exception(content: bytes, suffix: str) -> None:
    problem = problem_of(content, suffix)
    assert problem is None or problem.strip()


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    ),
    st.integers(min_value=0, max_value=1 << 40),
)
def test_any_json_header_gives_a_verdict(header: object, data_size: int) -> None:
    problem = header_problem(json.dumps(header).encode(), data_size)
    assert problem is None or problem.strip()


@given(
    CHECKPOINT_NAMES.flatmap(
        lambda names: st.fixed_dictionaries({name: st.integers(min_value=0, max_value=64) for name in names})
    )
)
def test_a_well_formed_safetensors_checkpoint_is_accepted(sizes: dict[str, int]) -> None:
    assert problem_of(safetensors_bytes(sizes), ".safetensors") is None


@given(
    st.dictionaries(TENSOR_NAME, st.integers(min_value=1, max_value=64), min_size=1, max_size=4),
    st.integers(min_value=1, max_value=64),
)
def test_a_truncated_safetensors_file_is_refused(sizes: dict[str, int], cut: int) -> None:
    content = safetensors_bytes(sizes)
    cut = min(cut, len(content))
    problem = problem_of(content[:-cut], ".safetensors")
    assert problem is not None


def test_each_unloadable_file_is_named_for_what_it_is(tmp_path: Path) -> None:
    checkpoint = safetensors_bytes({"model.diffusion_model.out.weight": 4})
    assert checkpoint_problem(tmp_path / "absent.safetensors") == "does not exist"
    assert checkpoint_problem(tmp_path) == "is not a file"
    assert problem_of(b"", ".safetensors") == "is empty"
    assert problem_of(checkpoint, ".safetensors.part") is not None
    assert "LoRA" in (problem_of(safetensors_bytes({"lora_unet_a.lora_up.weight": 4}), ".safetensors") or "")
    assert "holds no tensors" in (problem_of(safetensors_bytes({}), ".safetensors") or "")
    assert "truncated" in (problem_of(checkpoint[:-1], ".safetensors") or "")
    assert "rename it to end in .safetensors" in (problem_of(checkpoint, ".ckpt") or "")
    assert "not a checkpoint" in (problem_of(b"<html>404</html>", ".ckpt") or "")


def test_pytorch_files_are_accepted_by_their_magic() -> None:
    assert problem_of(b"PK\x03\x04" + bytes(40), ".ckpt") is None  # torch.save's zip format
    assert problem_of(b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8", ".pt") is None  # the legacy pickle format
