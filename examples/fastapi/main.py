"""A FastAPI app whose gunicorn workers share one cache: raftcache, spoken
to through redis.asyncio (redis-py), exactly as one would speak to Redis.

  GET    /report/{item}    an expensive computation, cached for CACHE_TTL s
  DELETE /report/{item}    invalidate one cached report
  DELETE /reports          invalidate every cached report (SCAN + DEL)
  GET    /limited?user=U   at most RATE_LIMIT calls per user per RATE_WINDOW s,
                           counted across every worker (429 beyond)
  GET    /health

Settings (environment): RAFTCACHE_NODES (host:port list of raftcache RESP
addresses, default the Procfile cluster), CACHE_TTL (30), RATE_LIMIT (5),
RATE_WINDOW (60).
"""

import asyncio
import json
import os
import random
import time

import redis.asyncio as redis
from fastapi import FastAPI, HTTPException, Response
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError

NODES = [
    (h, int(p))
    for h, p in (
        a.rsplit(":", 1)
        for a in os.environ.get("RAFTCACHE_NODES", "127.0.0.1:6381,127.0.0.1:6382,127.0.0.1:6383").split(",")
    )
]
CACHE_TTL = int(os.environ.get("CACHE_TTL", "30"))
RATE_LIMIT = int(os.environ.get("RATE_LIMIT", "5"))
RATE_WINDOW = int(os.environ.get("RATE_WINDOW", "60"))


class FailoverConnection(redis.Connection):
    """Connects to the first raftcache node that accepts. Every node serves
    every command (a follower relays writes and strong reads to the
    leader), so when a node is down the next one will do."""

    def __init__(self, *, nodes, **kwargs):
        super().__init__(**kwargs)
        self.nodes = nodes

    async def _connect(self):
        error = None
        for host, port in self.nodes:
            self.host, self.port = host, port
            try:
                return await super()._connect()
            except (OSError, asyncio.TimeoutError) as e:
                error = e
        raise error


app = FastAPI(title="raftcache example")
cache: redis.Redis


@app.on_event("startup")
async def connect() -> None:
    global cache
    # Each worker starts with a different node, to spread the connections.
    start = os.getpid() % len(NODES)
    pool = redis.ConnectionPool(
        connection_class=FailoverConnection,
        nodes=NODES[start:] + NODES[:start],
        max_connections=64,
        socket_timeout=15,
        socket_connect_timeout=2,
        # A connection to a node that died is replaced by one to the next
        # node. (A retried INCR may count twice if the first attempt was
        # applied: for a rate limiter that errs on the strict side.)
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 5),
        retry_on_error=[ConnectionError],
    )
    cache = redis.Redis(connection_pool=pool)


@app.on_event("shutdown")
async def disconnect() -> None:
    await cache.close()
    await cache.connection_pool.disconnect()


async def expensive_report(item: str) -> dict:
    """Stands in for a slow query or an external API call."""
    await asyncio.sleep(0.5)
    return {"item": item, "computed_at": time.time(), "value": random.random()}


@app.get("/report/{item}")
async def report(item: str) -> dict:
    key = f"report:{item}"
    cached = await cache.get(key)
    if cached is not None:
        return {"cached": True, "worker": os.getpid(), **json.loads(cached)}
    data = await expensive_report(item)
    # Every worker (and every host) sees this value on its next request:
    # the write is acknowledged once a quorum of raftcache nodes has it.
    await cache.set(key, json.dumps(data), ex=CACHE_TTL)
    return {"cached": False, "worker": os.getpid(), **data}


@app.delete("/report/{item}")
async def invalidate(item: str) -> dict:
    return {"invalidated": await cache.delete(f"report:{item}")}


@app.delete("/reports")
async def invalidate_all() -> dict:
    n = 0
    batch = []
    async for key in cache.scan_iter(match="report:*", count=500):
        batch.append(key)
        if len(batch) == 500:
            n += await cache.delete(*batch)
            batch = []
    if batch:
        n += await cache.delete(*batch)
    return {"invalidated": n}


@app.get("/limited")
async def limited(user: str, response: Response) -> dict:
    # Fixed window: one counter per user and window, created with the
    # window as its TTL. SET NX EX and INCR go in one MULTI/EXEC, which
    # raftcache applies as one replicated entry; INCR keeps the TTL.
    window = int(time.time()) // RATE_WINDOW
    key = f"rate:{user}:{window}"
    async with cache.pipeline(transaction=True) as pipe:
        pipe.set(key, 0, ex=RATE_WINDOW, nx=True)
        pipe.incr(key)
        _, count = await pipe.execute()
    remaining = max(RATE_LIMIT - count, 0)
    response.headers["X-RateLimit-Remaining"] = str(remaining)
    if count > RATE_LIMIT:
        retry = RATE_WINDOW - int(time.time()) % RATE_WINDOW
        raise HTTPException(429, f"rate limit of {RATE_LIMIT} per {RATE_WINDOW}s exceeded",
                            headers={"Retry-After": str(retry)})
    return {"ok": True, "user": user, "count": count, "worker": os.getpid()}


@app.get("/health")
async def health() -> dict:
    return {"cache": await cache.ping(), "worker": os.getpid()}
