"""What `papershelf up` runs: the site and its workers as child processes (`children`), a
supervisor that restarts and stops them (`supervisor`), and the embedded Redis-compatible
server they share when none is configured (`redis_server`).

Part of the CLI edge: imports settings, the checks for checkpoints and the ML extra, and the
CLI's console; never web, worker or ML code (the children are `python -m app.cli`
processes, not imports).
"""
