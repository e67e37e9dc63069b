from tests.probe_cpu import probe_cpu  # noqa: F401
from tests.toolkit.quantize.bundles import forest_data, mlp_bundle, tree_bundle  # noqa: F401
from tests.toolkit.quantize.encoder_bundles import encoder_bundle, encoder_data  # noqa: F401
