"""A configuration with ACM customers on disk, and an AcmDirectory over it, for the ACM tests."""

from __future__ import annotations

from pathlib import Path

from twisted.internet.task import Clock

from engine.acm.directory import AcmDirectory
from engine.config import Config, load_config
from engine.passwords import hash_password

__all__ = ["TOKENS", "directory_on", "write_acme", "write_config"]

TOKENS = {"acme": "acme-Token-1", "initech": "initech-Token-2"}
_HASHES = {cid: hash_password(token) for cid, token in TOKENS.items()}

#: How the ACM tests' configurations begin: customer acme, with the ACM option.
ACME = """\
trees: trees/
state: {state}
data_dir: var/
customers:
  acme:
    formula: classic
    options: [acm]
    numbers: ["+3225551234"]
"""

CONFIG = """\
    api_token: "{acme}"
    acm:
      groups:
        sales: {{tiers: [{{after: 30, min_level: 1}}]}}
        support: {{}}
      operators:
        anna: {{numbers: ["+32470001104"], pin: "1234", groups: {{sales: 3}}}}
        bert: {{numbers: ["+32470001105"], pin: "4321", groups: {{sales: 1, support: 2}}}}
  initech: {{formula: classic, numbers: ["+3250123456"], api_token: "{initech}"}}
"""


def write_acme(tmp_path: Path, rest: str, state: str = "memory") -> Path:
    """``tmp_path/vms.yaml`` (and trees/): :data:`ACME`, then ``rest`` (more of acme, and
    other customers)."""
    (tmp_path / "trees").mkdir(exist_ok=True)
    path = tmp_path / "vms.yaml"
    path.write_text(ACME.format(state=state) + rest)
    return path


def write_config(tmp_path: Path) -> Config:
    return load_config(write_acme(tmp_path, CONFIG.format(**_HASHES)))


def directory_on(config: Config, clock: Clock, **options: object) -> AcmDirectory:
    """An open directory of ``config``'s data_dir (close it, or use ``with``)."""
    directory = AcmDirectory.in_data_dir(config, clock, **options)  # type: ignore[arg-type]
    directory.open()
    return directory
