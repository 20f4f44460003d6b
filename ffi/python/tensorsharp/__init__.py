"""TensorSharp from Python through its C ABI (ctypes; no compiled extension).

The shared library is found through $TENSORSHARP_LIB (a path to libtensorsharp.so[.1]), else
the system's library path (`ctypes.util.find_library("tensorsharp")`).

    from tensorsharp import Model
    with Model("SmolLM2-135M-Instruct.Q4_1.gguf") as m:
        print(m.generate("The capital of France is", max_tokens=16))
"""
import ctypes
import ctypes.util
import os

__all__ = ["Model", "Session", "TensorSharpError", "library"]

TS_OK = 0
TS_ERR_CONTEXT_FULL = 6
TS_ERR_BUFFER_TOO_SMALL = 8
TS_ERR_BUSY = 11
ABI_VERSION = 1


class TensorSharpError(RuntimeError):
    """A call returned a non-OK status; `status` is the code, the message is ts_last_error()."""

    def __init__(self, status, message):
        super().__init__(f"{message} (status {status})")
        self.status = status


def _uint(name, value, bits=32):
    """`value` as an unsigned C integer of `bits` bits: TypeError for a non-int (bool included),
    ValueError for a negative one, OverflowError for one too large (ctypes would wrap it)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    if value >= 1 << bits:
        raise OverflowError(f"{name}={value} does not fit in {bits} bits")
    return value


def _real(name, value):
    """`value` as a finite float: TypeError for a non-number, ValueError for NaN or infinity."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _text(name, value):
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    return value


class _SessionParams(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("n_ctx", ctypes.c_uint32),
        ("n_batch", ctypes.c_uint32),
        ("n_threads", ctypes.c_uint32),
        ("kv_type", ctypes.c_uint32),
        ("mlock", ctypes.c_uint32),
        ("ram_budget", ctypes.c_uint64),
        ("cpus", ctypes.POINTER(ctypes.c_int32)),
        ("n_cpus", ctypes.c_uint32),
        ("rt_priority", ctypes.c_int32),
    ]


class _SamplerParams(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("top_k", ctypes.c_uint32),
        ("temperature", ctypes.c_float),
        ("top_p", ctypes.c_float),
        ("min_p", ctypes.c_float),
        ("repeat_penalty", ctypes.c_float),
        ("presence_penalty", ctypes.c_float),
        ("frequency_penalty", ctypes.c_float),
        ("penalty_last_n", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32),
        ("seed", ctypes.c_uint64),
    ]


class _BoardInfo(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("n_threads", ctypes.c_uint32),
        ("n_ctx", ctypes.c_uint32),
        ("kv_type", ctypes.c_uint32),
        ("ram_budget", ctypes.c_uint64),
        ("mem_bandwidth_mbs", ctypes.c_uint64),
        ("cuda_cc", ctypes.c_uint32),
        ("cuda_present", ctypes.c_uint32),
        ("n_cpus", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32),
        ("cpus", ctypes.c_int32 * 64),
        ("id", ctypes.c_char * 32),
        ("name", ctypes.c_char * 64),
        ("tier", ctypes.c_char * 16),
    ]


_TOKEN_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int32, ctypes.POINTER(ctypes.c_char), ctypes.c_size_t)
_lib = None


