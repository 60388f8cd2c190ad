import pytest

from cbgate.providers.local.stops import StopScanner


def run(stops, pieces):
    scanner, out = StopScanner(stops), []
    for piece in pieces:
        text, hit = scanner.feed(piece)
        out.append(text)
        if hit:
            return "".join(out), True
    return "".join(out) + scanner.flush(), False


@pytest.mark.parametrize("stops,pieces,expected", [
    ([], ["ab", "cd"], ("abcd", False)),
    (["END"], ["hello E", "N", "D tail"], ("hello ", True)),
    (["END"], ["hello E", "N", "O more"], ("hello ENO more", False)),
    (["\n\n", "###"], ["a\n", "\nb"], ("a", True)),
    (["xyz"], ["x"], ("x", False)),  # a held-back prefix is released when the stream ends
    (["是"], ["我", "是谁"], ("我", True)),
])
def test_stop_strings(stops, pieces, expected):
    assert run(stops, pieces) == expected


def test_text_that_cannot_start_a_stop_is_not_held_back():
    scanner = StopScanner(["STOP"])
    assert scanner.feed("abc") == ("abc", False)
    assert scanner.feed("xyS") == ("xy", False)
