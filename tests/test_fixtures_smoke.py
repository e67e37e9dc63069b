"""The shared bundles exist and verify: every other suite builds on them."""

from edge_agent.contracts.bundle import Bundle


def test_shared_bundles_verify(tabular_bundle, cnn_bundle, regression_bundle):
    for path, task in (
        (tabular_bundle, "classification"),
        (cnn_bundle, "classification"),
        (regression_bundle, "regression"),
    ):
        bundle = Bundle.open(path)
        bundle.verify()
        assert bundle.task == task
        assert bundle.variant("fp32")["parity"]["passed"]
