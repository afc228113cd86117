"""The optional ML stack (the `.[ml]` extra): the models, their training, evaluation and
CLI (`papershelf ml`).

May import: the standard library, numpy, Pillow, torch and the model libraries; never `app`
or `workers` (what it needs from the deployment comes in as arguments). Only the ML pool
(workers.ml) and the `ml` command of the admin CLI load it, lazily.
"""
