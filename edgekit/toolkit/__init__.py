"""The workstation side of edgekit and the `edgekit` command."""
