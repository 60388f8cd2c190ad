"""Which deployments serve a request with images or audio (core/inputs.py), without a server: the order they
are tried in, and the refusal when none reads what the request carries."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from cbgate.core.inputs import able_deployments
from cbgate.errors import ModelParamInvalid
from cbgate.protocol.chat_request import parse_chat_request
from cbgate.providers.base import TEXT_ONLY, UNDECLARED, Inputs

IMAGE = {"type": "image_url", "image_url": {"url": "https://img.example/cat.png"}}
AUDIO = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}


@dataclass
class Deployment:
    name: str
    inputs: Inputs


def request(*parts: dict):
    return parse_chat_request({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is it?"}, *parts]}]})


def names(deployments) -> list[str]:
    return [d.name for d in deployments]


def test_text_is_served_by_every_deployment_in_order():
    every = [Deployment("a", TEXT_ONLY), Deployment("b", UNDECLARED), Deployment("c", Inputs(vision=True))]
    assert names(able_deployments(every, request(), "cloudbase")) == ["a", "b", "c"]


def test_images_go_to_declared_deployments_first_then_undeclared_never_text_only():
    every = [Deployment("text", TEXT_ONLY), Deployment("plain", UNDECLARED), Deployment("vl", Inputs(vision=True))]
    assert names(able_deployments(every, request(IMAGE), "cloudbase")) == ["vl", "plain"]


def test_images_and_audio_need_a_deployment_that_reads_both():
    every = [Deployment("eyes", Inputs(vision=True, audio_input=False)), Deployment("both", Inputs(True, True))]
    assert names(able_deployments(every, request(IMAGE, AUDIO), "cloudbase")) == ["both"]


def test_each_deployment_refusing_a_different_kind_is_refused_naming_the_first_ones():
    every = [Deployment("eyes", Inputs(vision=True, audio_input=False)),
             Deployment("ears", Inputs(vision=False, audio_input=True))]
    with pytest.raises(ModelParamInvalid) as caught:
        able_deployments(every, request(IMAGE, AUDIO), "cloudbase")
    assert "does not read audio (input_audio parts)" in caught.value.message
    assert "its deployments eyes, ears are declared without audio input" in caught.value.message


def test_a_custom_group_is_told_how_to_declare_it_through_the_cli_or_the_api():
    with pytest.raises(ModelParamInvalid) as caught:
        able_deployments([Deployment("vllm", TEXT_ONLY)], request(IMAGE), "vllm")
    message = caught.value.message
    assert message.startswith("invalid parameter `messages`: model 'm' in group 'vllm' does not read images")
    assert "cbgate group set-capabilities --env <env> vllm --vision" in message
    assert '{"vision": true} in PUT /admin/v1/envs/<env>/groups/vllm' in message
