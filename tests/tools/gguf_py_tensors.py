"""Dump a GGUF file's tensor table with gguf-py (the reference reader from llama.cpp), as JSON.

Used by tests/info.rs as an independent check of `tsharp info`."""
import json
import sys

import gguf

r = gguf.GGUFReader(sys.argv[1])
arch = r.fields["general.architecture"]
out = {
    "architecture": bytes(arch.parts[arch.data[0]]).decode(),
    "tensors": [
        {
            "name": t.name,
            "type_id": int(t.tensor_type),
            "type": t.tensor_type.name,
            "shape": [int(d) for d in t.shape],
            "bytes": int(t.n_bytes),
            "offset": int(t.data_offset),
        }
        for t in r.tensors
    ],
}
json.dump(out, sys.stdout)
