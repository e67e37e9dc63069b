"""`edgekit bench`: MLPerf-style scenarios over every variant, execution provider, thread count
and batch size of a bundle, with the native framework as baseline in the same run.

The timing core lives in edge_agent.benchmark (the device measures itself with it); this
package adds what only the workstation needs:

- `sut`: the systems under test (onnxruntime session, I/O binding on GPUs, native model);
- `loadgen`: the load generator and the four scenarios, kept apart from the SUT;
- `providers`: which execution providers exist here and why the others are skipped;
- `native`: the source model rebuilt from the bundle's lineage;
- `engine`: the run over the configuration matrix; `store`: manifest, JSON, CSV;
- `cost`: business figures; `compare`: regressions between two runs; `report`: the HTML page.
"""
