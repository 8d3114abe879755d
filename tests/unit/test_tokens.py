from loadkit.tokens import estimate_tokens


def test_four_characters_per_token_rounds_up():
    assert estimate_tokens("") == 0
    assert estimate_tokens("abc") == 1
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    assert estimate_tokens("the " * 100) == 100
