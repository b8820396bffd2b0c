"""tools.py: what the shell scripts ask before any environment exists."""
from lorasweep.infra.tools import uv_index_args

PIP_CONFIG = """:env:.disable-pip-version-check='1'
global.extra-index-url='file:///opt/pypi/simple file:///opt/pypi-more/simple'
global.find-links='/opt/wheels'
global.constraint='/etc/xdg/pip/constraints.txt'
global.cert='/etc/ssl/certs/ca-certificates.crt'
"""


def test_pips_index_settings_become_uvs_flags():
    args = uv_index_args(PIP_CONFIG, env={})
    assert args == ["--extra-index-url", "file:///opt/pypi/simple", "--extra-index-url", "file:///opt/pypi-more/simple",
                    "--find-links", "/opt/wheels", "--constraint", "/etc/xdg/pip/constraints.txt",
                    "--index-strategy", "unsafe-best-match"]


def test_pip_variables_win_over_the_files_and_no_index_carries_over():
    args = uv_index_args(PIP_CONFIG, env={"PIP_FIND_LINKS": "/b/wheels /b/models", "PIP_NO_INDEX": "1"})
    assert args[args.index("--find-links") + 1] == "/b/wheels" and "/opt/wheels" not in args
    assert args.count("--find-links") == 2 and "--no-index" in args


def test_nothing_configured_gives_uvs_defaults():
    assert uv_index_args("", env={}) == []
