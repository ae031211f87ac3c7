"""Jobs for the rq test (cluster-test/rq_test.go)."""
import time


def add(a, b):
    time.sleep(0.05)
    return a + b


def fail():
    raise ValueError("this job fails on purpose")
