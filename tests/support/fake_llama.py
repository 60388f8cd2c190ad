"""A scripted stand-in for llama_cpp.Llama: the real engine thread, template, stop and UTF-8 handling
run over it, at any speed the test wants.

It answers "echo: <last user text>" in tokens of at most two bytes, so multi-byte characters are
split across tokens the way byte-fallback tokenizers split them.
"""
from __future__ import annotations

import re
import time

END_OF_TURN, EOS, BOS = 106, 1, 2


class FakeLlama:
    token_delay = 0.0  # seconds between tokens; tests set it to make streams slow
    reply_tokens: int | None = None  # cap on the reply, else the whole echo
    generated = 0  # tokens produced so far, across instances (tests read it)

    def __init__(self, model_path: str, **_):
        self.metadata = {"general.architecture": "gemma3", "general.name": "fake"}
        self.pieces: dict[int, bytes] = {}

    def token_eos(self) -> int:
        return EOS

    def token_bos(self) -> int:
        return BOS

    def set_seed(self, seed: int) -> None:
        self.seed = seed

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        if text == b"<end_of_turn>":
            return [END_OF_TURN]
        if text == b"<start_of_turn>":
            return [105]
        self.prompt = text.decode()
        return ([BOS] if add_bos else []) + [3] * len(text.split())

    def detokenize(self, tokens: list[int], prev_tokens=None) -> bytes:
        return b"".join(self.pieces.get(t, b"") for t in tokens)

    def generate(self, tokens, temp=0.8, top_p=0.95, reset=True, **_):
        turns = re.findall(r"<start_of_turn>user\n(.*?)<end_of_turn>", self.prompt, re.S)
        data = ("echo: " + (turns[-1] if turns else "")).encode()
        self.pieces = {1000 + i: data[i:i + 2] for i in range(0, len(data), 2)}
        ids = list(self.pieces)
        if FakeLlama.reply_tokens is not None:
            ids = ids[:FakeLlama.reply_tokens]
        for token in ids:
            if FakeLlama.token_delay:
                time.sleep(FakeLlama.token_delay)
            FakeLlama.generated += 1
            yield token
        yield END_OF_TURN
