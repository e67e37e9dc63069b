"""Every scikit-learn estimator skl2onnx supports goes through export and evaluate, and either
passes or fails for its documented reason (tests/corpus/sklearn_members.py; the table in
docs/sklearn_corpus.md comes from scripts/sklearn_corpus.py).

A new skl2onnx converter adds a member automatically: it must pass or be listed with a reason.
"""

from __future__ import annotations

import pytest
import sklearn_members as corpus

MEMBERS = {m.id: m for m in corpus.members()}


def _param(member_id: str):
    marks = [pytest.mark.slow] if member_id in corpus.SLOW else []
    return pytest.param(member_id, id=member_id, marks=marks)


def test_corpus_covers_every_supported_estimator():
    assert set(MEMBERS) == set(corpus.supported_estimators())
    assert set(corpus.EXPECTED_FAILURES) <= set(MEMBERS)
    assert set(corpus.EXPECTED_FAILURES.values()) <= set(corpus.REASONS)
    # the families are members that pass
    for name in ("LogisticRegression", "RandomForestClassifier", "MLPClassifier", "SVR"):
        assert corpus.expected(name) == "pass"


@pytest.mark.parametrize("member_id", [_param(m) for m in MEMBERS])
def test_member(member_id: str, tmp_path):
    record = corpus.run_member(MEMBERS[member_id], tmp_path)
    assert record["outcome"] == corpus.expected(member_id), record
