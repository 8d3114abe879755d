"""What the generated worker locustfile runs on a Locust worker (`loadkit worker`).

`loadkit run --master` writes a small locustfile (`loadkit.orchestration.run_distributed`)
that carries
the run settings and the scenario text; Locust sends it to every worker started with
`-f -`. That file calls `worker_locustfile_globals`, which puts the run settings where the
locustfile reads them and then imports it. Nothing in loadkit imports this module: only the
generated file does, inside a Locust process.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from loadkit.results.run_folder import RunFolder
from loadkit.traffic.config import RUN_CONFIG_ENV


def worker_locustfile_globals(config: str, scenario_name: str, scenario_text: str) -> dict:
    """What the generated locustfile exports: loadkit's user classes and shape.

    On the master `LOADKIT_RUN_CONFIG` is set already. On a worker the scenario is read from
    the master's path when the same file is there (same machine, or the same mount), else
    from the embedded text written to a private temporary folder.
    """
    if not os.environ.get(RUN_CONFIG_ENV):
        cfg = json.loads(config)
        here = Path(cfg["scenario_path"])
        same = False
        try:
            same = here.is_file() and here.read_text(encoding="utf-8") == scenario_text
        except OSError:
            same = False
        folder = Path(tempfile.mkdtemp(prefix=f"loadkit-worker-{cfg['run_id']}-"))
        if not same:
            here = folder / scenario_name
            here.write_text(scenario_text, encoding="utf-8")
        cfg["scenario_path"] = str(here)
        cfg_path = RunFolder(folder).run_config
        cfg_path.write_text(json.dumps(cfg))
        os.environ[RUN_CONFIG_ENV] = str(cfg_path)
    from loadkit.traffic import locustfile

    app = locustfile.APP
    return {**{cls.__name__: cls for cls in app.user_classes}, "LoadkitShape": app.shape}
