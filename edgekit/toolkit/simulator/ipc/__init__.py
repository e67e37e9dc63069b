"""Greengrass IPC as the nucleus serves it: eventstream RPC over a Unix socket."""