def library():
    """The loaded libtensorsharp (ctypes.CDLL), loading it on first use."""
    global _lib
    if _lib is not None:
        return _lib
    path = os.environ.get("TENSORSHARP_LIB") or ctypes.util.find_library("tensorsharp")
    if not path:
        raise OSError("libtensorsharp not found: set TENSORSHARP_LIB or install it (ffi/install.sh PREFIX)")
    lib = ctypes.CDLL(path)
    P, vp, st = ctypes.POINTER, ctypes.c_void_p, ctypes.c_int
    sigs = {
        "ts_abi_version": (ctypes.c_uint32, []),
        "ts_last_error": (ctypes.c_char_p, []),
        "ts_model_load": (st, [ctypes.c_char_p, vp, P(vp)]),
        "ts_model_free": (None, [vp]),
        "ts_model_n_vocab": (ctypes.c_uint32, [vp]),
        "ts_model_meta": (st, [vp, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t, P(ctypes.c_size_t)]),
        "ts_tokenize": (st, [vp, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, P(ctypes.c_int32), ctypes.c_size_t, P(ctypes.c_size_t)]),
        "ts_session_params_default": (st, [P(_SessionParams)]),
        "ts_sampler_params_default": (st, [P(_SamplerParams)]),
        "ts_session_create": (st, [vp, P(_SessionParams), P(vp)]),
        "ts_session_free": (None, [vp]),
        "ts_session_reset": (st, [vp]),
        "ts_session_cancel": (st, [vp]),
        "ts_sampler_create": (st, [vp, P(_SamplerParams), P(vp)]),
        "ts_sampler_free": (None, [vp]),
        "ts_board_profile": (st, [P(_BoardInfo)]),
        "ts_session_generate": (st, [vp, vp, P(ctypes.c_int32), ctypes.c_size_t, ctypes.c_size_t, _TOKEN_CB, vp, P(ctypes.c_size_t)]),
    }
    for name, (res, args) in sigs.items():
        f = getattr(lib, name)
        f.restype, f.argtypes = res, args
    if lib.ts_abi_version() != ABI_VERSION:
        raise OSError(f"libtensorsharp ABI {lib.ts_abi_version()}, this binding expects {ABI_VERSION}")
    _lib = lib
    return lib


def _check(status):
    if status != TS_OK:
        raise TensorSharpError(status, library().ts_last_error().decode("utf-8", "replace"))


def board_profile():
    """The board the library detected and its profile's defaults (what n_threads=0 and n_ctx=0
    give): a dict with id, name, tier, n_threads, cpus (pinned; empty: unpinned), n_ctx, kv_type,
    ram_budget (bytes; 0 unknown), mem_bandwidth_gbs, cuda_cc (e.g. "8.7" or None), cuda_present."""
    info = _BoardInfo()
    info.struct_size = ctypes.sizeof(_BoardInfo)
    _check(library().ts_board_profile(ctypes.byref(info)))
    return {
        "id": info.id.decode("utf-8", "replace"),
        "name": info.name.decode("utf-8", "replace"),
        "tier": info.tier.decode("utf-8", "replace"),
        "n_threads": info.n_threads,
        "cpus": list(info.cpus[: info.n_cpus]),
        "n_ctx": info.n_ctx,
        "kv_type": ("f16", "f32", "q8_0")[info.kv_type],
        "ram_budget": info.ram_budget,
        "mem_bandwidth_gbs": info.mem_bandwidth_mbs / 1000 if info.mem_bandwidth_mbs else None,
        "cuda_cc": f"{info.cuda_cc // 10}.{info.cuda_cc % 10}" if info.cuda_cc else None,
        "cuda_present": bool(info.cuda_present),
    }


class Model:
    """A loaded GGUF model (read-only, shareable)."""

    def __init__(self, path):
        lib = library()
        self._h = ctypes.c_void_p()
        _check(lib.ts_model_load(os.fsencode(path), None, ctypes.byref(self._h)))

    def close(self):
        if self._h:
            library().ts_model_free(self._h)
            self._h = ctypes.c_void_p()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    @property
    def n_vocab(self):
        return library().ts_model_n_vocab(self._h)

    def meta(self, key):
        """A metadata value as text."""
        _text("key", key)
        n = ctypes.c_size_t()
        buf = ctypes.create_string_buffer(256)
        st = library().ts_model_meta(self._h, key.encode(), buf, len(buf), ctypes.byref(n))
        if st == TS_ERR_BUFFER_TOO_SMALL:
            buf = ctypes.create_string_buffer(n.value + 1)
            st = library().ts_model_meta(self._h, key.encode(), buf, len(buf), ctypes.byref(n))
        _check(st)
        return buf.value.decode("utf-8", "replace")

    def tokenize(self, text, add_special=True, parse_special=True):
        data = _text("text", text).encode("utf-8")
        n = ctypes.c_size_t()
        st = library().ts_tokenize(self._h, data, len(data), int(add_special), int(parse_special), None, 0, ctypes.byref(n))
        if st not in (TS_OK, TS_ERR_BUFFER_TOO_SMALL):
            _check(st)
        arr = (ctypes.c_int32 * max(n.value, 1))()
        _check(library().ts_tokenize(self._h, data, len(data), int(add_special), int(parse_special), arr, n.value, ctypes.byref(n)))
        return list(arr[: n.value])

    def session(self, n_ctx=0, n_threads=0):
        return Session(self, n_ctx=n_ctx, n_threads=n_threads)

    def generate(self, prompt, max_tokens=64, temperature=0.0, top_k=40, top_p=0.95, min_p=0.05, seed=0x5EED, n_threads=0):
        """Generates a continuation of `prompt` (greedy by default) and returns its text."""
        with self.session(n_threads=n_threads) as s:
            return s.generate(prompt, max_tokens, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p, seed=seed)


