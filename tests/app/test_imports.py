"""The site, the workers and the CLI must run without the optional ML stack."""

from __future__ import annotations

import subprocess
import sys


def test_web_workers_and_cli_never_import_torch() -> None:
    code = (
        "import sys\n"
        "import app.main, app.cli, app.importer, workers\n"
        "import app.cli.runtime.supervisor, app.artifacts.summaries\n"
        "import workers.fetch, app.jobs.summaries, workers.ml\n"
        "import app.artifacts.faqs, app.web.api.faq, workers.llm\n"
        "from app.cli import cli\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'ml'})\n"
        "print(','.join(bad))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
