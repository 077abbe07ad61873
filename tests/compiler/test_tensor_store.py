"""compiler.tensor_store: the image's ONNX graphs hold no copy of their large tensors but
refer to the network's own arrays (``net.npz``, ``core.npz``) or to one copy in
``tensors.bin``, and compute exactly what they computed with their own copies; the image
of the shipped policy stores each weight once and fits in 1.5 MB."""

from __future__ import annotations

import hashlib

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from compiler.tensor_store import MIN_BYTES, share_tensors
from runtime.backends import EXTERNAL_DATA, TENSOR_STORE, OnnxBackend
from runtime.image import arrays_to_bytes, load_image, read_image
from runtime.loader import load_flight_policy

MAX_IMAGE_BYTES = 1.5e6  # the shipped hatch policy's loihi2 image (3.83 MB before)


def _external(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    return [t for t in model.graph.initializer
            if t.data_location == onnx.TensorProto.EXTERNAL]


def _where(t: onnx.TensorProto) -> tuple[str, int, int]:
    info = {e.key: e.value for e in t.external_data}
    return info["location"], int(info["offset"]), int(info["length"])


def _inline(model: onnx.ModelProto, sections: dict[str, bytes]) -> bytes:
    """The model with every external tensor's bytes put back inline."""
    for t in _external(model):
        location, off, n = _where(t)
        assert location in EXTERNAL_DATA
        t.raw_data = sections[location][off : off + n]
        t.data_location = onnx.TensorProto.DEFAULT
        del t.external_data[:]
    return model.SerializeToString()


def _session(blob: bytes, sections: dict[str, bytes]) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    bufs = {n: np.frombuffer(b, np.uint8) for n, b in sections.items()}
    opts.add_external_initializers_from_files_in_memory(
        list(bufs), list(bufs.values()), [len(b) for b in bufs.values()])
    return ort.InferenceSession(blob, opts, providers=["CPUExecutionProvider"])


def test_graphs_share_one_copy_and_compute_the_same(flight_image) -> None:
    image, pub = flight_image
    img = read_image(load_image(image))
    graphs = {n: b for n, b in img.sections.items() if n.endswith(".onnx")}
    assert set(graphs) == {"chunk.onnx", "chunk_fixed.onnx"}  # what the backends read
    spans, digests = set(), []
    for blob in graphs.values():
        model = onnx.load_from_string(blob)
        for t in model.graph.initializer:  # nothing large left inline
            assert t.data_location == onnx.TensorProto.EXTERNAL or len(t.raw_data) < MIN_BYTES
        for t in _external(model):
            location, off, n = _where(t)
            assert location in EXTERNAL_DATA
            if t.data_type == onnx.TensorProto.DOUBLE:  # the float weights: net.npz's arrays
                assert location == "net.npz", t.name
            spans.add((location, off, n))
    for location, off, n in sorted(spans):
        digests.append(hashlib.sha256(img.sections[location][off : off + n]).digest())
    assert len(set(digests)) == len(digests)  # no tensor stored twice
    in_store = sum(n for location, _, n in spans if location == TENSOR_STORE)
    assert in_store == len(img.sections.get(TENSOR_STORE, b""))  # and nothing else there
    # the runtime's backend (sections handed over in memory) vs the same graph inlined
    policy = load_flight_policy(image, pub)
    rng = np.random.default_rng(3)
    obs_dim, act_dim = policy.net.enc_w1.shape[1], policy.net.action_size
    feeds = {"obs": rng.uniform(-1, 1, (1, obs_dim)), "x": rng.normal(size=(1, act_dim)),
             "ks": np.arange(19, -1, -1, dtype=np.int64), "coef": rng.uniform(0, 1, (20, 5)),
             "z": rng.normal(size=(20, 1, act_dim))}
    for fixed, name in ((False, "chunk.onnx"), (True, "chunk_fixed.onnx")):
        backend = OnnxBackend(policy, fixed)
        backend.start()
        got = backend.session.run(None, feeds)
        ref = ort.InferenceSession(_inline(onnx.load_from_string(graphs[name]), img.sections),
                                   providers=["CPUExecutionProvider"]).run(None, feeds)
        assert all(np.array_equal(a, b) for a, b in zip(got, ref, strict=True)), name


def test_image_fits_in_1_5_mb_and_stores_each_weight_once(flight_image) -> None:
    image, _ = flight_image
    data = load_image(image)
    img = read_image(data)
    assert len(data) <= MAX_IMAGE_BYTES, {n: len(b) for n, b in img.sections.items()}
    weights = {n: w for n, w in img.arrays("net.npz").items() if w.dtype == np.float64}
    weights.update({n: w for n, w in img.arrays("core.npz").items() if n.startswith("weights")})
    assert {"enc_w1", "enc_w2", "w_in", "hidden_w.0", "readout_w", "weights.0"} <= set(weights)
    for name, w in weights.items():
        if w.nbytes < MIN_BYTES:
            continue
        # anywhere in the image, in either layout (a graph may hold the transpose)
        copies = sum(data.count(b) for b in {w.tobytes("C"), w.tobytes("F")})
        assert copies == 1, f"{name} stored {copies} times"


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
        sess = _session(graphs[name], {TENSOR_STORE: store})
        np.testing.assert_array_equal(sess.run(None, {"x": x})[0], x @ weight)
    # tensors that are arrays of an uncompressed .npz section are referred to there (a
    # Fortran-ordered array by its memory, i.e. its transpose); a deflated one is not used
    net = arrays_to_bytes({"small": np.ones(3), "w": w, "wf": np.asfortranarray(w.T + 2)})
    core = arrays_to_bytes({"w1": w + 1}, compress=True)
    graphs, store = share_tensors({"a.onnx": mm("a", w), "c.onnx": mm("c", w + 1),
                                   "d.onnx": mm("d", w + 2)}, {"net.npz": net, "core.npz": core})
    assert len(store) == w.nbytes  # only w + 1
    for name, weight in (("a.onnx", w), ("c.onnx", w + 1), ("d.onnx", w + 2)):
        model = onnx.load_from_string(graphs[name])
        assert [_where(t)[0] for t in _external(model)] == \
            ["tensors.bin" if name == "c.onnx" else "net.npz"]
        sess = _session(graphs[name], {"net.npz": net, TENSOR_STORE: store})
        np.testing.assert_array_equal(sess.run(None, {"x": x})[0], x @ weight)
    with pytest.raises(ValueError, match="does not hand section 'golden.npz'"):
        share_tensors({"a.onnx": mm("a", w)}, {"golden.npz": net})


def test_a_sub_graph_name_used_twice_is_refused() -> None:
    """Hoisting two branches' initializers of the same name would make one branch read the
    other's tensor: refused instead."""
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
