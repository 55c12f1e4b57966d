"""The environment students get on Binder or with conda matches the pinned one."""
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pins(lines):
    """The `name==version` (or >=) requirements among lines, without trailing comments."""
    return sorted(l.split("#")[0].strip() for l in lines
                  if re.match(r"^[A-Za-z0-9_.-]+\s*(==|>=)", l.strip()))


def test_environment_yml_pins_what_requirements_txt_pins():
    yml = [l.strip()[2:] for l in (ROOT / "environment.yml").read_text().splitlines()
           if l.strip().startswith("- ") and ("==" in l or ">=" in l)]
    assert pins(yml) == pins((ROOT / "requirements.txt").read_text().splitlines())


def test_environment_yml_names_no_files_repo2docker_has_not_copied_yet():
    assert "-r " not in (ROOT / "environment.yml").read_text().split("dependencies:")[1]
    assert "-e ." not in (ROOT / "environment.yml").read_text().split("dependencies:")[1]


def test_postbuild_installs_the_package():
    post = ROOT / "postBuild"
    assert os.access(post, os.X_OK) and "pip install --no-deps -e ." in post.read_text()
