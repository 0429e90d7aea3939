"""Long work as durable runs of jobs: the queue, cancel and recovery, and the runners.

`system` keeps runs moving (queued, started, reported, recovered after a restart); `runners/` are
the places a job can execute (this machine, confined, or GitHub Actions). Features say how their
runs are reported; they never touch the queue's records.
"""
