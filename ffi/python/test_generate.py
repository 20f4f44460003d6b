"""Generates text through the installed `tensorsharp` package (run by ffi/tests/python.rs)."""
import sys
import threading

import tensorsharp


def expect_raises(exc, f, *args, **kw):
    try:
        f(*args, **kw)
    except exc as e:
        return e
    raise AssertionError(f"{f.__name__}{args}{kw} did not raise {exc.__name__}")


def misuse(m):
    """Bad arguments raise the Python exception that names the problem, before any C call."""
    with m.session(n_ctx=64, n_threads=1) as s:
        expect_raises(ValueError, s.generate, "hi", max_tokens=-1)
        expect_raises(OverflowError, s.generate, "hi", max_tokens=2**64)
        expect_raises(TypeError, s.generate, "hi", max_tokens=2.5)
        expect_raises(TypeError, s.generate, 123)
        expect_raises(TypeError, s.generate, b"bytes")
        expect_raises(ValueError, s.generate, "hi", temperature=float("nan"))
        expect_raises(ValueError, s.generate, "hi", temperature=0.7, seed=-1)
        expect_raises(TypeError, m.tokenize, None)
    expect_raises(ValueError, m.session, n_ctx=-1)
    expect_raises(OverflowError, m.session, n_threads=2**32)

    # A full context ends the generation like a length limit: the text so far comes back.
    with m.session(n_ctx=32, n_threads=1) as s:
        text = s.generate("The capital of France is", max_tokens=100)
        assert s.stop_reason == "context_full", s.stop_reason
        assert len(text) > 0, repr(text)

    # An exception in on_text stops the generation and is raised from generate.
    calls = []

    def boom(piece):
        calls.append(piece)
        raise KeyError("from the callback")

    with m.session(n_ctx=128, n_threads=1) as s:
        e = expect_raises(KeyError, s.generate, "The capital of France is", max_tokens=20, on_text=boom)
        assert "from the callback" in str(e) and len(calls) == 1, (e, calls)

    # The same session from a second thread while a generate runs: TS_ERR_BUSY, nothing done.
    with m.session(n_ctx=128, n_threads=1) as s:
        seen = []

        def intrude():
            e = expect_raises(tensorsharp.TensorSharpError, s.generate, "x", max_tokens=2)
            seen.append(e.status)

        def on_text(piece):
            if not seen:
                t = threading.Thread(target=intrude)
                t.start()
                t.join()

        s.generate("The capital of France is", max_tokens=4, on_text=on_text)
        assert seen == [tensorsharp.TS_ERR_BUSY], seen


def main(model_path):
    board = tensorsharp.board_profile()
    assert board["id"] and board["tier"] and board["n_threads"] >= 1 and board["n_ctx"] >= 512, board
    assert board["kv_type"] in ("f16", "f32", "q8_0") and len(board["cpus"]) <= board["n_threads"], board
    print("board:", board["id"], board["tier"], board["n_threads"], "threads")
    with tensorsharp.Model(model_path) as m:
        assert m.meta("general.architecture") == "llama", m.meta("general.architecture")
        assert m.n_vocab == 49152, m.n_vocab
        assert m.tokenize("Hello world", add_special=False, parse_special=False) == [19556, 905], m.tokenize("Hello world", False, False)
        pieces = []
        with m.session(n_ctx=256, n_threads=2) as s:
            text = s.generate("The capital of France is", max_tokens=8, on_text=pieces.append)
        assert text.startswith(" Paris"), repr(text)
        assert "".join(pieces) == text
        try:
            tensorsharp.Model("/nonexistent/model.gguf")
        except tensorsharp.TensorSharpError as e:
            assert e.status == 2, e.status
        else:
            raise AssertionError("loading a missing file succeeded")
        misuse(m)
    print("ok:", repr(text))


if __name__ == "__main__":
    main(sys.argv[1])
