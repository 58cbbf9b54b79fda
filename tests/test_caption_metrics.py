"""BLEU-4 and CIDEr-D on examples worked out by hand."""
from __future__ import annotations

import math

import pytest

from train.caption_metrics import bleu, cider_d, words


def test_words_lowercase_without_punctuation():
    assert words("A dog, barking.  Loudly!") == ["a", "dog", "barking", "loudly"]


def test_bleu_hand_computed():
    # p1 4/5, p2 3/4, p3 2/3, p4 1/2; c = 5 < r = 6: brevity exp(1 - 6/5)
    got = bleu(["the dog barks at night"], [["the dog barks at the moon"]])
    want = math.exp(1 - 6 / 5) * (4 / 5 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25
    assert abs(got - want) < 1e-12, (got, want)
    assert abs(want - 0.547518) < 1e-6


def test_bleu_clips_counts_pools_the_corpus_and_picks_the_closest_reference():
    # "the" x4 is clipped at its largest count in one reference (2): p1 = 2/4 = 1/2
    assert bleu(["the the the the"], [["the cat", "the the"]], max_n=1) == pytest.approx(0.5)
    # pooled: p1 = (2 + 2) / (2 + 3); closest references 2 and 2 (|2 - 3| < |5 - 3|): r = 4 < c = 5
    assert bleu(["a b", "c d e"], [["a b"], ["c d x y z", "c d"]], max_n=1) == pytest.approx(4 / 5)
    # closest to 3 of 5 and 4 is 4 > c = 3: brevity exp(1 - 4/3)
    assert bleu(["c d e"], [["c d x y z", "c d x y"]], max_n=1) == pytest.approx(2 / 3 * math.exp(1 - 4 / 3))
    assert bleu(["a b c d"], [["a b c e"]]) == 0.0               # no 4-gram in common


def test_cider_d_hand_computed():
    # Two clips, N = 2: "a" is in both reference sets (idf 0), every other n-gram in one (idf ln 2).
    # Clip 1: the hypothesis is its reference: cosine 1 for n = 1, 2, 3, no 4-gram -> 10 * 3/4.
    # Clip 2: "a cat" vs "a cat meows": n = 1 and 2 each ln2^2 / (ln2 * sqrt(2) ln2) = 1/sqrt(2),
    # lengths 2 vs 3: penalty exp(-1/72) -> 10 * (2/sqrt(2)) * exp(-1/72) / 4.
    got = cider_d(["a dog barks", "a cat"], [["a dog barks"], ["a cat meows"]])
    clip2 = 10 * (2 / math.sqrt(2)) * math.exp(-1 / 72) / 4
    assert abs(got - (7.5 + clip2) / 2) < 1e-12, got
    assert abs(clip2 - 3.486769) < 1e-6


def test_cider_d_averages_references_and_clips_repeated_words():
    refs = [["a dog barks", "dog barking"], ["a cat meows"], ["rain falls"]]
    one = cider_d(["a dog barks", "a cat meows", "rain falls"], refs)
    # repeating a word never earns more than the reference's count of it
    assert cider_d(["dog dog dog dog barks", "a cat meows", "rain falls"], refs) < one
    assert cider_d(["rain falls", "rain falls", "rain falls"], refs) < one
    assert cider_d(["", "", ""], refs) == 0.0
    with pytest.raises(ValueError, match="one reference set per hypothesis"):
        cider_d(["a"], [])
