"""The stack: the service table, its docker-compose rendering and native supervisor, traffic.

`stack.services` declares every service once; docker-compose.yml follows it, and
`stack.native` runs the same commands as local processes (`mlops stack`), with
`stack.processes` (process groups, the state file) and `stack.data_services` (PostgreSQL,
Redis and their databases). `stack.traffic` sends simulated traffic to a running API and
files its delayed labels.
"""
