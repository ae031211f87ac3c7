"""check.py: exercise a running example app (run.sh) from outside.

    /usr/bin/python3 check.py [http://127.0.0.1:8080]

Every request uses a new connection, so the kernel spreads them over the
gunicorn workers; the checks pass only if the workers share the cache.
"""

import os
import sys
import time
import uuid

import httpx

BASE = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080"


def call(method, path):
    with httpx.Client(base_url=BASE, timeout=30) as c:  # a new connection each time
        return c.request(method, path)


def main():
    workers = set()
    item = "item-" + uuid.uuid4().hex[:8]

    first = call("GET", f"/report/{item}").json()
    assert first["cached"] is False, first
    for _ in range(12):
        r = call("GET", f"/report/{item}").json()
        assert r["cached"] is True and r["value"] == first["value"], r
        workers.add(r["worker"])
    print(f"cached report served by {len(workers)} workers: {sorted(workers)}")
    assert len(workers) >= 2, "every request reached the same worker; cannot show sharing"

    assert call("DELETE", f"/report/{item}").json() == {"invalidated": 1}
    again = call("GET", f"/report/{item}").json()
    assert again["cached"] is False and again["value"] != first["value"], again
    print("invalidation: the next request recomputed the report")
    n = call("DELETE", "/reports").json()["invalidated"]
    assert n >= 1, n
    print(f"prefix invalidation removed {n} reports")

    user = "user-" + uuid.uuid4().hex[:8]
    limit, window = int(os.environ.get("RATE_LIMIT", "5")), int(os.environ.get("RATE_WINDOW", "60"))
    codes, counted_by = [], set()
    t0 = time.time()
    for _ in range(limit + 7):
        r = call("GET", f"/limited?user={user}")
        codes.append(r.status_code)
        if r.status_code == 200:
            counted_by.add(r.json()["worker"])
    allowed = codes.count(200)
    print(f"rate limit for {user}: {allowed} allowed, {codes.count(429)} refused, counted by {len(counted_by)} workers")
    # If a window boundary fell inside the loop, the new window allows up
    # to `limit` more; a per-worker count would allow limit per worker.
    crossed = int(t0) // window != int(time.time()) // window
    assert allowed == limit or (crossed and allowed <= 2 * limit), codes
    assert codes.count(429) >= 1, codes
    other = call("GET", f"/limited?user=other-{user}")
    assert other.status_code == 200, other.text
    print("another user is not limited")
    print("ok")


if __name__ == "__main__":
    main()
