#!/usr/bin/env python3
"""Makes runtime/tests/data/chat_cases.json, the expected renderings of runtime/tests/chat_template.rs.

- Each test model's own template (tokenizer.chat_template, read with gguf-py) rendered by Jinja2
  set up as transformers' apply_chat_template sets it up (ImmutableSandboxedEnvironment,
  trim_blocks, lstrip_blocks, loop controls, tojson = json.dumps, raise_exception,
  strftime_now), over multi-turn, system, tool-definition, tool-call and tool-response
  conversations.
- The built-in templates (chatml, llama3, gemma, phi3) rendered by llama.cpp's own
  llm_chat_apply_template: src/llama-chat.cpp of the llama.cpp that made shared/reference
  (llama-cpp-python 0.3.36's vendored copy, sha256-checked), compiled with a small driver.

Run from the repository root: python3 runtime/tests/tools/make_chat_cases.py
"""
import hashlib
import json
import os
import pathlib
import subprocess
import sys
import tarfile
import urllib.request
from datetime import datetime

import gguf
import jinja2
import jinja2.ext
import jinja2.sandbox

ROOT = pathlib.Path(__file__).resolve().parents[3]
MODELS = pathlib.Path(os.environ.get("TSHARP_MODEL_DIR", pathlib.Path.home() / ".cache/tensorsharp/models"))
SDIST_URL = ("https://files.pythonhosted.org/packages/ec/e9/e7de2b0463ea3ffbf0ede6cb21b58c1258a8f6521aae45ca773a59fe7cf3/"
             "llama_cpp_python-0.3.36.tar.gz")
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
CACHE = pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache")) / "tensorsharp/llama"

TEMPLATE_MODELS = {
    "smollm2-135m-q4_1": MODELS / "SmolLM2-135M-Instruct.Q4_1.gguf",
    "qwen2.5-coder-0.5b-q4_k_m": MODELS / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
}

TOOLS = [
    {"type": "function", "function": {
        "name": "move_arm",
        "description": "Move the robot arm to a joint position — slowly.",
        "parameters": {"type": "object", "properties": {
            "joint": {"type": "string", "enum": ["base", "elbow", "wrist"]},
            "angle": {"type": "number", "minimum": -90.0, "maximum": 90.0},
            "speed": {"type": "integer", "default": 1},
        }, "required": ["joint", "angle"]},
    }},
    {"type": "function", "function": {
        "name": "stop", "description": "Emergency stop.", "parameters": {"type": "object", "properties": {}},
    }},
]

CONVERSATIONS = [
    {"messages": [{"role": "user", "content": "Hello!"}], "add_generation_prompt": True},
    {"messages": [{"role": "user", "content": "Hello!"}], "add_generation_prompt": False},
    {"messages": [
        {"role": "system", "content": "You are a robot controller. Answer briefly."},
        {"role": "user", "content": "Turn left."},
        {"role": "assistant", "content": "Turning left."},
        {"role": "user", "content": "Now stop."},
        {"role": "assistant", "content": "Stopped."},
        {"role": "user", "content": "Report status."},
    ], "add_generation_prompt": True},
    {"messages": [
        {"role": "user", "content": "  padded \"quotes\", back\\slash\n\ttab, ünïcödé, 机器人 😀  "},
        {"role": "assistant", "content": "\nOK.\n"},
        {"role": "user", "content": "Again"},
    ], "add_generation_prompt": True},
    {"messages": [
        {"role": "system", "content": "You control an arm."},
        {"role": "user", "content": "Raise the elbow to 45 degrees, then stop."},
    ], "tools": TOOLS, "add_generation_prompt": True},
    {"messages": [
        {"role": "user", "content": "Raise the elbow."},
        {"role": "assistant", "content": None, "tool_calls": [
            {"type": "function", "function": {"name": "move_arm", "arguments": {"joint": "elbow", "angle": 45.0, "speed": 2}}},
            {"type": "function", "function": {"name": "stop", "arguments": {}}},
        ]},
        {"role": "tool", "content": "{\"ok\": true}"},
        {"role": "tool", "content": "stopped"},
        {"role": "assistant", "content": "Done: elbow at 45°, arm stopped."},
        {"role": "user", "content": "Thanks"},
    ], "tools": TOOLS, "add_generation_prompt": True},
    {"messages": [
        {"role": "user", "content": "Where?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"name": "locate", "arguments": {"what": "cup", "radius_m": 1.5e-3, "ids": [1, 2, 3], "exact": False, "hint": None}},
        ]},
        {"role": "tool", "content": "on the table"},
    ], "add_generation_prompt": False},
]

