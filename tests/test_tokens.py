"""The one prompt estimate, by each counting rule: billing's cl100k, its rough stand-in, admission's
generous reservation; and that billing and a crashed request's record count a prompt the same way."""
from __future__ import annotations

import asyncio

from cbgate.core.metering import Metering
from cbgate.limits.base import estimate_cost
from cbgate.providers.token_estimate import TokenEstimator
from cbgate.tokens import generous_count, prompt_tokens, rough_count

HELLO = [{"role": "user", "content": "hello there, how are you today?"}]


def test_the_format_overhead_is_counted_once_per_message_plus_the_reply_primer():
    assert prompt_tokens([], rough_count) == 3
    assert prompt_tokens(HELLO * 2, lambda text: 0) == 3 + 2 * 4


def test_admission_reserves_at_least_what_billing_counts_plus_the_answer():
    estimator = TokenEstimator()
    asyncio.run(estimator.load())
    billed = estimator.usage_now(HELLO, []).prompt_tokens
    assert estimate_cost(HELLO, 10) >= billed + 10
    image = [{"role": "user", "content": [{"type": "text", "text": "what is this?"}, {"type": "image_url"}]}]
    assert estimate_cost(image, 10) >= 512 + 10
    assert generous_count("x" * 100) >= rough_count("x" * 100)


def test_a_crash_record_counts_the_prompt_as_billing_does():
    estimator = TokenEstimator()

    async def both():
        await estimator.load()
        return Metering(prompt_counter=estimator).prompt_tokens(HELLO), estimator.usage_now(HELLO, []).prompt_tokens
    recorded, billed = asyncio.run(both())
    assert recorded == billed
    assert Metering().prompt_tokens(HELLO) == prompt_tokens(HELLO)  # no encoding at all: the rough rule


def test_the_fast_count_is_the_encodings_own_count():
    import bpe_openai
    estimator = TokenEstimator()
    asyncio.run(estimator.load())
    encoding = bpe_openai.get_encoding("cl100k_base")
    texts = ["hello there, how are you today?", "héllo 世界 🙂\n\n  x\t", "a" * 5000, "\ud800 a lone surrogate",
             '{"city": "Shenzhen"}', "   ", "word " * 300]
    assert [estimator._count(t) for t in texts] == [len(encoding.encode_ordinary(t)) for t in texts]
