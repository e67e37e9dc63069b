"""Presentation: the tables, progress lines and summaries that people read.

One home for them so that the CLI commands and the pipeline runner (the demo included) draw the
same tables, and so that nothing below the CLI has to import a CLI module to print a result.
Everything here takes plain records or result objects and returns rich renderables; it never
reads files or options.
"""
