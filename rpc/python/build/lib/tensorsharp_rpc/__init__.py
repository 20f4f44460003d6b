"""Client of tsharpd, the TensorSharp daemon: protocol v1 (docs/protocol.md) in pure Python.

Frames are a u32 little-endian length and a postcard-encoded message; this module encodes the
client's messages and decodes the daemon's with the postcard rules the protocol document lists
(varints, zigzag, length-prefixed strings and sequences, option and enum tags).

    from tensorsharp_rpc import Client
    with Client() as c:
        for piece in c.stream("The capital of France is", max_tokens=16, temperature=0):
            print(piece, end="", flush=True)
        print(c.last_done)
"""

import os
import socket
import struct

__all__ = ["Client", "DaemonError", "Busy", "PROTOCOL_VERSION", "default_socket_path"]

PROTOCOL_VERSION = 1
MIN_PROTOCOL_VERSION = 1

STOP_REASONS = [
    "EndOfGeneration", "MaxTokens", "StopString", "ContextFull", "Cancelled", "Preempted",
    "ConstraintEnded",
]
ERROR_CODES = {
    1: "BadFrame", 2: "FrameTooLarge", 3: "Handshake", 4: "UnsupportedVersion", 5: "UnknownModel",
    6: "InvalidRequest", 7: "DuplicateId", 8: "UnknownId", 9: "ShuttingDown", 10: "Timeout",
    11: "PermissionDenied", 12: "Internal",
}


class DaemonError(Exception):
    """An Error frame: `code` (number), `name`, `message`, `id` (None: the connection's)."""

    def __init__(self, id, code, message):
        self.id, self.code, self.message = id, code, message
        self.name = ERROR_CODES.get(code, "unknown")
        super().__init__(f"tsharpd error {code} ({self.name}): {message}")


class Busy(Exception):
    """The daemon's queue was full; the request was not accepted."""

    def __init__(self, queue_len):
        self.queue_len = queue_len
        super().__init__(f"tsharpd is busy ({queue_len} requests queued)")


def default_socket_path():
    """$TENSORSHARP_SOCKET, else the daemon's default path for this user."""
    if os.environ.get("TENSORSHARP_SOCKET"):
        return os.environ["TENSORSHARP_SOCKET"]
    run = os.environ.get("XDG_RUNTIME_DIR")
    if run and os.geteuid() != 0:
        return os.path.join(run, "tensorsharp", "tsharpd.sock")
    return "/run/tensorsharp/tsharpd.sock"


# --- postcard encoding -------------------------------------------------------------------------

class _W:
    def __init__(self):
        self.b = bytearray()

    def varint(self, n):
        if n < 0:
            raise ValueError("negative value for an unsigned field")
        while True:
            byte = n & 0x7F
            n >>= 7
            if n:
                self.b.append(byte | 0x80)
            else:
                self.b.append(byte)
                return self

    def u8(self, n):
        self.b.append(n & 0xFF)
        return self

    def boolean(self, v):
        return self.u8(1 if v else 0)

    def f32(self, v):
        self.b += struct.pack("<f", v)
        return self

    def string(self, s):
        data = s.encode("utf-8")
        self.varint(len(data))
        self.b += data
        return self

    def option(self, v, put):
        if v is None:
            return self.u8(0)
        self.u8(1)
        put(v)
        return self

    def seq(self, items, put):
        self.varint(len(items))
        for it in items:
            put(it)
        return self


class _R:
    def __init__(self, b):
        self.b, self.i = b, 0

    def varint(self):
        n, shift = 0, 0
        while True:
            if self.i >= len(self.b) or shift > 63:
                raise ValueError("bad varint")
            byte = self.b[self.i]
            self.i += 1
            n |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return n
            shift += 7

    def u8(self):
        v = self.b[self.i]
        self.i += 1
        return v

    def f32(self):
        (v,) = struct.unpack_from("<f", self.b, self.i)
        self.i += 4
        return v

    def string(self):
        n = self.varint()
        s = bytes(self.b[self.i:self.i + n]).decode("utf-8")
        self.i += n
        return s

    def option(self, get):
        return get() if self.u8() else None

    def seq(self, get):
        return [get() for _ in range(self.varint())]


