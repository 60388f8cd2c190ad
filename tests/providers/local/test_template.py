from cbgate.providers.local.template import choose_template, gemma_prompt


def test_gemma_turns_with_system_text_in_the_first_user_turn():
    prompt = gemma_prompt([
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Who are you?"},
    ])
    assert prompt == ("<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
                      "<start_of_turn>model\nHello!<end_of_turn>\n"
                      "<start_of_turn>user\nWho are you?<end_of_turn>\n"
                      "<start_of_turn>model\n")


def test_tool_calls_and_results_reach_the_model_as_text():
    prompt = gemma_prompt([
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "1", "content": "sunny"},
    ])
    assert '"name": "w"' in prompt and "<start_of_turn>user\nsunny<end_of_turn>" in prompt


def test_gguf_template_wins_when_present():
    meta = {"general.architecture": "gemma3",
            "tokenizer.chat_template": "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}"}
    render, stops = choose_template(meta, eos="</s>", bos="<s>")
    assert render([{"role": "user", "content": "hi"}]) == "[user]hi"
    assert stops == ("</s>",)


def test_unknown_family_without_template_is_refused():
    import pytest

    with pytest.raises(ValueError, match="chat template"):
        choose_template({"general.architecture": "mystery"}, eos="", bos="")
