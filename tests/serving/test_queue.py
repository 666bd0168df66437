import os
import signal
import subprocess
import sys
import textwrap

from huajia.serving.queue import JobQueue


def test_submit_claim_finish_and_cancel(tmp_path):
    queue = JobQueue(tmp_path / "q.sqlite")
    a = queue.submit("generate", {"prompt": "a red circle"}, batch_key="k1")
    b = queue.submit("generate", {"prompt": "两个圆形"}, batch_key="k2")
    c = queue.submit("generate", {"prompt": "x"}, batch_key="k1")
    assert queue.oldest_batch_key() == "k1"
    claimed = queue.claim(limit=8, batch_key="k1")
    assert [j.id for j in claimed] == [a, c] and all(j.state == "running" for j in claimed)
    assert queue.finish(claimed[0], {"images": 1})
    assert not queue.finish(claimed[0], {"images": 2})  # never done twice
    assert queue.cancel(b) and queue.get(b).state == "cancelled"
    assert queue.finish(claimed[1], error="boom") and queue.get(c).state == "failed"
    assert queue.get(a).result == {"images": 1}


def test_kill_9_loses_nothing_and_does_nothing_twice(tmp_path):
    path = tmp_path / "q.sqlite"
    queue = JobQueue(path)
    ids = [queue.submit("generate", {"n": i}) for i in range(5)]
    worker = textwrap.dedent(f"""
        import time
        from huajia.serving.queue import JobQueue
        q = JobQueue({str(path)!r})
        jobs = q.claim(limit=2)
        q.finish(jobs[0], {{"ok": True}})
        print("claimed", flush=True)
        time.sleep(60)  # killed here, holding jobs[1]
    """)
    proc = subprocess.Popen([sys.executable, "-c", worker], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "claimed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    restarted = JobQueue(path)
    assert restarted.recover() == 1  # the job the dead worker held goes back
    done_before = {j for j in ids if restarted.get(j).state == "done"}
    while jobs := restarted.claim(limit=2):
        for job in jobs:
            assert job.id not in done_before
            assert restarted.finish(job, {"ok": True})
    assert all(restarted.get(j).state == "done" for j in ids)
    assert restarted.get(ids[1]).attempts == 2
