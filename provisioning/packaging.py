"""The chat component's model package: model.py + serving.properties in a reproducible tar.gz.

The archive is byte-for-byte the same for the same inputs (sorted entries, fixed owners, modes and times), so its
SHA-256 names its S3 key: an unchanged package is neither uploaded again nor seen as a change by CloudFormation.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from dataclasses import dataclass
from importlib import resources

from provisioning.config import Container
from provisioning.deployment import LMI_ASYNC_OPTIONS, ComponentTarget


@dataclass(frozen=True)
class ModelPackage:
    component: str
    archive: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.archive).hexdigest()

    def key(self, prefix: str) -> str:
        return f"{prefix}{self.component}-{self.sha256[:16]}.tar.gz"


def serving_properties(container: Container) -> str:
    """LMI configuration: async vLLM mode, the model id, and every OPTION_* variable from the config."""
    options = {"engine": "Python", "option.model_id": container.model_id, **LMI_ASYNC_OPTIONS}
    for name, value in sorted(container.environment.items()):
        if name.startswith("OPTION_"):
            options[f"option.{name.removeprefix('OPTION_').lower()}"] = value
    return "".join(f"{key}={value}\n" for key, value in options.items())


def container_environment(container: Container) -> dict[str, str]:
    """The Model's environment: settings that are not LMI options, and fail fast so a broken model fails the deploy."""
    environment = {name: value for name, value in container.environment.items() if not name.startswith("OPTION_")}
    return {"SERVING_FAIL_FAST": "true", **environment}


def huggingface_environment(container: Container) -> dict[str, str]:
    """The Hugging Face container's environment: the model it serves (HF_MODEL_ID) and the config's settings."""
    return {"HF_MODEL_ID": container.model_id, **container.environment}


def build_package(target: ComponentTarget) -> ModelPackage:
    model_py = resources.files("provisioning.chat_package").joinpath("model.py").read_bytes()
    files = {"model.py": model_py, "serving.properties": serving_properties(target.settings.container).encode()}
    return ModelPackage(component=target.key, archive=_reproducible_tar_gz(files))


def _reproducible_tar_gz(files: dict[str, bytes]) -> bytes:
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mode = 0o644
            info.mtime = 0
            archive.addfile(info, io.BytesIO(files[name]))
    compressed = io.BytesIO()
    with gzip.GzipFile(fileobj=compressed, mode="wb", mtime=0, filename="") as gz:
        gz.write(tar_bytes.getvalue())
    return compressed.getvalue()
