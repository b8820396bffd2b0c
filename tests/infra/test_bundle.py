"""The offline bundle's rules (the whole make-and-install path runs in
tests/e2e/test_offline_bundle.py)."""
from lorasweep.infra.bundle import default_platforms, norm, read_have, target_markers, usable_from_target


def test_names_and_platforms():
    assert norm("Jinja2") == "jinja2" and norm("typing_extensions") == norm("typing.extensions") == "typing-extensions"
    tags = default_platforms()
    assert tags[0] == "manylinux_2_39_x86_64" and "manylinux_2_17_x86_64" in tags and "manylinux2014_x86_64" in tags
    assert target_markers("3.12")["python_version"] == "3.12" and target_markers("3.12.3")["python_full_version"] == "3.12.3"


def test_what_the_target_has_is_used_where_every_requirement_accepts_it(tmp_path):
    freeze = tmp_path / "have.txt"
    freeze.write_text("torch==2.11.0\nnumpy==2.5.2\nPyYAML==6.0.3\n-e git+https://x/y#egg=z\nfoo @ file:///x\n")
    have = read_have(freeze)
    assert have == {"torch": "2.11.0", "numpy": "2.5.2", "pyyaml": "6.0.3"}
    closure = [
        {"name": "vllm", "version": "0.26.0",
         "requires_dist": ["torch==2.11.0", "numpy<2.3", "pyyaml", 'win32-only; sys_platform == "win32"',
                           'numpy<1; extra == "old"']},
        {"name": "torch", "version": "2.11.0", "requires_dist": []},
        {"name": "numpy", "version": "2.2.6", "requires_dist": []},   # the target's 2.5.2 is refused by numpy<2.3
        {"name": "pyyaml", "version": "6.0.4", "requires_dist": []},  # the target's 6.0.3 fits
        {"name": "regex", "version": "1", "requires_dist": []},       # the target has none
    ]
    assert usable_from_target(closure, have, "3.12") == {"torch", "pyyaml"}
    # A requirement file's own pin counts too: the target's PyYAML 6.0.3 does not fit ==6.0.4.
    assert usable_from_target(closure, have, "3.12", ["PyYAML==6.0.4  "]) == {"torch"}