class Session:
    """One conversation over a model. One call at a time: a call while another thread's call
    runs raises TensorSharpError with status TS_ERR_BUSY (nothing is done)."""

    def __init__(self, model, n_ctx=0, n_threads=0):
        lib = library()
        self.model = model
        p = _SessionParams()
        lib.ts_session_params_default(ctypes.byref(p))
        p.n_ctx, p.n_threads = _uint("n_ctx", n_ctx), _uint("n_threads", n_threads)
        #: Why the last generate stopped: "length", "end" (end of generation or callback) or
        #: "context_full" (the context filled; the text so far is returned).
        self.stop_reason = None
        self._h = ctypes.c_void_p()
        _check(lib.ts_session_create(model._h, ctypes.byref(p), ctypes.byref(self._h)))

    def close(self):
        if self._h:
            library().ts_session_free(self._h)
            self._h = ctypes.c_void_p()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def cancel(self):
        """Stops a running generate (from another thread) at the next layer boundary."""
        _check(library().ts_session_cancel(self._h))

    def generate(self, prompt, max_tokens=64, on_text=None, temperature=0.0, top_k=40, top_p=0.95, min_p=0.05, seed=0x5EED):
        """Generates after `prompt` (the session continues from its state); returns the text.
        `on_text(piece)` receives the text as it is produced; an exception it raises stops the
        generation and is raised here. A full context ends the generation like a length limit:
        the text so far is returned and `stop_reason` is "context_full"."""
        lib = library()
        _text("prompt", prompt)
        max_tokens = _uint("max_tokens", max_tokens, 64)
        temperature = _real("temperature", temperature)
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if on_text is not None and not callable(on_text):
            raise TypeError("on_text must be callable")
        sp = _SamplerParams()
        lib.ts_sampler_params_default(ctypes.byref(sp))
        if temperature > 0:
            sp.temperature, sp.top_k = temperature, _uint("top_k", top_k)
            sp.top_p, sp.min_p = _real("top_p", top_p), _real("min_p", min_p)
        sp.seed = _uint("seed", seed, 64)
        sampler = ctypes.c_void_p()
        _check(lib.ts_sampler_create(self.model._h, ctypes.byref(sp), ctypes.byref(sampler)))
        ids = self.model.tokenize(prompt)
        arr = (ctypes.c_int32 * len(ids))(*ids)
        out = bytearray()
        raised = []

        def cb(_user, _token, piece, length):
            chunk = ctypes.string_at(piece, length) if length else b""
            out.extend(chunk)
            if on_text is not None and chunk:
                try:
                    on_text(chunk.decode("utf-8", "replace"))
                except BaseException as e:  # stop the generation; raised after it returns
                    raised.append(e)
                    return 1
            return 0

        keep = _TOKEN_CB(cb)
        n = ctypes.c_size_t()
        try:
            st = lib.ts_session_generate(self._h, sampler, arr, len(ids), max_tokens, keep, None, ctypes.byref(n))
        finally:
            lib.ts_sampler_free(sampler)
        if raised:
            raise raised[0]
        if st == TS_ERR_CONTEXT_FULL:
            self.stop_reason = "context_full"
        else:
            _check(st)
            self.stop_reason = "length" if n.value >= max_tokens else "end"
        return out.decode("utf-8", "replace")
