from tests.probe_cpu import probe_cpu  # noqa: F401
