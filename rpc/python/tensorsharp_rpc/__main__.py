"""python -m tensorsharp_rpc [--socket PATH] [-n N] [--temp T] PROMPT: stream tsharpd's reply."""

import argparse
import sys

from . import Client


def main():
    ap = argparse.ArgumentParser(prog="tsharp-ask", description=__doc__)
    ap.add_argument("prompt")
    ap.add_argument("--socket")
    ap.add_argument("-n", "--max-tokens", type=int, default=0)
    ap.add_argument("--temp", type=float)
    ap.add_argument("--chat", action="store_true", help="send the prompt as a user message")
    ap.add_argument("--session")
    a = ap.parse_args()
    with Client(a.socket, name="tsharp-ask.py") as c:
        kw = dict(max_tokens=a.max_tokens, temperature=a.temp, session=a.session)
        if a.chat:
            kw["messages"] = [{"role": "user", "content": a.prompt}]
        else:
            kw["prompt"] = a.prompt
        for piece in c.stream(**kw):
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        return 0 if c.last_done["stop"] != "Cancelled" else 1


if __name__ == "__main__":
    sys.exit(main())
