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


HUNYUAN_MODELS = (
    "hunyuan-turbos-latest", "hunyuan-t1-latest", "hunyuan-lite", "hunyuan-standard",
    "hunyuan-standard-256K", "hunyuan-large", "hunyuan-turbo-latest", "hunyuan-code",
    "hunyuan-role", "hunyuan-functioncall", "hunyuan-vision", "hunyuan-turbos-vision",
)
HUNYUAN_URL = "https://api.hunyuan.cloud.tencent.com/v1"

# One row per provider of @cloudbase/ai's `createModel` (its MODELS map), under the same name, so that the
# SDK's own paths reach them; the hunyuan variants are CloudBase's names for the one Hunyuan endpoint.
VENDOR_GROUPS: dict[str, VendorGroup] = {g.name: g for g in (
    VendorGroup("hunyuan", HUNYUAN_URL, "openai", HUNYUAN_MODELS),
    VendorGroup("hunyuan-open", HUNYUAN_URL, "openai", HUNYUAN_MODELS),
    VendorGroup("hunyuan-beta", HUNYUAN_URL, "openai", HUNYUAN_MODELS),
    VendorGroup("hunyuan-exp", HUNYUAN_URL, "openai", HUNYUAN_MODELS),
    VendorGroup("deepseek", "https://api.deepseek.com", "openai", ("deepseek-chat", "deepseek-reasoner")),
    VendorGroup("ark", "https://ark.cn-beijing.volces.com/api/v3", "openai", (
        "doubao-1-5-pro-32k-250115", "doubao-1-5-lite-32k-250115", "deepseek-v3-250324", "deepseek-r1-250120")),
    VendorGroup("dashscope", "https://dashscope.aliyuncs.com/compatible-mode/v1", "openai", (
        "qwen-turbo", "qwen-plus", "qwen-max", "qwen-long")),
    VendorGroup("zhipu", "https://open.bigmodel.cn/api/paas/v4", "openai", (
        "glm-4-plus", "glm-4-air", "glm-4-flash", "glm-4-long")),
    VendorGroup("moonshot", "https://api.moonshot.cn/v1", "openai", (
        "moonshot-v1-8k", "moonshot-v1-32k", "moonshot-v1-128k")),
    VendorGroup("01-ai", "https://api.lingyiwanwu.com/v1", "openai", ("yi-lightning", "yi-large")),
)}
