"""Each large tensor of an image's ONNX graphs stored once: in the network's own arrays
(``net.npz``, ``core.npz``) where it is one of them, else in the ``tensors.bin`` section.

The chunk, evaluation and fixed-point graphs share most of their weights (the encoder,
SDLI and input layer appear in all of them), and they hold the network's weights as the
network stores them (``GraphBuilder.transposed``), so the float weights are exactly the
arrays of ``net.npz`` and the integer weights those of ``core.npz``. :func:`share_tensors`
moves every tensor of at least ``MIN_BYTES`` out of the graphs and leaves an ONNX
external-data reference (location: a section name, offset and length in bytes) in its
place: to the array's data inside an uncompressed ``.npz`` section when its bytes are
one of that section's arrays (same data type, same bytes), else to one copy in
``tensors.bin`` (identical tensors once). Initializers of sub-graphs (``Loop``/``Scan``
bodies) are first moved up to the main graph, which the bodies still see by name: ONNX
Runtime resolves in-memory external data only there. The runtime hands those sections to
ONNX Runtime with ``SessionOptions.add_external_initializers_from_files_in_memory``
(``runtime.backends``); the graphs compute bit for bit what they computed with their own
copies.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zipfile

import numpy as np
import onnx
from onnx import helper

from runtime.backends import EXTERNAL_DATA, TENSOR_STORE

MIN_BYTES = 1024


def _hoist(graph: onnx.GraphProto, top: onnx.GraphProto, names: set[str]) -> None:
    """Move the initializers of every sub-graph of ``graph`` (recursively) into ``top``,
    whose value names so far are ``names``. A name used twice would make a body read
    another's tensor, so it is an error."""
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                _hoist(attr.g, top, names)
                for tensor in attr.g.initializer:
                    if tensor.name in names:
                        raise ValueError(f"initializer name {tensor.name!r} is used twice; "
                                         "sub-graph initializers cannot move to the main graph")
                    names.add(tensor.name)
                top.initializer.extend(attr.g.initializer)
                del attr.g.initializer[:]


Span = tuple[str, int, int]  # (section, offset, length)


def npz_spans(name: str, blob: bytes) -> dict[tuple[int, bytes], Span]:
    """``{(ONNX data type, SHA-256 of the bytes): (name, offset, length)}`` for the data
    of the arrays stored uncompressed (and little-endian) in the ``.npz`` section ``blob``."""
    spans: dict[tuple[int, bytes], Span] = {}
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        for info in zf.infolist():
            if info.compress_type != zipfile.ZIP_STORED:
                continue
            n_name, n_extra = struct.unpack_from("<HH", blob, info.header_offset + 26)
            start = info.header_offset + 30 + n_name + n_extra
            fh = io.BytesIO(blob[start : start + info.file_size])
            version = np.lib.format.read_magic(fh)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, _, dtype = read(fh)
            if dtype.byteorder == ">" or dtype.hasobject:
                continue  # (Fortran order is fine: what counts is the bytes)
            offset, length = start + fh.tell(), int(np.prod(shape)) * dtype.itemsize
            if length >= MIN_BYTES:
                raw = blob[offset : offset + length]
                key = (helper.np_dtype_to_tensor_dtype(dtype), hashlib.sha256(raw).digest())
                spans.setdefault(key, (name, offset, length))
    return spans


def share_tensors(graphs: dict[str, bytes], arrays: dict[str, bytes] | None = None
                  ) -> tuple[dict[str, bytes], bytes]:
    """``(graphs with external references, tensors.bin bytes)`` for serialized ONNX models
    ``graphs`` (section name -> bytes); ``arrays``: the ``.npz`` sections (name -> bytes,
    names from ``runtime.backends.EXTERNAL_DATA``) whose arrays the graphs may refer to."""
    where: dict[tuple[int, bytes], Span] = {}
    for name, blob in (arrays or {}).items():
        if name not in EXTERNAL_DATA or name == TENSOR_STORE:
            raise ValueError(f"the runtime does not hand section {name!r} to ONNX Runtime")
        where.update({k: v for k, v in npz_spans(name, blob).items() if k not in where})
    store = bytearray()
    out = {}
    for name, blob in graphs.items():
        model = onnx.load_from_string(blob)
        _hoist(model.graph, model.graph, {t.name for t in model.graph.initializer})
        for tensor in model.graph.initializer:
            if not tensor.HasField("raw_data") or len(tensor.raw_data) < MIN_BYTES:
                continue
            raw = tensor.raw_data
            key = (tensor.data_type, hashlib.sha256(raw).digest())
            if key not in where:
                where[key] = (TENSOR_STORE, len(store), len(raw))
                store += raw
            location, offset, length = where[key]
            tensor.ClearField("raw_data")
            tensor.data_location = onnx.TensorProto.EXTERNAL
            del tensor.external_data[:]
            for k, v in (("location", location), ("offset", str(offset)),
                         ("length", str(length))):
                entry = tensor.external_data.add()
                entry.key, entry.value = k, v
        out[name] = model.SerializeToString()
    return out, bytes(store)
