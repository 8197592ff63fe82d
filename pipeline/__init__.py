"""Orchestration: the pipeline's stages chained the same way by every command line and the
daily run (`pipeline.stages`, `pipeline.daily`), and the one command line
(`python -m pipeline COMMAND`, `pipeline.cli`).

It sits above the stages it calls (datagen, etl, features, training, batch, serving); they
never import it.
"""