def _sampling(w, s):
    w.f32(s.get("temperature", 0.8)).varint(s.get("top_k", 40)).f32(s.get("top_p", 0.95))
    w.f32(s.get("min_p", 0.05)).f32(s.get("repeat_penalty", 1.0))
    w.f32(s.get("presence_penalty", 0.0)).f32(s.get("frequency_penalty", 0.0))
    w.varint(s.get("repeat_last_n", 64)).varint(s.get("seed", 0x5EED))


def _decode_server(payload):
    r = _R(payload)
    v = r.varint()
    if v == 0:
        m = {"type": "Welcome", "version": r.varint(), "server": r.string(), "max_frame": r.varint(),
             "models": r.seq(r.string)}
    elif v == 1:
        m = {"type": "Token", "id": r.varint(), "text": r.string(), "tokens": r.seq(r.varint)}
    elif v == 2:
        m = {"type": "Done", "id": r.varint()}
        k = r.varint()
        m["stop"] = STOP_REASONS[k] if k < len(STOP_REASONS) else f"unknown {k}"
        if k == 2:
            m["stop_string"] = r.varint()
        m["usage"] = {"prompt_tokens": r.varint(), "cached_tokens": r.varint(), "generated_tokens": r.varint()}
        m["timings"] = {"queued_us": r.varint(), "first_token_us": r.varint(), "generate_us": r.varint()}
    elif v == 3:
        m = {"type": "Error", "id": r.option(r.varint), "code": r.varint(), "message": r.string()}
    elif v == 4:
        m = {"type": "Busy", "id": r.varint(), "queue_len": r.varint()}
    elif v == 5:
        m = {"type": "Tokens", "id": r.varint(), "tokens": r.seq(r.varint)}
    elif v == 6:
        m = {"type": "Text", "id": r.varint(), "text": r.string()}
    elif v == 7:
        m = {"type": "Status", "id": r.varint()}

        def model_status():
            return {"name": r.string(), "queued": r.varint(), "active": r.varint(), "slots": r.varint(),
                    "sessions": r.varint(), "completed": r.varint(), "generated_tokens": r.varint(),
                    "tokens_per_s": r.f32(), "cache_hit_ratio": r.f32(), "plan_bytes": r.varint()}
        m["status"] = {"server": r.string(), "uptime_s": r.varint(), "connections": r.varint(),
                       "models": r.seq(model_status), "rss_bytes": r.varint()}
    elif v == 8:
        m = {"type": "Models", "id": r.varint()}
        m["models"] = r.seq(lambda: {"name": r.string(), "path": r.string(), "arch": r.string(),
                                     "n_ctx": r.varint(), "slots": r.varint(), "n_vocab": r.varint()})
    elif v == 9:
        m = {"type": "Pong", "id": r.varint()}
    else:
        raise ValueError(f"unknown message variant {v} (a newer daemon?)")
    if r.i != len(payload):
        raise ValueError(f"{len(payload) - r.i} bytes after the message")
    return m


# --- the client --------------------------------------------------------------------------------

