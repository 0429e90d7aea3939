"""Long work as durable runs of jobs: the queue, cancel and recovery, and the runners.

`system` keeps runs moving (queued, started, reported, recovered after a restart); `records` are
the runs and jobs it hands out (their rows are `bot/store/runs.py`'s); `runners/` are the places a
job can execute (this machine, confined, or GitHub Actions). Features say how their runs are
reported and keep what a report left behind in a run's `ReportState`; they never touch the
queue's records.
"""
