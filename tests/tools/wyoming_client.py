"""Talks to tsharpd's Wyoming adapter with the real `wyoming` package (PyPI) as the client:
describe -> info, then two transcripts of one conversation (the second carries the context the
first reply gave). Prints one JSON object. Usage: wyoming_client.py URI"""

import asyncio
import json
import sys

from wyoming.asr import Transcript
from wyoming.client import AsyncClient
from wyoming.handle import Handled, HandledChunk, HandledStart, HandledStop, NotHandled
from wyoming.info import Describe, Info


async def turn(client, text, context):
    await client.write_event(Transcript(text=text, context=context).event())
    chunks, context_out, streamed = [], None, False
    while True:
        event = await client.read_event()
        if event is None:
            raise RuntimeError("connection closed")
        if Handled.is_type(event.type):
            h = Handled.from_event(event)
            return h.text, h.context, False, 0
        if NotHandled.is_type(event.type):
            raise RuntimeError(f"not handled: {NotHandled.from_event(event).text}")
        if HandledStart.is_type(event.type):
            streamed = True
            context_out = HandledStart.from_event(event).context
        elif HandledChunk.is_type(event.type):
            chunks.append(HandledChunk.from_event(event).text)
        elif HandledStop.is_type(event.type):
            return "".join(chunks), context_out, streamed, len(chunks)


async def main(uri):
    async with AsyncClient.from_uri(uri) as client:
        await client.write_event(Describe().event())
        info = Info.from_event(await client.read_event())
        handle = info.handle[0]
        t1, ctx1, s1, n1 = await turn(client, "My name is Ada. Say hello to me.", None)
    # The next turn on a new connection, as a pipeline does: the context carries the conversation.
    async with AsyncClient.from_uri(uri) as client:
        t2, ctx2, s2, n2 = await turn(client, "What is my name?", ctx1)
    print(json.dumps({
        "program": handle.name, "streaming": handle.supports_handled_streaming,
        "models": [m.name for m in handle.models],
        "first": t1, "second": t2, "context1": ctx1, "context2": ctx2,
        "streamed": [s1, s2], "chunks": [n1, n2],
    }))


asyncio.run(main(sys.argv[1]))
