"""The workflows of jobs, one module per family, each with its public entry points:

- `submit`: checking a request and creating a job with its tiles; starting jobs whose data arrived.
- `control`: cancel, resume and delete.
- `worker`: a cluster worker's claim loop, leases, and recording tile results.
- `repair`: lost tiles, the periodic sweep, waking stalled jobs, failing overdue waits.
- `finish`: after the last tile, the merge into the job's outputs, or the job's failure.
- `usage`: what jobs used (CPU, memory, bytes), per job and per user, day and job type.

Every change of status goes through `jobs.lifecycle`; every task is enqueued by `jobs.queue`.
Dependencies point one way: worker -> repair -> finish -> submit, and control -> submit.
"""
