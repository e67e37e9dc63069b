"""The REST layer runs fast requests on the event loop and everything else on the pool."""

from __future__ import annotations

from edge_agent.serving.app import InlineGate


def test_inline_only_after_a_run_of_fast_requests():
    gate = InlineGate(below_s=0.001, warmup=3, max_bytes=100)
    assert not gate.allows(10, encoded=False)  # starts on the pool
    for _ in range(3):
        gate.record(0.0001)
    assert gate.allows(10, encoded=False)
    assert not gate.allows(101, encoded=False)  # a large body decodes on the pool
    assert not gate.allows(10, encoded=True)  # so does a compressed one


def test_one_slow_request_sends_work_back_to_the_pool():
    gate = InlineGate(below_s=0.001, warmup=2)
    gate.record(0.0001)
    gate.record(0.0001)
    assert gate.allows(10, encoded=False)
    gate.record(0.01)
    assert not gate.allows(10, encoded=False)
