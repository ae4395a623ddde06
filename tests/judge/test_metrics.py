"""Hand-worked checks of the caption metrics (App. B repetition, App. E rates, Table 2 patterns)."""

import pytest

from vs2_plugin.judge import metrics


def test_repetition_rate_first_occurrence_not_counted():
    # phrases: "a dog runs" x2 (3 words each), "a cat sits" (3 words): 9 words, 3 repeated
    assert metrics.repetition_rate("A dog runs. A dog runs. A cat sits.") == pytest.approx(3 / 9)
    assert metrics.repetition_rate("One phrase, one phrase") == pytest.approx(0.5)
    assert metrics.repetition_rate("No repeats at all here.") == 0.0
    assert metrics.repetition_rate("") == 0.0


def test_repetition_rate_normalises_case_and_spacing_but_not_words():
    assert metrics.repetition_rate("The man sings.  the MAN   sings!") == pytest.approx(0.5)
    assert metrics.repetition_rate("The man sings. The man sang.") == 0.0


def test_phrases_split_at_punctuation_not_quotes():
    assert metrics.phrases('He says "hello there", then leaves; OK!') == ["he says hello there", "then leaves", "ok"]


def test_event_rates_hand_worked():
    r = metrics.event_rates(n_events=10, n_missed=2, n_incorrect=1, n_hallucinated=3)
    assert r["miss_rate"] == pytest.approx(0.2)
    assert r["incorrect_rate"] == pytest.approx(0.1)
    assert r["hallucination_rate"] == pytest.approx(0.3)
    assert r["hall_rate"] == pytest.approx(0.4)  # Hall = Incorrect + Hallucination
    assert r["total_rate"] == pytest.approx(0.6)  # Total = Miss + Hall


def test_event_rates_are_clamped_to_the_event_list():
    r = metrics.event_rates(n_events=4, n_missed=9, n_incorrect=3, n_hallucinated=50)
    assert r["miss_rate"] == 1.0 and r["incorrect_rate"] == 0.0
    assert r["hall_rate"] <= 1.0
    with pytest.raises(ValueError):
        metrics.event_rates(0, 0, 0, 0)


def test_median_pass_index():
    assert metrics.median_pass_index([0.5, 0.1, 0.3]) == 2
    assert metrics.median_pass_index([0.4, 0.2, 0.9, 0.1, 0.3, 0.7, 0.5]) == 0  # sorted: .1 .2 .3 [.4] .5 .7 .9
    assert metrics.median_pass_index([0.2, 0.1]) == 1  # lower median
    with pytest.raises(ValueError):
        metrics.median_pass_index([])


@pytest.mark.parametrize(
    "text,pattern",
    [
        ("The video starts.\n\nVideo Description:\n\nA man walks.", "header"),
        ("A man walks.\n#Audio: a man speaks.", "header"),
        ("## Visual\nA man walks.", "header"),
        ("Between 0:00 and 0罕见的桥, the person points at a bridge.", "foreign_script"),
        # an English start that goes on in Chinese switches script, however long the Chinese part
        ("A man cooks. 然后他在厨房里说话，声音很大。", "foreign_script"),
        ("The crowd cheers cheers cheers cheers loudly.", "repeated_token"),
        ("and then the man and then the man and then the man waves.", "repeated_ngram"),
        ("A man walks.<|im_end|>", "special_token"),
        ("A man walks \ufffd away.", "replacement_char"),
    ],
)
def test_unnatural_patterns_found(text, pattern):
    assert pattern in metrics.unnatural_patterns(text)


@pytest.mark.parametrize(
    "text",
    [
        "A man in a red shirt walks along the beach while waves crash on the shore.",
        'The woman says "你好" to the camera and smiles.',  # quoted foreign speech is legitimate
        "一个男人在厨房里做饭，然后他在厨房里说话。",  # a caption wholly in one script switches nothing
        "Мужчина готовит ужин на кухне.",
        "一个男人拿着iPhone在厨房里做饭，然后他在厨房里说话。",  # one Latin name in a Chinese caption
        'The crowd chants "no, no, no, no, no" as the referee points.',  # quoted repetition too
        "He shouts 'No, no, no, no, I don't care!' and leaves.",  # an apostrophe inside the quote
        "The audio: a man speaks softly about the weather.",  # not at line start
    ],
)
def test_natural_captions_have_no_patterns(text):
    assert metrics.unnatural_patterns(text) == []


def test_unnatural_rate_and_summary_skip_failed_items():
    assert metrics.unnatural_rate(["fine caption.", "Video Description: bad"]) == 0.5
    rows = [
        {
            "status": "ok",
            "miss_rate": 0.2,
            "hall_rate": 0.1,
            "total_rate": 0.3,
            "incorrect_rate": 0.0,
            "hallucination_rate": 0.1,
            "rep_rate": 0.0,
            "unnatural": [],
        },
        {
            "status": "ok",
            "miss_rate": 0.4,
            "hall_rate": 0.3,
            "total_rate": 0.7,
            "incorrect_rate": 0.1,
            "hallucination_rate": 0.2,
            "rep_rate": 0.1,
            "unnatural": ["header"],
        },
        {"status": "failed", "error": "HTTP 500"},
    ]
    s = metrics.summarize(rows)
    assert (s["n_items"], s["n_ok"], s["n_failed"]) == (3, 2, 1)
    assert s["miss_rate"] == pytest.approx(0.3)
    assert s["total_rate"] == pytest.approx(0.5)
    assert s["unnatural_rate"] == pytest.approx(0.5)
