"""One module per peer; each writes its configuration from a template file in
this directory (`string.Template`, `${name}` placeholders) and starts the peer
with procs.PROCS.

A starter is `start(env, d, port, backends, tls)` -> (process, small path,
1 MiB path): d is the peer's own directory, port a free loopback port.
"""

import string
from pathlib import Path

HERE = Path(__file__).resolve().parent


def render(template, **values):
    """The template file of this directory with every `${name}` filled in; a
    placeholder without a value is an error (KeyError), not an empty string."""
    return string.Template((HERE / template).read_text()).substitute(values)


def write(path, template, **values):
    path.write_text(render(template, **values))
    return path
