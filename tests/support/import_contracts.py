"""An import-linter contract type for one rule the built-in types cannot say: only named modules import a
*subpackage* of an external package (`azure.ai.ml`, while `azure.monitor` and `azure.storage` stay free).

import-linter's `forbidden` type accepts external packages by their top-level name only (`azure`), and grimp
records an external import under that name, so this contract reads the import statements grimp keeps for
each import of the top-level package and matches the dotted name written in them.
"""

from __future__ import annotations

import re
from typing import Any

from importlinter import Contract, ContractCheck, fields, output


class DirectImportOnlyFromContract(Contract):
    """`imported` (e.g. `azure.ai.ml`) may be imported directly only by modules in `allowed_importers` (and
    their descendants). Indirect imports are allowed: a flow may reach the Azure adapter through the factory."""

    type_name = "direct_import_only_from"

    imported = fields.StringField()
    allowed_importers = fields.ListField(subfield=fields.StringField())

    def check(self, graph: Any, verbose: bool) -> ContractCheck:
        imported = str(self.imported)
        allowed = [str(name) for name in self.allowed_importers]  # type: ignore[attr-defined]
        top = imported.split(".")[0]
        pattern = re.compile(rf"(?<![\w.]){re.escape(imported)}(?![\w])")
        offenders = []
        if top in graph.modules:
            for importer in sorted(graph.find_modules_that_directly_import(top)):
                if any(importer == a or importer.startswith(a + ".") for a in allowed):
                    continue
                for detail in graph.get_import_details(importer=importer, imported=top):
                    if pattern.search(detail["line_contents"]):
                        offenders.append((importer, detail["line_number"], detail["line_contents"]))
        return ContractCheck(kept=not offenders, warnings=None, metadata={"offenders": offenders})

    def render_broken_contract(self, check: ContractCheck) -> None:
        allowed = ", ".join(str(name) for name in self.allowed_importers)  # type: ignore[attr-defined]
        output.print(f"{self.imported} may be imported only by {allowed}:")
        for importer, line, contents in check.metadata["offenders"]:
            output.print(f"- {importer} (l.{line}): {contents}")
