#!/usr/bin/env python3
"""Golden GGUF file for `polychip convert` (Tests/PolychipCLITests/ConvertCommandTests.swift).

Written with gguf-py, ggml's own Python writer and quantizer (pip install gguf; not needed by the
tests, which read the files committed here): q4_0.gguf holds metadata of every value kind (a
string, an array of strings, an array of ints, a float) and three tensors:

* blk.0.ffn_down.weight  Q4_0, a weight W[N=8, K=64] (ggml order [64, 8])
* blk.0.ffn_down_exps.weight  Q4_0, an expert stack [E=2, N=4, K=32]
* output_norm.weight  F32 [64]

q4_0_gguf_weight.npy and q4_0_gguf_exps.npy are gguf-py's own dequantization of the two Q4_0
tensors (float32, [N, K] and [E, N, K]): the converted native layout must reproduce them
bit for bit.
Run: python3 make_gguf_golden.py   (deterministic)
"""
import os

import numpy as np
import gguf

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(20261207)

w = (rng.standard_normal((8, 64)) * 0.5).astype(np.float32)
w[3, 0:32] = 0.0  # an all-zero block
exps = (rng.standard_normal((2, 4, 32)) * 2).astype(np.float32)
norm = rng.standard_normal(64).astype(np.float32)

qw = gguf.quants.quantize(w, gguf.GGMLQuantizationType.Q4_0)
qe = gguf.quants.quantize(exps, gguf.GGMLQuantizationType.Q4_0)

writer = gguf.GGUFWriter(os.path.join(HERE, "q4_0.gguf"), "llama")
writer.add_string("general.name", "polychip-golden")
writer.add_array("tokenizer.ggml.tokens", ["<s>", "</s>", "hello"])
writer.add_array("polychip.test.ints", [1, 2, 3, 4])
writer.add_float32("polychip.test.eps", 1e-6)
writer.add_tensor("blk.0.ffn_down.weight", qw, raw_dtype=gguf.GGMLQuantizationType.Q4_0)
writer.add_tensor("blk.0.ffn_down_exps.weight", qe, raw_dtype=gguf.GGMLQuantizationType.Q4_0)
writer.add_tensor("output_norm.weight", norm)
writer.write_header_to_file()
writer.write_kv_data_to_file()
writer.write_tensors_to_file()
writer.close()

np.save(os.path.join(HERE, "q4_0_gguf_weight.npy"), gguf.quants.dequantize(qw, gguf.GGMLQuantizationType.Q4_0).astype(np.float32))
np.save(os.path.join(HERE, "q4_0_gguf_exps.npy"), gguf.quants.dequantize(qe, gguf.GGMLQuantizationType.Q4_0).astype(np.float32))
