"""Quiz (kdviz/interview/quiz.py): computed answers against hand arithmetic, grading, the tally and drill order."""
from __future__ import annotations

import math

import pytest

from kdviz.interview.quiz import QUESTION_IDS, QUESTIONS, Tally, drill_order, get_question, grade, parse_number


def softmax(z, T):
    e = [math.exp(v / T) for v in z]
    return [v / sum(e) for v in e]


def test_numeric_answers_match_hand_arithmetic():
    assert get_question("p1_T4").answer() == pytest.approx(softmax([2, 1, 0], 4)[1], abs=1e-12)  # 0.3265
    assert get_question("p0_T1").answer() == pytest.approx(math.e**2 / (math.e**2 + math.e + 1), abs=1e-12)
    p, q = softmax([2, 1, 0], 2), softmax([1.5, 0.5, 0], 2)
    kd = 4 * sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    ce = -math.log(softmax([1.5, 0.5, 0], 1)[0])
    assert get_question("kd_example").answer() == pytest.approx(kd, abs=1e-12)
    assert get_question("total_example").answer() == pytest.approx(0.5 * kd + 0.5 * ce, abs=1e-12)
    assert round(get_question("total_example").answer(), 4) == 0.2422  # not the tutorial's 0.2399
    assert get_question("max_entropy").answer() == pytest.approx(math.log(10))
    assert get_question("mean_factor").answer() == pytest.approx(10.0)  # measured on the buggy step itself
    assert get_question("t2_factor").answer() == pytest.approx(16.0)
    assert get_question("entropy_T").choices[get_question("entropy_T").answer()] == "grow"


def test_grade_numeric_within_tolerance():
    q = get_question("p1_T4")
    assert grade(q, "0.33").correct and grade(q, " 0.326 ").correct and grade(q, "−0.3265".replace("−", "")).correct
    verdict = grade(q, "0.5")
    assert not verdict.correct and "the answer is 0.3265" in verdict.message and "you said 0.5" in verdict.message


@pytest.mark.parametrize("text, message", [("abc", "'abc' is not a number"), ("", "'' is not a number"),
                                           ("nan", "not a finite number"), ("inf", "not a finite number"),
                                           ("1,5", "'1,5' is not a number"), (None, "'None' is not a number")])
def test_non_numbers_are_refused_with_a_message(text, message):
    with pytest.raises(ValueError, match=message):
        grade(get_question("kd_example"), text)
    with pytest.raises(ValueError):
        parse_number(text)


@pytest.mark.parametrize("given", [None, -1, 3, "0", True, 0.0])
def test_choice_needs_a_choice(given):
    with pytest.raises(ValueError, match="pick one of the 3 choices"):
        grade(get_question("alpha_zero"), given)


def test_choice_grading():
    q = get_question("alpha_zero")
    assert grade(q, 0).correct and not grade(q, 1).correct


def test_tally_score_topics_and_drill():
    t = Tally()
    assert t.score() == (0, 0) and drill_order(t) == [] and t.topics_to_revisit() == []
    t.record(get_question("p1_T4"), True)
    t.record(get_question("swapped"), False)
    t.record(get_question("p0_T1"), False)
    assert t.score() == (1, 3) and t.attempts == 3
    assert drill_order(t) == ["p0_T1", "swapped"]  # quiz order
    assert t.topics_to_revisit() == ["bugs", "temperature"]
    t.record(get_question("p0_T1"), True)  # the latest answer counts
    assert t.score() == (2, 3) and drill_order(t) == ["swapped"]


def test_questions_are_well_formed():
    assert len(set(QUESTION_IDS)) == len(QUESTIONS) >= 10
    for q in QUESTIONS:
        a = q.answer()
        assert (q.tol > 0 and math.isfinite(a)) if q.numeric else 0 <= a < len(q.choices), q.id
    with pytest.raises(ValueError, match="unknown question id 'zz'"):
        get_question("zz")
