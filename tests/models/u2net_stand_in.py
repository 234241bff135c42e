"""A stand-in for rembg's `u2net.onnx`, written at test time: the smallest ONNX model rembg's u2net session runs.

rembg's `U2netSession` feeds its model's first input a (1, 3, 320, 320) float image and reads channel 0
of the first output as the mask. The stand-in is a 1x1 convolution (3 -> 1 channels) and a sigmoid:
(1, 3, 320, 320) -> (1, 1, 320, 320), input named `input.1` as in the real file. Its weights make the
mask follow the red channel, so a red subject on a blue background comes out opaque on transparent.

torch's ONNX exporter needs the `onnx` package, which the worker does not depend on; so the model's
protobuf (onnx.proto3's ModelProto) is written here directly, field by field, in protobuf's wire
format. onnxruntime (a dependency of rembg) reads it.
"""

from __future__ import annotations

import struct

SIDE = 320
INPUT = "input.1"
FLOAT = 1  # TensorProto.DataType.FLOAT
IR_VERSION = 8
OPSET = 13
RED_WEIGHTS = (8.0, 0.0, -8.0)  # mask = sigmoid(8 * red - 8 * blue), on the normalised image


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _int(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def _bytes(field: int, value: bytes | str) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def _tensor(name: str, dims: tuple[int, ...], values: tuple[float, ...]) -> bytes:
    """TensorProto: dims (1), data_type (2), name (8), raw_data (9, little-endian float32)."""
    raw = struct.pack(f"<{len(values)}f", *values)
    return b"".join(_int(1, dim) for dim in dims) + _int(2, FLOAT) + _bytes(8, name) + _bytes(9, raw)


def _value_info(name: str, dims: tuple[int, ...]) -> bytes:
    """ValueInfoProto: name (1), type (2) = TypeProto.tensor_type (1) {elem_type (1), shape (2) {dim (1)}}."""
    shape = b"".join(_bytes(1, _int(1, dim)) for dim in dims)
    return _bytes(1, name) + _bytes(2, _bytes(1, _int(1, FLOAT) + _bytes(2, shape)))


def _node(op_type: str, inputs: tuple[str, ...], output: str) -> bytes:
    """NodeProto: input (1), output (2), name (3), op_type (4)."""
    return b"".join(_bytes(1, name) for name in inputs) + _bytes(2, output) + _bytes(3, output) + _bytes(4, op_type)


def u2net_stand_in() -> bytes:
    """The stand-in model's bytes (a few hundred), the same every time."""
    graph = (
        _bytes(1, _node("Conv", (INPUT, "weight", "bias"), "logits"))
        + _bytes(1, _node("Sigmoid", ("logits",), "mask"))
        + _bytes(2, "u2net_stand_in")
        + _bytes(5, _tensor("weight", (1, 3, 1, 1), RED_WEIGHTS))
        + _bytes(5, _tensor("bias", (1,), (0.0,)))
        + _bytes(11, _value_info(INPUT, (1, 3, SIDE, SIDE)))
        + _bytes(12, _value_info("mask", (1, 1, SIDE, SIDE)))
    )
    opset = _int(2, OPSET)  # OperatorSetIdProto: the default domain (1) left empty, version (2)
    return _int(1, IR_VERSION) + _bytes(2, "horde-worker-tests") + _bytes(7, graph) + _bytes(8, opset)
