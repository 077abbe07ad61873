"""compiler.tensor_store: the image's ONNX graphs share one copy of their large tensors,
and compute exactly what they computed with their own copies."""

from __future__ import annotations

import hashlib

import numpy as np
import onnx
import onnxruntime as ort

from compiler.tensor_store import MIN_BYTES, share_tensors
from runtime.backends import TENSOR_STORE, OnnxBackend
from runtime.image import load_image, read_image
from runtime.loader import load_flight_policy


def _external(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    return [t for t in model.graph.initializer
            if t.data_location == onnx.TensorProto.EXTERNAL]


def _inline(model: onnx.ModelProto, store: bytes) -> bytes:
    """The model with every external tensor's bytes put back inline."""
    for t in _external(model):
        info = {e.key: e.value for e in t.external_data}
        assert info["location"] == TENSOR_STORE
        off, n = int(info["offset"]), int(info["length"])
        t.raw_data = store[off : off + n]
        t.data_location = onnx.TensorProto.DEFAULT
        del t.external_data[:]
    return model.SerializeToString()


def test_graphs_share_one_copy_and_compute_the_same(flight_image) -> None:
    image, pub = flight_image
    img = read_image(load_image(image))
    store = img.sections[TENSOR_STORE]
    graphs = {n: b for n, b in img.sections.items() if n.endswith(".onnx")}
    assert {"chunk.onnx", "chunk_fixed.onnx", "eval.onnx", "eval_fixed.onnx"} <= set(graphs)
    spans, digests = set(), []
    for blob in graphs.values():
        model = onnx.load_from_string(blob)
        for t in model.graph.initializer:  # nothing large left inline
            assert t.data_location == onnx.TensorProto.EXTERNAL or len(t.raw_data) < MIN_BYTES
        for t in _external(model):
            info = {e.key: e.value for e in t.external_data}
            spans.add((int(info["offset"]), int(info["length"])))
    for off, n in sorted(spans):
        digests.append(hashlib.sha256(store[off : off + n]).digest())
    assert len(set(digests)) == len(digests)  # no tensor stored twice
    assert sum(n for _, n in spans) == len(store)  # and nothing else in the store
    # the runtime's backend (store handed over in memory) vs the same graph inlined
    policy = load_flight_policy(image, pub)
    rng = np.random.default_rng(3)
    golden = img.arrays("golden.npz")
    obs_dim, act_dim = golden["obs"].shape[1], golden["x"].shape[1]
    feeds = {"obs": rng.uniform(-1, 1, (1, obs_dim)), "x": rng.normal(size=(1, act_dim)),
             "ks": np.arange(19, -1, -1, dtype=np.int64), "coef": rng.uniform(0, 1, (20, 5)),
             "z": rng.normal(size=(20, 1, act_dim))}
    for fixed, name in ((False, "chunk.onnx"), (True, "chunk_fixed.onnx")):
        backend = OnnxBackend(policy, fixed)
        backend.start()
        got = backend.session.run(None, feeds)
        ref = ort.InferenceSession(_inline(onnx.load_from_string(graphs[name]), store),
                                   providers=["CPUExecutionProvider"]).run(None, feeds)
        assert all(np.array_equal(a, b) for a, b in zip(got, ref, strict=True)), name


def test_identical_tensors_are_stored_once() -> None:
    from onnx import helper, numpy_helper

    w = np.arange(512, dtype=np.float64).reshape(16, 32)

    def mm(tag: str, weight: np.ndarray) -> bytes:
        g = helper.make_graph(
            [helper.make_node("MatMul", ["x", "w"], ["y"])], tag,
            [helper.make_tensor_value_info("x", onnx.TensorProto.DOUBLE, [1, 16])],
            [helper.make_tensor_value_info("y", onnx.TensorProto.DOUBLE, [1, 32])],
            [numpy_helper.from_array(weight, "w")])
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()

    graphs, store = share_tensors({"a.onnx": mm("a", w), "b.onnx": mm("b", w),
                                   "c.onnx": mm("c", w + 1)})
    assert len(store) == 2 * w.nbytes
    x = np.ones((1, 16))
    for name, weight in (("a.onnx", w), ("b.onnx", w), ("c.onnx", w + 1)):
        opts = ort.SessionOptions()
        buf = np.frombuffer(store, np.uint8)
        opts.add_external_initializers_from_files_in_memory([TENSOR_STORE], [buf], [len(buf)])
        sess = ort.InferenceSession(graphs[name], opts, providers=["CPUExecutionProvider"])
        np.testing.assert_array_equal(sess.run(None, {"x": x})[0], x @ weight)


def test_a_sub_graph_name_used_twice_is_refused() -> None:
    """Hoisting two branches' initializers of the same name would make one branch read the
    other's tensor: refused instead."""
    import pytest
    from onnx import helper, numpy_helper

    def branch(value: float) -> onnx.GraphProto:
        w = numpy_helper.from_array(np.full(256, value), "w")
        return helper.make_graph(
            [helper.make_node("Identity", ["w"], ["y"])], f"b{value}", [],
            [helper.make_tensor_value_info("y", onnx.TensorProto.DOUBLE, [256])], [w])

    g = helper.make_graph(
        [helper.make_node("If", ["c"], ["y"], then_branch=branch(1.0), else_branch=branch(2.0))],
        "g", [helper.make_tensor_value_info("c", onnx.TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.DOUBLE, [256])])
    blob = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    with pytest.raises(ValueError, match="initializer name 'w' is used twice"):
        share_tensors({"if.onnx": blob})
