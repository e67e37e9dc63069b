"""Watching the model on the device: the monitor (windows of latency, errors and drift), the
feature specs it reads inputs with, the drift statistics against the baseline, the alert rules
and the capture of sampled requests.
"""
