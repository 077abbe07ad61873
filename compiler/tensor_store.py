"""One copy of each large tensor of an image's ONNX graphs, in the ``tensors.bin`` section.

The chunk, evaluation and fixed-point graphs share most of their weights (the encoder,
SDLI and input layer appear in all four), and each graph used to carry its own copy.
:func:`share_tensors` moves every tensor of at least ``MIN_BYTES`` out of the graphs into
one store, identical tensors (same ONNX data type, same bytes) once, and leaves ONNX
external-data references (location ``tensors.bin``, offset, length in bytes) in their
place. Initializers of sub-graphs (``Loop``/``Scan`` bodies) are first moved up to the
main graph, which the bodies still see by name: ONNX Runtime resolves in-memory external
data only there. The runtime hands the store to ONNX Runtime with
``SessionOptions.add_external_initializers_from_files_in_memory`` (``runtime.backends``);
the graphs compute bit for bit what they computed with their own copies.
"""

from __future__ import annotations

import hashlib

import onnx

from runtime.backends import TENSOR_STORE

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


def share_tensors(graphs: dict[str, bytes]) -> tuple[dict[str, bytes], bytes]:
    """``(graphs with external references, store bytes)`` for serialized ONNX models
    ``graphs`` (section name -> bytes)."""
    store = bytearray()
    where: dict[tuple[int, bytes], tuple[int, int]] = {}
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
                where[key] = (len(store), len(raw))
                store += raw
            offset, length = where[key]
            tensor.ClearField("raw_data")
            tensor.data_location = onnx.TensorProto.EXTERNAL
            del tensor.external_data[:]
            for k, v in (("location", TENSOR_STORE), ("offset", str(offset)),
                         ("length", str(length))):
                entry = tensor.external_data.add()
                entry.key, entry.value = k, v
        out[name] = model.SerializeToString()
    return out, bytes(store)
