"""A small helper for writing ONNX graphs by hand (opset 17, ONNX Runtime 1.32).

``GraphBuilder.op("MatMul", a, b)`` appends a node and returns its (fresh) output name;
``const`` adds an initializer, ``transposed`` the transpose of an (out, in) weight. Names
are unique per builder, so sub-graphs (Loop bodies) get their own builder with a prefix.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
ELEM = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE,
        np.dtype(np.int64): TensorProto.INT64, np.dtype(np.bool_): TensorProto.BOOL}


class GraphBuilder:
    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def fresh(self, hint: str) -> str:
        self._n += 1
        return f"{self.prefix}{hint}_{self._n}"

    def const(self, value: np.ndarray | float | int, dtype: Any = None, hint: str = "c") -> str:
        arr = np.asarray(value, dtype=dtype)
        name = self.fresh(hint)
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def transposed(self, w: np.ndarray, dtype: Any = None) -> str:
        """``w.T`` for an (out, in) weight ``w``, with an initializer that holds the bytes
        an ``.npz`` archive holds for ``w`` (so an image stores the weight once: its graphs
        refer to it in ``net.npz`` / ``core.npz``, ``compiler/tensor_store.py``): a
        ``Transpose`` of ``w`` in C order, or ``w.T`` itself where ``w`` is Fortran-ordered
        (its memory is ``w.T`` in C order, and ``.npz`` keeps it as it is). ONNX Runtime
        folds the constant when it loads the graph; a transpose is exact, so the graph
        computes what it did with a constant ``w.T``."""
        if w.ndim == 2 and w.flags.f_contiguous and not w.flags.c_contiguous:
            return self.const(w.T, dtype)
        return self.op("Transpose", self.const(w, dtype))

    def op(self, op_type: str, *inputs: str, outputs: int = 1, name: str | None = None,
           **attrs: Any) -> Any:
        outs = [name] if name is not None and outputs == 1 else \
            [self.fresh(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, **attrs))
        return outs[0] if outputs == 1 else outs

    def cast(self, x: str, dtype: Any) -> str:
        """``x`` converted to the numpy ``dtype`` (``Cast``)."""
        return self.op("Cast", x, to=helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))

    def split(self, x: str, parts: int, axis: int = 0) -> list[str]:
        """``x`` cut into ``parts`` equal pieces along ``axis`` (a list even for one)."""
        out = self.op("Split", x, outputs=parts, axis=axis)
        return [out] if parts == 1 else out

    def graph(self, name: str, inputs: list[onnx.ValueInfoProto],
              outputs: list[onnx.ValueInfoProto]) -> onnx.GraphProto:
        return helper.make_graph(self.nodes, name, inputs, outputs, self.inits)


def value(name: str, dtype: Any, shape: list[Any]) -> onnx.ValueInfoProto:
    """A graph input/output declaration; ``shape`` entries may be names (symbolic dims)."""
    return helper.make_tensor_value_info(name, ELEM[np.dtype(dtype)], shape)


def model(graph: onnx.GraphProto, doc: str) -> onnx.ModelProto:
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                          producer_name="spikeflight", doc_string=doc)
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def zeros_like_rows(b: GraphBuilder, ref: str, width: int, dtype: Any) -> str:
    """A (rows(ref), width) tensor of zeros, ``ref`` being any (rows, ...) tensor."""
    rows = b.op("Slice", b.op("Shape", ref), b.const([0], np.int64), b.const([1], np.int64))
    shape = b.op("Concat", rows, b.const([width], np.int64), axis=0)
    return b.op("ConstantOfShape", shape,
                value=numpy_helper.from_array(np.zeros(1, dtype=dtype)))
