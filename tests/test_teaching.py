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


def teaching_section():
    readme = (ROOT / "README.md").read_text()
    return readme.split("## Teaching with this repository")[1].split("\n## ")[0]


def test_readme_says_the_solutions_are_public_and_how_to_grade_privately():
    section = teaching_section()
    assert "solutions are public" in section
    assert "make assignments ASSIGNMENTS_DIR=" in section


def test_readme_colab_cells_keep_the_folder_and_need_no_restart():
    """`!cd` is forgotten after its line and an editable install needs a runtime restart, so
    the Colab cells use %cd and a plain install of the package."""
    cells = re.findall(r"```python\n(.*?)```", teaching_section().split("On Colab")[1], flags=re.S)
    code = "\n".join(cells)
    assert "%cd " in code and "!cd" not in code
    assert "pip install" in code and " -e " not in code and "otter-grader==7.0.0" in code
