#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets (fuzz/corpus/<target>/): small GGUF files made
with gguf-py (llama.cpp's reference writer), the reference texts of ../shared/reference/ and a few
UTF-8 edge cases. Run from the repository root; scripts/fuzz.sh runs it when a corpus is empty."""
import glob
import hashlib
import json
import os
import sys

import numpy as np
import gguf

root = os.path.dirname(os.path.abspath(__file__))
shared = os.path.join(root, "..", "..", "shared", "reference")


def put(target, data):
    d = os.path.join(root, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + hashlib.sha1(data).hexdigest()[:16]), "wb") as f:
        f.write(data)


def gguf_bytes(build):
    os.makedirs(os.path.join(root, "corpus"), exist_ok=True)
    path = os.path.join(root, "corpus", ".tmp.gguf")
    w = gguf.GGUFWriter(path, "llama")
    build(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    data = open(path, "rb").read()
    os.remove(path)
    return data


def tiny_llama(w):
    w.add_context_length(64)
    w.add_embedding_length(8)
    w.add_block_count(1)
    w.add_feed_forward_length(16)
    w.add_head_count(2)
    w.add_head_count_kv(1)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    toks = ["<|endoftext|>", "a", "b", "ab", "Ġ", "Ġa", "<|im_start|>"]
    w.add_token_list(toks)
    w.add_token_types([3, 1, 1, 1, 1, 1, 3])
    w.add_token_merges(["a b", "Ġ a"])
    w.add_bos_token_id(0)
    w.add_eos_token_id(0)
    rng = np.random.default_rng(0)
    w.add_tensor("token_embd.weight", rng.standard_normal((7, 8), dtype=np.float32))
    w.add_tensor("output_norm.weight", np.ones(8, dtype=np.float32))
    for name, shape in [("attn_q", (8, 8)), ("attn_k", (4, 8)), ("attn_v", (4, 8)), ("attn_output", (8, 8)),
                        ("ffn_gate", (16, 8)), ("ffn_up", (16, 8)), ("ffn_down", (8, 16))]:
        w.add_tensor(f"blk.0.{name}.weight", rng.standard_normal(shape, dtype=np.float32).astype(np.float16))
    w.add_tensor("blk.0.attn_norm.weight", np.ones(8, dtype=np.float32))
    w.add_tensor("blk.0.ffn_norm.weight", np.ones(8, dtype=np.float32))


def every_type(w):
    w.add_uint8("t.u8", 7)
    w.add_int8("t.i8", -7)
    w.add_uint16("t.u16", 700)
    w.add_int16("t.i16", -700)
    w.add_uint32("t.u32", 70000)
    w.add_int32("t.i32", -70000)
    w.add_float32("t.f32", 1.5)
    w.add_uint64("t.u64", 1 << 40)
    w.add_int64("t.i64", -(1 << 40))
    w.add_float64("t.f64", 2.5)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "héllo")
    w.add_array("t.arr", [1, 2, 3])
    w.add_array("t.strs", ["x", "yz"])
    w.add_tensor("q8", np.zeros((2, 32), dtype=np.float32), raw_dtype=None)


def main():
    put("gguf_reader", gguf_bytes(tiny_llama))
    put("gguf_reader", gguf_bytes(every_type))
    texts = ["", "Hello world", " leading space", "multi\nline\ttabs", "émoji 😀 ✓", "<|im_start|>user\nhi<|im_end|>",
             "1234567890", "   ", "a" * 300]
    for f in sorted(glob.glob(os.path.join(shared, "*.json"))):
        for case in json.load(open(f)).get("tokenize", []):
            texts.append(case["text"])
    for i, t in enumerate(dict.fromkeys(texts)):
        put("tokenizer", bytes([i % 4]) + t.encode("utf-8"))
    for i, b in enumerate([b"", b"\xe0\x80\x80abc", b"\xf0\x9f\x98", b"\xed\xa0\x80z\xc3\xa9", "héllo 😀".encode(),
                           b"\x80\x80\xc3", b"\xf4\x90\x80\x80"]):
        put("stream_decoder", bytes([i]) + b)
    print("seeds written", file=sys.stderr)


main()
