"""Pipelines: one YAML file runs the whole path (train → export → quantize → evaluate → bench →
tune → package → simulate/publish/deploy) with a cache per stage and a run store, and the closed
loop from a fleet alert back to a new deployment (edgekit.toolkit.pipeline.trigger).

Entry points: ``spec.load(path)``, ``runner.run_pipeline(spec, runtime)``,
``runner.make_plan(spec, runtime)``, ``store.RunStore``, ``trigger.PipelineTrigger``.
"""
