"""Framework model -> verified ONNX bundle. Imports edge_agent (the formats) and nothing of toolkit."""
