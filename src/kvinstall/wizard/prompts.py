"""The prompts adapter: the few prompt kinds the wizard uses (`UI`), on questionary (`QuestionaryUI`);
and `Ctx`, what every step gets (the prompts, the catalog, how to fetch a host key)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from kvinstall.catalog import Catalog
from kvinstall.edges import Edges

if TYPE_CHECKING:
    from kvinstall.hosts.hostkeys import HostKey


Check = Callable[[str], str | None]


class UI(Protocol):
    """The few prompt kinds the wizard uses. Every answer passes `validate` before it is returned."""

    def text(self, message: str, *, default: str = "", validate: Check | None = None,
             instruction: str | None = None) -> str: ...

    def select(self, message: str, choices: Sequence[tuple[str, str]], *,
               default: str | None = None) -> str: ...

    def confirm(self, message: str, *, default: bool = False) -> bool: ...

    def checkbox(self, message: str, choices: Sequence[tuple[str, str]], *,
                 checked: Sequence[str] = ()) -> list[str]: ...

    def say(self, text: str) -> None: ...


class QuestionaryUI:
    """UI on questionary. `input`/`output` are prompt_toolkit objects (tests pass a pipe input)."""

    def __init__(self, input: Any = None, output: Any = None) -> None:
        self._kw: dict[str, Any] = {}
        if input is not None:
            self._kw["input"] = input
        if output is not None:
            self._kw["output"] = output
        self._output = output
        self.transcript: list[str] = []  # what say() showed, for tests and logs

    def text(self, message: str, *, default: str = "", validate: Check | None = None,
             instruction: str | None = None) -> str:
        import questionary

        def _v(answer: str) -> bool | str:
            if validate is None:
                return True
            problem = validate(answer)
            return True if problem is None else problem

        q = questionary.text(message, default=default, validate=_v, instruction=instruction, **self._kw)
        return str(q.unsafe_ask()).strip()

    def select(self, message: str, choices: Sequence[tuple[str, str]], *, default: str | None = None) -> str:
        import questionary

        qc = [questionary.Choice(title, value) for value, title in choices]
        # Typing filters the list: a person (and a test) picks by name instead of counting arrows.
        q = questionary.select(message, choices=qc, default=default, use_search_filter=True,
                               use_jk_keys=False, **self._kw)
        return str(q.unsafe_ask())

    def confirm(self, message: str, *, default: bool = False) -> bool:
        import questionary

        return bool(questionary.confirm(message, default=default, **self._kw).unsafe_ask())

    def checkbox(self, message: str, choices: Sequence[tuple[str, str]], *,
                 checked: Sequence[str] = ()) -> list[str]:
        import questionary

        qc = [questionary.Choice(title, value, checked=value in checked) for value, title in choices]
        return [str(v) for v in questionary.checkbox(message, choices=qc, **self._kw).unsafe_ask()]

    def say(self, text: str) -> None:
        from prompt_toolkit import print_formatted_text

        self.transcript.append(text)
        if self._output is not None:
            print_formatted_text(text, output=self._output)
        else:
            print_formatted_text(text)


@dataclass
class Ctx:
    ui: UI
    catalog: Catalog
    # The key a host presents, fetched without logging in (hosts/hostkeys.py; paramiko loads on use).
    fetch_key: Callable[[str, int], HostKey] = field(default_factory=lambda: Edges().host_key)

