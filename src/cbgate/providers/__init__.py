"""Provider adapters: where a model call actually goes (embedded engine or an upstream)."""
