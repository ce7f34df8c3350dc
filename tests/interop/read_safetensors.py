#!/usr/bin/python3
"""Load a safetensors file (for example one written by duel.save) into PyTorch tensors with only
struct + json + torch.frombuffer: Debian 12's python3-torch 1.13 has no safetensors module.
Usage: read_safetensors.py FILE  -- prints "name shape values" per tensor, then the metadata."""
import json, struct, sys
import torch

DTYPES = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
          "U8": torch.uint8, "BOOL": torch.bool}

def load_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    data = bytearray(raw[8 + n:])  # writable, so frombuffer does not warn; little-endian host
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        dtype = DTYPES[info["dtype"]]
        size = torch.empty(0, dtype=dtype).element_size()  # dtype.itemsize is newer than 1.13
        t = (torch.frombuffer(data, dtype=dtype, count=(end - begin) // size, offset=begin)
             if end > begin else torch.empty(0, dtype=dtype))
        tensors[name] = t.reshape(info["shape"]).clone()
    return tensors, meta

if __name__ == "__main__":
    tensors, meta = load_safetensors(sys.argv[1])
    for name in sorted(tensors):
        t = tensors[name]
        print(name, tuple(t.shape), t.flatten().tolist())
    for k in sorted(meta):
        if k != "duel.layout":
            print("metadata", k, "=", meta[k])