BUILTIN_CONVERSATIONS = [
    [{"role": "user", "content": "Hello!"}],
    [{"role": "system", "content": "You are a robot controller. Answer briefly."},
     {"role": "user", "content": "Turn left."},
     {"role": "assistant", "content": "Turning left."},
     {"role": "user", "content": "Now stop."}],
    [{"role": "system", "content": "  First rule. "},
     {"role": "system", "content": "\nSecond rule.\n"},
     {"role": "user", "content": "\t padded \"text\" ünïcödé 😀 \n"},
     {"role": "assistant", "content": " reply \n"},
     {"role": "user", "content": "again"}],
    [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
]


def hf_environment():
    """Jinja2 as transformers' _compile_jinja_template sets it up."""
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return datetime.now().strftime(format)

    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                                       extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def field_str(reader, key):
    f = reader.fields.get(key)
    return None if f is None else bytes(f.parts[f.data[0]]).decode()


def token_text(reader, key):
    f = reader.fields.get(key)
    if f is None:
        return ""
    tid = int(f.parts[f.data[0]][0])
    toks = reader.fields["tokenizer.ggml.tokens"]
    return bytes(toks.parts[toks.data[tid]]).decode()


def model_cases():
    env = hf_environment()
    cases = []
    for name, path in TEMPLATE_MODELS.items():
        r = gguf.GGUFReader(str(path))
        tmpl = env.from_string(field_str(r, "tokenizer.chat_template"))
        bos, eos = token_text(r, "tokenizer.ggml.bos_token_id"), token_text(r, "tokenizer.ggml.eos_token_id")
        for conv in CONVERSATIONS:
            try:
                rendered = tmpl.render(messages=conv["messages"], tools=conv.get("tools"), documents=None,
                                       add_generation_prompt=conv["add_generation_prompt"], bos_token=bos,
                                       eos_token=eos)
                cases.append({"model": name, **conv, "rendered": rendered})
            except Exception as e:  # the template refuses this conversation: so must we
                cases.append({"model": name, **conv, "error": f"{type(e).__name__}: {e}"})
    return cases


def llama_chat_driver():
    CACHE.mkdir(parents=True, exist_ok=True)
    tgz = CACHE / "llama_cpp_python-0.3.36.tar.gz"
    if not tgz.exists() or hashlib.sha256(tgz.read_bytes()).hexdigest() != SDIST_SHA256:
        urllib.request.urlretrieve(SDIST_URL, tgz)
    if hashlib.sha256(tgz.read_bytes()).hexdigest() != SDIST_SHA256:
        sys.exit(f"{tgz}: sha256 mismatch")
    src = CACHE / "chat-src"
    prefix = "llama_cpp_python-0.3.36/vendor/llama.cpp/"
    with tarfile.open(tgz) as t:
        wanted = ("src/llama-chat.cpp", "src/llama-chat.h", "include/llama.h")
        for m in t.getmembers():
            rel = m.name[len(prefix):] if m.name.startswith(prefix) else None
            if rel in wanted or (rel and rel.startswith("ggml/include/") and rel.endswith(".h")):
                (src / rel).parent.mkdir(parents=True, exist_ok=True)
                (src / rel).write_bytes(t.extractfile(m).read())
    exe = CACHE / "llama_chat_builtin"
    subprocess.run(["g++", "-O1", "-std=c++17", f"-I{src}/src", f"-I{src}/include", f"-I{src}/ggml/include",
                    str(ROOT / "runtime/tests/tools/llama_chat_builtin.cpp"), str(src / "src/llama-chat.cpp"),
                    "-o", str(exe)], check=True)
    return exe


def builtin_cases():
    exe = llama_chat_driver()
    cases = []
    for name in ("chatml", "llama3", "gemma", "phi3"):
        for msgs in BUILTIN_CONVERSATIONS:
            for agp in (True, False):
                args = [str(exe), name, "1" if agp else "0"]
                for m in msgs:
                    args += [m["role"], m["content"]]
                rendered = subprocess.run(args, check=True, capture_output=True).stdout.decode()
                cases.append({"builtin": name, "messages": msgs, "add_generation_prompt": agp, "rendered": rendered})
    return cases


def main():
    out = {
        "made_by": "runtime/tests/tools/make_chat_cases.py (Jinja2 %s; llama.cpp 0c1e570 llm_chat_apply_template)"
                   % jinja2.__version__,
        "template_cases": model_cases(),
        "builtin_cases": builtin_cases(),
    }
    dest = ROOT / "runtime/tests/data/chat_cases.json"
    dest.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n")
    print(f"{dest}: {len(out['template_cases'])} template cases, {len(out['builtin_cases'])} built-in cases")


if __name__ == "__main__":
    main()
