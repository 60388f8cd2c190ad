"""The built-in vendor groups: one table of name -> OpenAI-compatible endpoint and usual models.

An environment switches a vendor group on by giving it its own vendor key (`cbgate group set-key`);
until then its calls answer AI_MODEL_CONFIG_MISSING. Adding a vendor is one row here.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class VendorGroup:
    name: str
    base_url: str
    protocol: str
    models: tuple[str, ...]


VENDOR_GROUPS: dict[str, VendorGroup] = {g.name: g for g in (
    VendorGroup("hunyuan", "https://api.hunyuan.cloud.tencent.com/v1", "openai", (
        "hunyuan-turbos-latest", "hunyuan-t1-latest", "hunyuan-lite", "hunyuan-standard",
        "hunyuan-standard-256K", "hunyuan-large", "hunyuan-turbo-latest", "hunyuan-code",
        "hunyuan-role", "hunyuan-functioncall", "hunyuan-vision", "hunyuan-turbos-vision",
    )),
    VendorGroup("deepseek", "https://api.deepseek.com", "openai", ("deepseek-chat", "deepseek-reasoner")),
)}
