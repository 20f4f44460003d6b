#!/usr/bin/env python3
"""Unpacks every crate:// entry of a recipe's crate list as a cargo directory source.

Usage: scripts/yocto-vendor.py CRATES_INC DL_DIR OUT_DIR   (prints how many crates)

Each crate's .crate file comes from DL_DIR (BitBake's download folder), its sha256 is checked
against the recipe's SRC_URI[NAME-VERSION.sha256sum], and it is unpacked to OUT_DIR/NAME-VERSION
with the .cargo-checksum.json a directory source needs.
"""
import hashlib
import io
import json
import os
import re
import sys
import tarfile


def main():
    inc, dl, out = sys.argv[1:4]
    text = open(inc).read()
    sums = dict(re.findall(r'SRC_URI\[(.+?)\.sha256sum\] = "([0-9a-f]{64})"', text))
    crates = sorted(set(re.findall(r"crate://crates\.io/([^/\s]+)/(\S+) \\", text)))
    for name, ver in crates:
        key = "%s-%s" % (name, ver)
        data = open(os.path.join(dl, key + ".crate"), "rb").read()
        h = hashlib.sha256(data).hexdigest()
        if h != sums.get(key):
            sys.exit("%s.crate: sha256 %s, the recipe says %s" % (key, h, sums.get(key)))
        with tarfile.open(fileobj=io.BytesIO(data)) as t:
            t.extractall(out, filter="data")
        with open(os.path.join(out, key, ".cargo-checksum.json"), "w") as f:
            json.dump({"files": {}, "package": h}, f)
    print(len(crates))


if __name__ == "__main__":
    main()
