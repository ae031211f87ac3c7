"""Drives rq (Debian's python3-rq) against raftcache for cluster-test/rq_test.go.

    rqdrive.py enqueue PORT N   enqueue N add jobs and one failing job; print their ids as JSON
    rqdrive.py work PORT        burst workers until the queue is empty (a crashed worker is replaced,
                                a job it dropped between dequeue and start is put back, and so is a
                                job rq failed because recording its success met "write outcome unknown")
    rqdrive.py check PORT IDS   print each job's status and result as JSON

Connections retry what raftcache says is safe to retry: refused or broken
connections and TRYAGAIN (nothing was applied), as docs/api.md advises.
"""
import json
import sys
import time

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError, TryAgainError
from redis.retry import Retry
import redis.connection

# A plain Redis connection raises TRYAGAIN as a bare ResponseError; name it.
redis.connection.BaseParser.EXCEPTION_CLASSES["TRYAGAIN"] = TryAgainError

from rq import Queue, Worker  # noqa: E402
from rq.job import Job, JobStatus  # noqa: E402
from rq.registry import FailedJobRegistry, StartedJobRegistry  # noqa: E402


def connect(port):
    return redis.Redis(host="127.0.0.1", port=int(port), socket_timeout=10,
                       retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 60),
                       retry_on_error=[ConnectionError, TimeoutError, TryAgainError])


def enqueue(port, n):
    r = connect(port)
    q = Queue("raftcache", connection=r)
    ids = [q.enqueue("rqjobs.add", i, i, result_ttl=3600).id for i in range(n)]
    ids.append(q.enqueue("rqjobs.fail", result_ttl=3600, failure_ttl=3600).id)
    print(json.dumps(ids))


def requeue_dropped(r, q):
    """Puts back the jobs a worker took off the queue but never started.

    rq 1.13 pops a job (LPOP) and only then records the worker as busy and
    the job as started. A worker that quits in between (it does on any
    unexpected error, such as the "write outcome unknown" error raftcache
    answers for a write in flight when the leader dies, or a broken
    connection on Redis) drops that job: still "queued", in no list. rq 2's
    intermediate queue closes that window; with 1.13 a supervisor has to.
    Only one worker runs at a time here, so no job is between pop and start
    while this runs.
    """
    waiting = set(q.get_job_ids())
    started = set(StartedJobRegistry(queue=q).get_job_ids())
    dropped = []
    for key in r.scan_iter(match="rq:job:*", count=1000, _type="hash"):
        jid = key.decode().split(":", 2)[2]
        if jid in waiting or jid in started:
            continue
        job = Job.fetch(jid, connection=r)
        if job.get_status(refresh=True) == JobStatus.QUEUED:
            q.enqueue_job(job)
            dropped.append(jid)
    return dropped


def requeue_unknown(r, q):
    """Puts back the jobs rq failed only because the write that records
    their success was answered "write outcome unknown".

    rq runs a job, then records its success in one MULTI/EXEC. When the
    leader dies with that EXEC in flight, raftcache answers that its outcome
    is unknown (on Redis the connection would break the same way), and rq
    files the job as failed though it ran. rq's own remedy is to requeue
    failed jobs (`rq requeue`); the jobs here are pure, so running one
    again is safe. A job that failed on its own (rqjobs.fail) is left.
    """
    reg = FailedJobRegistry(queue=q)
    out = []
    for jid in reg.get_job_ids():
        job = Job.fetch(jid, connection=r)
        res = job.latest_result()  # rq keeps the failure here (a stream) ...
        exc = (res.exc_string if res is not None else None) or job._exc_info or ""  # ... or in the job
        if "write outcome unknown" in exc:
            reg.requeue(jid)
            out.append(jid)
    return out


def work(port):
    r = connect(port)
    q = Queue("raftcache", connection=r)
    crashes, requeued = 0, []
    deadline = time.time() + 150
    while time.time() < deadline:
        try:
            requeued += requeue_dropped(r, q) + requeue_unknown(r, q)
            if q.count == 0 and StartedJobRegistry(queue=q).count == 0:
                break
            Worker([q], connection=r).work(burst=True, with_scheduler=False)
        except Exception as e:  # a worker that dies is replaced, as a supervisor would
            crashes += 1
            print("worker crashed: %r" % (e,), file=sys.stderr)
            time.sleep(0.5)
            if crashes > 20:
                raise
    print(json.dumps({"crashes": crashes, "requeued": requeued, "left": q.count}))


def check(port, ids):
    r = connect(port)
    q = Queue("raftcache", connection=r)
    out = {}
    failed = set(FailedJobRegistry(queue=q).get_job_ids())
    for jid in ids:
        job = Job.fetch(jid, connection=r)
        out[jid] = {"status": job.get_status(refresh=True), "result": job.return_value(),
                    "func": job.func_name, "args": list(job.args), "in_failed": jid in failed}
    print(json.dumps(out))


if __name__ == "__main__":
    mode, port = sys.argv[1], sys.argv[2]
    if mode == "enqueue":
        enqueue(port, int(sys.argv[3]))
    elif mode == "work":
        work(port)
    elif mode == "check":
        check(port, json.loads(sys.argv[3]))
