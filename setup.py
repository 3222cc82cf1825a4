"""Maps the top-level manifests/ and templates/ folders into the package (see pyproject.toml)."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages("src"), "kvinstall.manifests", "kvinstall.templates"],
    package_dir={"": "src", "kvinstall.manifests": "manifests", "kvinstall.templates": "templates"},
    package_data={
        "kvinstall": ["py.typed"],
        "kvinstall.catalog": ["*.yaml"],
        "kvinstall.plan": ["*.json"],
        "kvinstall.phases": ["*.json"],
        "kvinstall.manifests": ["**/*.yaml"],
        "kvinstall.templates": ["**/*.j2", "**/*.yaml"],
    },
)