class Client:
    """A connection to tsharpd after the handshake. Not thread-safe; one request at a time
    through `stream` / `generate` (use `send_generate` / `recv` to have several in flight)."""

    def __init__(self, path=None, name="python", timeout=None):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path or default_socket_path())
        self.next_id = 1
        self.last_done = None
        w = _W().varint(0).varint(PROTOCOL_VERSION).varint(MIN_PROTOCOL_VERSION).string(name)
        self._send(w)
        m = self.recv()
        if m["type"] != "Welcome":
            raise DaemonError(m.get("id"), m.get("code", 0), m.get("message", str(m)))
        self.welcome = m

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.sock.close()

    def _send(self, w):
        self.sock.sendall(struct.pack("<I", len(w.b)) + bytes(w.b))

    def _read(self, n):
        out = bytearray()
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("tsharpd closed the connection")
            out += chunk
        return out

    def recv(self):
        """The next message from the daemon, as a dict with a "type"."""
        (n,) = struct.unpack("<I", self._read(4))
        return _decode_server(self._read(n))

    def _id(self):
        i = self.next_id
        self.next_id += 1
        return i

    def send_generate(self, prompt=None, messages=None, tokens=None, max_tokens=0, temperature=None,
                      sampling=None, stop=(), json_schema=None, grammar=None, session=None, priority=0,
                      preempt=False, model=None, id=None):
        """Sends a Generate request and returns its id. Exactly one of `prompt` (text),
        `messages` (a list of {"role", "content"}) and `tokens` (ids). `temperature` alone, or
        `sampling` (a dict of the Sampling fields), or neither for the daemon's defaults."""
        if sum(x is not None for x in (prompt, messages, tokens)) != 1:
            raise ValueError("give exactly one of prompt, messages, tokens")
        id = self._id() if id is None else id
        w = _W()
        w.varint(1).varint(id).option(model, w.string)
        if prompt is not None:
            w.varint(0).string(prompt)
        elif messages is not None:
            w.varint(1).seq(messages, lambda m: w.string(m["role"]).string(m["content"]))
        else:
            w.varint(2).seq(list(tokens), w.varint)
        if temperature is not None:
            sampling = dict(sampling or {}, temperature=temperature)
        w.option(sampling, lambda s: _sampling(w, s))
        w.varint(max_tokens).seq(list(stop), w.string)
        constraint = None
        if json_schema is not None:
            constraint = (0, json_schema)
        elif grammar is not None:
            constraint = (1, grammar)
        w.option(constraint, lambda c: w.varint(c[0]).string(c[1]))
        w.option(session, w.string).u8(priority).boolean(preempt)
        self._send(w)
        return id

    def cancel(self, id):
        """Asks the daemon to stop request `id` (it ends with a Done whose stop is Cancelled)."""
        self._send(_W().varint(4).varint(id))

    def stream(self, prompt=None, **kw):
        """Generates; yields the text as it arrives. The Done frame (a dict: stop, usage,
        timings) is in `self.last_done` afterwards."""
        id = self.send_generate(prompt=prompt, **kw)
        while True:
            m = self.recv()
            if m.get("id") != id and not (m["type"] == "Error" and m["id"] is None):
                continue
            if m["type"] == "Token":
                if m["text"]:
                    yield m["text"]
            elif m["type"] == "Done":
                self.last_done = m
                return
            elif m["type"] == "Busy":
                raise Busy(m["queue_len"])
            elif m["type"] == "Error":
                raise DaemonError(m["id"], m["code"], m["message"])

    def generate(self, prompt=None, **kw):
        """Generates; returns (text, done)."""
        text = "".join(self.stream(prompt, **kw))
        return text, self.last_done

    def _call(self, w, id):
        self._send(w)
        while True:
            m = self.recv()
            if m["type"] == "Error" and m["id"] in (id, None):
                raise DaemonError(m["id"], m["code"], m["message"])
            if m.get("id") == id:
                return m

    def ping(self):
        id = self._id()
        self._call(_W().varint(7).varint(id), id)

    def status(self):
        id = self._id()
        return self._call(_W().varint(5).varint(id), id)["status"]

    def models(self):
        id = self._id()
        return self._call(_W().varint(6).varint(id), id)["models"]

    def tokenize(self, text, add_special=False, model=None):
        id = self._id()
        w = _W().varint(2).varint(id)
        w.option(model, w.string).string(text).boolean(add_special)
        return self._call(w, id)["tokens"]

    def detokenize(self, tokens, model=None):
        id = self._id()
        w = _W().varint(3).varint(id)
        w.option(model, w.string).seq(list(tokens), w.varint)
        return self._call(w, id)["text"]
