"""Generates text through the installed `tensorsharp` package (run by ffi/tests/python.rs)."""
import sys

import tensorsharp


def main(model_path):
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
    print("ok:", repr(text))


if __name__ == "__main__":
    main(sys.argv[1])
