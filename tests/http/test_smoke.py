def test_chat_answers_with_the_seed_shape(gateway):
    r = gateway.chat({"model": "gemma-3-270m", "messages": [{"role": "user", "content": "你好"}]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["choices"][0]["message"]["content"] == "echo: 你好"
