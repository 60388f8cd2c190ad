"""The cost rule (cbgate.pricing) on its own: tiers, cached tokens, rounding, and what a price may be."""
import pytest

from cbgate.config import ConfigError, load_settings
from cbgate.pricing import PriceError, PriceTable, Tier, format_micros, parse_table, parse_tier, price_micros, with_tier

TABLE = parse_table({"currency": "CNY", "tiers": [
    {"tier": "0-16k", "input": "0.0008", "output": "0.002", "cache": "0.0002"},
    {"tier": "16k-128k", "input": 0.0012, "output": 0.004}]}, "price")


def test_the_tier_holds_prompts_up_to_and_including_its_bound():
    assert TABLE.tier_for(0).name == TABLE.tier_for(16000).name == "0-16k"
    assert TABLE.tier_for(16001).name == TABLE.tier_for(128000).name == "16k-128k"
    assert TABLE.tier_for(500000).name == "16k-128k"  # past every bound: the last tier


def test_cost_counts_cached_tokens_at_the_cache_price_and_rounds_once_half_up():
    assert TABLE.cost(16000, 7, 1234) == 12074  # 12,073,600 / 1000 rounds up
    assert TABLE.cost(16001, 7, 1234) == 19229  # no cache price in that tier: 16001 x 1200 + 7 x 4000
    assert TABLE.cost(1, 0) == 1  # 0.8 micro-units round to 1 ...
    assert TABLE.cost(0, 0) == 0 and parse_table({"input": "0.0004", "output": 0}, "p").cost(1, 0) == 0  # ... 0.4 to 0
    assert TABLE.cost(100, 0, 500) == TABLE.cost(100, 0, 100)  # never more cached than the prompt


def test_prices_are_exact_millionths():
    assert price_micros("0.0008", "input") == 800 and price_micros(0.1, "input") == 100_000
    assert format_micros(12074) == "0.012074" and format_micros(3_000_000) == "3.000000"
    for bad in ("-1", "0.0000001", "abc", "nan", "inf", True, None, "1e13"):
        with pytest.raises(PriceError):
            price_micros(bad, "input")


def test_tiers_parse_and_may_not_overlap():
    assert parse_tier("0-16k") == (0, 16000) and parse_tier("128k-") == (128000, None)
    assert parse_tier("1.5m-2m") == (1_500_000, 2_000_000)
    for bad in ("16k-8k", "x-1", "", "5-5"):
        with pytest.raises(PriceError):
            parse_tier(bad)
    with pytest.raises(PriceError, match="overlaps"):
        with_tier(TABLE, Tier(8000, 32000, 1, 1), "CNY")
    with pytest.raises(PriceError, match="priced in CNY"):
        with_tier(TABLE, Tier(128000, None, 1, 1), "USD")
    uniform = with_tier(TABLE, Tier(0, None, 5, 6), "CNY")  # a uniform price replaces the tiers
    assert uniform.kind == "Uniform" and uniform.tiers == (Tier(0, None, 5, 6),)
    assert PriceTable.from_dict(TABLE.as_dict()) == TABLE


def test_a_bad_price_in_the_config_file_names_where(tmp_path):
    (tmp_path / "cbgate.toml").write_text(
        '[[models]]\nname = "m"\nprice = {currency = "CNY", input = "0.001", output = "-2"}\n'
        '[[models.deployments]]\nkind = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n')
    with pytest.raises(ConfigError, match=r"models\[0\]\.price\.output"):
        load_settings(str(tmp_path), env={})
    (tmp_path / "cbgate.toml").write_text(
        '[[models]]\nname = "m"\nprice = {input = "0.001", output = "0.002"}\n'
        '[[models.deployments]]\nkind = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n')
    [model] = load_settings(str(tmp_path), env={}).catalog
    assert model.price.currency == "CNY" and model.price.cost(1000, 1000) == 3000
