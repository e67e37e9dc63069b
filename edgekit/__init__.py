"""edgekit's workstation side, under one name on install: `edgekit.export` (framework model to
verified ONNX bundle) and `edgekit.toolkit` (the `edgekit` command). The device package,
`edge_agent`, stays top-level and imports nothing from here. Imports nothing itself, so
`import edgekit.export` does not pull in the toolkit."""
