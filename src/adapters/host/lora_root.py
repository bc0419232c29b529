"""CASOLA_LORA_ROOT on disk: one folder per adapter, its adapter_config.json read off the event loop."""

import asyncio
from pathlib import Path

CONFIG_LIMIT = 1024 * 1024  # an adapter_config.json is a few hundred bytes


class LoraRoot:
    def __init__(self, root: str) -> None:
        self.root = Path(root)

    async def config_of(self, name: str) -> str | None:
        return await asyncio.to_thread(self._read, self.root / name / "adapter_config.json")

    def path_of(self, name: str) -> str:
        return str(self.root / name)

    @staticmethod
    def _read(path: Path) -> str | None:
        try:
            with path.open("rb") as config:
                return config.read(CONFIG_LIMIT).decode("utf-8", "replace")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
