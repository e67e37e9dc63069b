"""edgekit's on-device agent and the formats the device reads (bundle manifest, drift baseline,
telemetry). Depends only on numpy, onnxruntime and awsiotsdk so it can ship alone."""

__version__ = "0.1.0"
