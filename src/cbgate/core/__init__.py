"""The request's business: who is calling, which model, may it run, and the chat service that ties it together."""
