from tests.toolkit.quantize.bundles import forest_data, mlp_bundle, tree_bundle  # noqa: F401
