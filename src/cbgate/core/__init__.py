"""The request's business: who is calling, which model, may it run, and the model service that ties it together."""
